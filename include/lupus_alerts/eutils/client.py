"""`EutilsClient`: the one place E-utilities are called, politely, and what may be shown of it.

Owns the I/O: every call a POST with `tool`, `email` and the API key in the body, a slot from
the machine-wide limiter per attempt, the decompressed-body cap, retries with full-jitter
back-off that respect Retry-After (`backoff_delay`, `retry_after_seconds`), errors with the key
and the address taken out (`redact`), and the calls built on it: ESearch, windows split under
ESearch's cap, EFetch of a history set or of UIDs, and the prefetching thread.
"""

from __future__ import annotations

import math
import os
import queue
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import quote, quote_plus

import requests
import urllib3

from lupus_alerts.config import PubMedSettings
from lupus_alerts.connections import get_connection
from lupus_alerts.eutils.errors import (
    EutilsError,
    EutilsHTTPError,
    EutilsResponseError,
    EutilsTransportError,
    TruncatedBody,
    WindowTruncatedError,
)
from lupus_alerts.eutils.protocol import (
    ESEARCH_CAP,
    SearchResult,
    check_efetch,
    count_records,
    esearch_params,
    parse_esearch,
    split_days_into,
)
from lupus_alerts.ratelimit import RateLimiter, ncbi_limiter

DEFAULT_TOOL = "lupus-alerts"
# The largest body accepted, after decompression: a 10,000-record EFetch (the largest batch the
# settings allow) is about 100 MB. A body inflating past this is refused, not held in memory.
MAX_BODY_BYTES = 256_000_000
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
REDACTED = "[redacted]"
# Parameters whose values are never shown: the key is a secret, the address is personal data.
# `tool` is kept: it names the software, and operators need it to read NCBI's complaints.
SECRET_PARAMS = ("api_key", "email")
_SECRET_IN_QUERY = re.compile(r"(?i)\b(api_key|email)=[^&\s'\"<>]*")
_SECRET_IN_JSON = re.compile(r'(?i)("api[-_]key"\s*:\s*")[^"]*(")')


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` without the given secret values (as written, URL-encoded or form-encoded) and
    without any `api_key=` / `email=` parameter or JSON `"api-key"` value, whoever's they are."""
    for secret in secrets:
        if not secret:
            continue
        for form in {secret, quote(secret), quote(secret, safe=""), quote_plus(secret)}:
            text = text.replace(form, REDACTED)
    text = _SECRET_IN_QUERY.sub(lambda m: f"{m.group(1)}={REDACTED}", text)
    return _SECRET_IN_JSON.sub(lambda m: f"{m.group(1)}{REDACTED}{m.group(2)}", text)


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """A Retry-After header (seconds or an HTTP date) as seconds to wait, or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def backoff_delay(attempt: int, *, base: float, cap: float, retry_after: float | None = None) -> float:
    """Full-jitter exponential back-off for retry `attempt` (0-based), never below Retry-After."""
    delay = random.uniform(0, min(cap, base * (2**attempt)))
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap * 10))
    return delay


class EutilsClient:
    """ESearch + EFetch against `base_url`, rate-limited and retrying. A context manager."""

    def __init__(
        self,
        *,
        base_url: str = PubMedSettings().base_url,
        tool: str = DEFAULT_TOOL,
        email: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 30.0,
        max_retries: int = 6,
        batch_size: int = 500,
        max_hits_per_window: int = ESEARCH_CAP,
        max_body_bytes: int = MAX_BODY_BYTES,
        limiter: RateLimiter | None = None,
        backoff_base_s: float = 1.0,
        backoff_cap_s: float = 60.0,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.tool = tool
        self.email = email
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.batch_size = batch_size
        self.max_hits_per_window = min(max_hits_per_window, ESEARCH_CAP)
        self.max_body_bytes = max_body_bytes
        self.limiter = limiter or ncbi_limiter(api_key)
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self._own_session = session is None
        self.session = session or requests.Session()
        self.session.headers.setdefault("User-Agent", f"{tool} (python-requests)")
        self._sleep = sleep
        self.requests_made = 0  # attempts, retries included (what NCBI saw)
        self.calls: dict[str, int] = {}  # successful calls per endpoint ("esearch", "efetch")
        self.last_window_hits: int | None = None  # ESearch's count for the last fetch_window

    @classmethod
    def from_settings(cls, settings: PubMedSettings, **overrides: Any) -> EutilsClient:
        """A client configured from `PubMedSettings` plus the NCBI connection or environment.

        `tool`, `email` come from the connection's extras (`tool`, `email`), the API key from its
        password or extra `api_key`; NCBI_API_KEY, NCBI_EMAIL and NCBI_TOOL override them.
        """
        conn = get_connection(settings.connection_id)
        extra = conn.extra if conn else {}
        api_key = os.environ.get("NCBI_API_KEY") or (conn.password if conn else None) or extra.get("api_key")
        email = os.environ.get("NCBI_EMAIL") or extra.get("email") or (conn.login if conn else None)
        tool = os.environ.get("NCBI_TOOL") or extra.get("tool") or DEFAULT_TOOL
        kwargs: dict[str, Any] = {
            "base_url": settings.base_url,
            "tool": tool,
            "email": email,
            "api_key": api_key or None,
            "timeout_s": settings.timeout_s,
            "max_retries": settings.max_retries,
            "batch_size": settings.batch_size,
            "max_hits_per_window": settings.max_hits_per_window,
        }
        kwargs.update(overrides)
        return cls(**kwargs)

    def __enter__(self) -> EutilsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP session (only when the client created it)."""
        if self._own_session:
            self.session.close()

    # -- I/O ---------------------------------------------------------------------------------

    def _common(self) -> dict[str, str]:
        p = {"tool": self.tool}
        if self.email:
            p["email"] = self.email
        if self.api_key:
            p["api_key"] = self.api_key
        return p

    def redact(self, text: str) -> str:
        """`text` without this client's API key and address (see `redact`)."""
        return redact(text, (self.api_key, self.email))

    def _scrubbed(self, error: EutilsError) -> EutilsError:
        """The same error with the key and the address taken out of its text and body."""
        error.args = tuple(self.redact(a) if isinstance(a, str) else a for a in error.args)
        if isinstance(error, EutilsHTTPError):
            error.body = self.redact(error.body.decode("utf-8", "replace")).encode()
        return error

    def _request(self, endpoint: str, params: dict[str, str], *, check: Callable[[bytes], Any]) -> Any:
        """Send one E-utilities call with rate limiting and retries; return `check(body)`.

        Always a POST: the key and the address go in the body, never in a URL (which urllib3
        logs and `requests` quotes in its errors), and long terms and id lists fit. Every error
        raised is redacted and carries no chained `requests` exception (whose text has the URL).
        """
        try:
            return self._request_once_retried(endpoint, params, check)
        except EutilsError as e:
            raise self._scrubbed(e) from None

    def _request_once_retried(
        self, endpoint: str, params: dict[str, str], check: Callable[[bytes], Any]
    ) -> Any:
        url = self.base_url + endpoint
        params = {**params, **self._common()}
        last: EutilsError | None = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                retry_after = getattr(last, "retry_after", None)
                self._sleep(
                    backoff_delay(
                        attempt - 1, base=self.backoff_base_s, cap=self.backoff_cap_s, retry_after=retry_after
                    )
                )
            self.limiter.acquire()
            self.requests_made += 1
            try:
                # Streamed and read in one call: `resp.content` walks a 5 MB EFetch body in 10 kB
                # Python-level chunks, which costs the parsing thread its share of the GIL.
                resp = self.session.post(url, data=params, timeout=self.timeout_s, stream=True)
                try:
                    # At most one byte past the cap, decompressed (urllib3 2 inflates no more
                    # than it is asked for), so a gzip bomb costs the cap, not its inflated size.
                    body = resp.raw.read(self.max_body_bytes + 1, decode_content=True)
                except BaseException:
                    resp.close()  # a broken connection must not go back to the pool
                    raise
                if len(body) > self.max_body_bytes:
                    resp.close()
                    # Not retried: the same request would bring the same body.
                    raise EutilsResponseError(
                        f"{endpoint}: body larger than {self.max_body_bytes} bytes (decompressed): refused"
                    )
                resp.raw.release_conn()  # read to the end: the connection can be reused
            except (
                requests.Timeout,
                requests.ConnectionError,
                requests.exceptions.ChunkedEncodingError,
                urllib3.exceptions.HTTPError,  # a short body (IncompleteRead) or a read timeout
            ) as e:
                last = EutilsTransportError(self.redact(f"{endpoint}: {type(e).__name__}: {e}"))
                continue
            if resp.status_code in RETRYABLE_STATUS:
                wait = retry_after_seconds(resp.headers.get("Retry-After"))
                last = EutilsHTTPError(resp.status_code, url, body, retry_after=wait)
                continue
            if resp.status_code != 200:
                raise EutilsHTTPError(resp.status_code, url, body)
            try:
                result = check(body)
            except TruncatedBody as e:
                last = e
                continue
            name = endpoint.removesuffix(".fcgi")
            self.calls[name] = self.calls.get(name, 0) + 1
            return result
        assert last is not None
        raise last

    # -- ESearch -----------------------------------------------------------------------------

    def esearch(
        self,
        term: str,
        *,
        mindate: date | None = None,
        maxdate: date | None = None,
        datetype: str = "crdt",
        retmax: int = 0,
        retstart: int = 0,
        usehistory: bool = True,
        retmode: Literal["json", "xml"] = "json",
    ) -> SearchResult:
        """One ESearch call (db=pubmed); by default only the count and history handle."""
        params = esearch_params(
            term,
            mindate=mindate,
            maxdate=maxdate,
            datetype=datetype,
            retmax=retmax,
            retstart=retstart,
            usehistory=usehistory,
            retmode=retmode,
        )
        result: SearchResult = self._request("esearch.fcgi", params, check=parse_esearch)
        result.mindate, result.maxdate = mindate, maxdate
        return result

    def search_windows(
        self, term: str, start: date, end: date, *, first: SearchResult | None = None
    ) -> Iterator[SearchResult]:
        """Searches covering the inclusive days start..end, each under the cap or a single day.

        `first` is an ESearch of the whole window already made. A window at the cap is cut into
        ceil(count / (0.8 x cap)) equal day ranges (assuming an even spread; a part still at
        the cap is cut again), which takes fewer ESearch calls than bisecting. Parts are
        searched with `retmax` = the cap, so their UIDs come back with the search.
        """
        if end < start:
            raise ValueError(f"window end {end} is before its start {start}")
        cap = self.max_hits_per_window
        pending: list[tuple[date, date, SearchResult | None]] = [(start, end, first)]
        while pending:
            lo, hi, r = pending.pop(0)
            if r is None:
                r = self.esearch(term, mindate=lo, maxdate=hi, retmax=cap)
            if r.count >= cap and hi > lo:
                parts = split_days_into(lo, hi, math.ceil(r.count / (cap * 0.8)))
                pending[:0] = [(a, b, None) for a, b in parts]  # keep date order
                continue
            yield r

    # -- EFetch ------------------------------------------------------------------------------

    def efetch_history(self, webenv: str, query_key: str, *, retstart: int, retmax: int) -> bytes:
        """One EFetch page of a history set, as PubMed XML bytes."""
        params = {
            "db": "pubmed",
            "WebEnv": webenv,
            "query_key": query_key,
            "retstart": str(retstart),
            "retmax": str(retmax),
            "retmode": "xml",
        }
        return self._request("efetch.fcgi", params, check=check_efetch)

    def efetch_ids(self, ids: Sequence[str]) -> bytes:
        """EFetch PubMed XML for explicit PMIDs."""
        params = {"db": "pubmed", "id": ",".join(ids), "retmode": "xml"}
        return self._request("efetch.fcgi", params, check=check_efetch)

    def fetch_history(self, result: SearchResult) -> Iterator[bytes]:
        """Every record of a search's history set, `batch_size` at a time."""
        if result.count == 0:
            return
        if not result.webenv or not result.query_key:
            raise EutilsResponseError("ESearch returned no WebEnv/QueryKey (usehistory=y was ignored)")
        for retstart in range(0, result.count, self.batch_size):
            body = self.efetch_history(
                result.webenv,
                result.query_key,
                retstart=retstart,
                retmax=min(self.batch_size, result.count - retstart),
            )
            if count_records(body) == 0:
                # The server stopped paging (e.g. a cap) while ESearch counted more: never
                # pass that off as the end of the window.
                raise WindowTruncatedError(
                    f"EFetch returned no records at retstart={retstart} of {result.count}"
                    f" (window {result.mindate}..{result.maxdate})"
                )
            yield body

    def fetch_window(self, term: str, start: date, end: date) -> Iterator[bytes]:
        """EFetch bodies for every record created in the inclusive days start..end.

        Under the cap: 1 ESearch + ceil(N / batch) EFetch calls on the history set. At the cap:
        the window's parts are searched for their UIDs, which are then fetched by POST in
        batches, so EFetch calls stay ceil(N / batch); only the part searches are added. A single
        day at the cap is paged from its history set past 9,999.
        """
        top = self.esearch(term, mindate=start, maxdate=end)
        self.last_window_hits = top.count
        if top.count < self.max_hits_per_window or start == end:
            yield from self.fetch_history(top)
            return
        pending: list[str] = []
        for r in self.search_windows(term, start, end, first=top):
            if r.count >= self.max_hits_per_window:  # one day over the cap
                yield from self.fetch_history(r)
                continue
            if len(r.ids) < r.count:
                raise WindowTruncatedError(
                    f"ESearch listed {len(r.ids)} of {r.count} UIDs for {r.mindate}..{r.maxdate}"
                )
            pending.extend(r.ids)
            while len(pending) >= self.batch_size:
                yield self.efetch_ids(pending[: self.batch_size])
                del pending[: self.batch_size]
        if pending:
            yield self.efetch_ids(pending)

    def prefetch_window(self, term: str, start: date, end: date, *, depth: int = 2) -> Iterator[bytes]:
        """`fetch_window` run in a background thread, up to `depth` bodies ahead of the reader.

        The caller parses batch n while batch n+1 downloads; with the rate limit on, the two
        overlap, so a backfill costs about max(fetch time, parse time), not their sum. Errors in
        the fetching thread are raised here; closing the iterator stops the thread.
        """
        q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=max(1, depth))
        stop = threading.Event()

        def put(item: tuple[str, Any]) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def work() -> None:
            try:
                for body in self.fetch_window(term, start, end):
                    if not put(("body", body)):
                        return
            except BaseException as e:  # handed to the reader, which re-raises it
                put(("error", e))
                return
            put(("done", None))

        t = threading.Thread(target=work, name="eutils-prefetch", daemon=True)
        t.start()
        try:
            while True:
                kind, value = q.get()
                if kind == "body":
                    yield value
                elif kind == "error":
                    raise value
                else:
                    return
        finally:
            stop.set()
            t.join(timeout=self.timeout_s + 5)
