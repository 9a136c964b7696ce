"""Fetching one feed over HTTP politely: a conditional GET with a total deadline and a size cap.

Owns the HTTP exchange and nothing after it: the request headers (User-Agent, Accept,
If-None-Match / If-Modified-Since), the body streamed against the byte cap and a deadline for
the whole body (requests' timeout is per socket read), the redirects recorded, and how a
`requests` failure is described to the operator in one line.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import requests
import urllib3

from lupus_alerts.feeds.errors import FeedTooLargeError

ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.8, text/xml;q=0.8, */*;q=0.1"
)
_CHUNK = 64 * 1024


@dataclass(slots=True)
class FetchResult:
    """One HTTP exchange for a feed (no parsing)."""

    status: int
    body: bytes
    headers: dict[str, str]
    final_url: str
    redirects: list[tuple[int, str]]  # (status, location) of each hop

    @property
    def not_modified(self) -> bool:
        return self.status == 304


def fetch_feed(
    url: str,
    *,
    session: requests.Session,
    user_agent: str,
    timeout_s: float,
    max_bytes: int,
    etag: str | None = None,
    last_modified: str | None = None,
) -> FetchResult:
    """GET a feed with conditional headers, a total deadline and a size cap.

    Raises `requests.RequestException` for network failures and timeouts (including a body
    that trickles in past the deadline), `FeedTooLargeError` when the body exceeds `max_bytes`.
    """
    headers = {"User-Agent": user_agent, "Accept": ACCEPT, "Accept-Encoding": "gzip, deflate"}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    deadline = time.monotonic() + timeout_s
    with session.get(url, headers=headers, timeout=timeout_s, stream=True, allow_redirects=True) as resp:
        redirects = [(r.status_code, r.headers.get("Location", "")) for r in resp.history]
        declared = resp.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > max_bytes:
            raise FeedTooLargeError(f"Content-Length {declared} is over the {max_bytes}-byte cap")
        chunks: list[bytes] = []
        total = 0
        if resp.status_code != 304:
            try:
                # read1 returns what has arrived (up to _CHUNK bytes, decompressed), so the
                # deadline and the cap are checked as data trickles in, not after a 64 KB wait.
                while chunk := resp.raw.read1(_CHUNK, decode_content=True):
                    total += len(chunk)
                    if total > max_bytes:
                        raise FeedTooLargeError(f"body exceeded the {max_bytes}-byte cap while streaming")
                    chunks.append(chunk)
                    # requests' timeout is per socket read; a slow-drip body needs a total deadline.
                    if time.monotonic() > deadline:
                        raise requests.Timeout(f"body not complete within {timeout_s:g} s")
            except urllib3.exceptions.ReadTimeoutError as e:
                raise requests.Timeout(str(e)) from e
            except (urllib3.exceptions.ProtocolError, urllib3.exceptions.DecodeError) as e:
                raise requests.ConnectionError(f"body not received in full: {e}") from e
        return FetchResult(
            status=resp.status_code,
            body=b"".join(chunks),
            headers=dict(resp.headers),
            final_url=resp.url,
            redirects=redirects,
        )


def _describe_request_error(e: requests.RequestException) -> str:
    """A short reason ("ConnectionError: Failed to resolve 'x.org' ...") instead of requests'
    nested pool/retry wording."""
    inner = e.args[0] if e.args else None
    reason = getattr(inner, "reason", None) or inner or e
    text = re.sub(r"^<[^>]*>:\s*", "", str(reason))
    return f"{type(e).__name__}: {text}"
