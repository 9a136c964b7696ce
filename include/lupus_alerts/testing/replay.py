"""A local HTTP server that replays recorded responses, for tests, benchmarks and the demo.

PubMed and the journals cannot be reached from development machines or CI, so their recorded,
real-format responses are served from localhost over real sockets. Routes answer by path (and
optionally a handler that looks at the query); faults can be injected per path (HTTP 429 with
Retry-After, 5xx, a stall longer than the client's timeout, a truncated body, a slow body); every
request is recorded with its arrival time so tests can check rate limits and conditional GETs.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass(slots=True)
class Request:
    """One request as the server saw it."""

    time: float  # time.monotonic() at arrival
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    @property
    def params(self) -> dict[str, str]:
        """Query and form parameters, last value wins (E-utilities style)."""
        merged = dict(self.query)
        if self.body and "x-www-form-urlencoded" in self.headers.get("content-type", ""):
            merged.update(parse_qs(self.body.decode("utf-8", "replace")))
        return {k: v[-1] for k, v in merged.items()}


@dataclass(slots=True)
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    # Serving behaviour: seconds before the status line, bytes cut off the end, seconds
    # between body chunks (a slow body).
    delay: float = 0.0
    truncate_to: int | None = None
    chunk_delay: float = 0.0


Handler = Callable[[Request], Response]


@dataclass(slots=True)
class Fault:
    """A misbehaviour served instead of the route's answer."""

    status: int | None = None  # e.g. 429, 500, 503
    retry_after: str | None = None
    body: bytes = b""
    delay: float = 0.0  # a stall: longer than the client's timeout means a timeout
    truncate_to: int | None = None  # serve the real answer, cut after this many bytes


class ReplayServer:
    """Threaded HTTP server on 127.0.0.1 with recorded routes and injectable faults.

    Use as a context manager; `url` is the base URL ("http://127.0.0.1:PORT").
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._routes: dict[str, Handler] = {}
        self._faults: dict[str, deque[Fault]] = defaultdict(deque)
        self._lock = threading.Lock()
        self.requests: list[Request] = []
        self._httpd = ThreadingHTTPServer((host, port), self._make_handler())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- configuration -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def route(self, path: str, handler: Handler) -> None:
        """Answer requests for `path` with `handler(request)`."""
        self._routes[path] = handler

    def add(
        self,
        path: str,
        body: bytes,
        *,
        status: int = 200,
        content_type: str = "application/xml; charset=utf-8",
        headers: Mapping[str, str] | None = None,
        etag: str | None = None,
        last_modified: float | None = None,
        delay: float = 0.0,
        chunk_delay: float = 0.0,
    ) -> None:
        """Serve a fixed body at `path`, honouring conditional GETs when validators are given."""
        base = {"Content-Type": content_type, **(headers or {})}
        if etag:
            base["ETag"] = etag
        if last_modified is not None:
            base["Last-Modified"] = formatdate(last_modified, usegmt=True)

        def handler(req: Request) -> Response:
            if _not_modified(req, etag, last_modified):
                return Response(304, b"", {k: v for k, v in base.items() if k != "Content-Type"})
            return Response(status, body, dict(base), delay=delay, chunk_delay=chunk_delay)

        self.route(path, handler)

    def inject(self, path: str, fault: Fault, times: int = 1) -> None:
        """Serve `fault` for the next `times` requests to `path`, then behave normally."""
        with self._lock:
            self._faults[path].extend([fault] * times)

    def requests_to(self, path: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> ReplayServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="replay", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- serving -------------------------------------------------------------------------------

    def _record(self, req: Request) -> Fault | None:
        """Record `req` and take the fault (if any) queued for its path, atomically."""
        with self._lock:
            self.requests.append(req)
            return self._faults[req.path].popleft() if self._faults[req.path] else None

    def _respond(self, req: Request, fault: Fault | None) -> Response:
        """What `req` gets: a fault's status, else 404, else its route's answer, stalled or cut by a fault."""
        handler = self._routes.get(req.path)
        if fault is not None and fault.status is not None:
            hdrs = {"Content-Type": "text/plain"}
            if fault.retry_after is not None:
                hdrs["Retry-After"] = fault.retry_after
            return Response(fault.status, fault.body, hdrs, delay=fault.delay)
        if handler is None:
            return Response(404, b"not found", {"Content-Type": "text/plain"})
        try:
            resp = handler(req)
        except Exception as e:  # a bug in a test handler should show as a 500
            resp = Response(500, f"replay handler error: {e!r}".encode(), {})
        if fault is not None:
            resp.delay = max(resp.delay, fault.delay)
            if fault.truncate_to is not None:
                resp.truncate_to = fault.truncate_to
        return resp

    def _make_handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class _H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                self._serve()

            def do_POST(self) -> None:
                self._serve()

            def do_HEAD(self) -> None:
                self._serve(head=True)

            def _serve(self, head: bool = False) -> None:
                req = self._read_request()
                fault = server._record(req)
                self._write(server._respond(req, fault), head)

            def _read_request(self) -> Request:
                """The request as recorded: its arrival time is taken once its body is read."""
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                return Request(
                    time=time.monotonic(),
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )

            def _write(self, resp: Response, head: bool) -> None:
                if resp.delay:
                    time.sleep(resp.delay)
                payload = resp.body
                try:
                    self.send_response(resp.status)
                    for k, v in resp.headers.items():
                        if k.lower() != "content-length":
                            self.send_header(k, v)
                    # Content-Length is the full size even when truncating, as a dropped
                    # connection mid-body looks to a client.
                    self.send_header("Content-Length", str(len(payload)))
                    if resp.truncate_to is not None:
                        self.send_header("Connection", "close")
                        self.close_connection = True
                    self.end_headers()
                    if head or resp.status == 304:
                        return
                    if resp.truncate_to is not None:
                        payload = payload[: resp.truncate_to]
                    if resp.chunk_delay:
                        step = max(1, len(payload) // 10)
                        for i in range(0, len(payload), step):
                            self.wfile.write(payload[i : i + step])
                            self.wfile.flush()
                            time.sleep(resp.chunk_delay)
                    else:
                        self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (e.g. its timeout): fine for a replay server

        return _H


def _not_modified(req: Request, etag: str | None, last_modified: float | None) -> bool:
    inm = req.headers.get("if-none-match")
    if etag and inm:
        return etag in [t.strip() for t in inm.split(",")] or inm.strip() == "*"
    ims = req.headers.get("if-modified-since")
    if last_modified is not None and ims:
        try:
            return parsedate_to_datetime(ims).timestamp() >= int(last_modified)
        except (TypeError, ValueError):
            return False
    return False
