"""The E-utilities client's errors: one base class, and a kind for each way a call fails.

An HTTP status (`EutilsHTTPError`), the transport (`EutilsTransportError`, of which a body cut
short is `TruncatedBody`), an error sent with HTTP 200 (`EutilsResponseError`), and a window
that came back with fewer records than ESearch counted (`WindowTruncatedError`).
"""

from __future__ import annotations


class EutilsError(Exception):
    """Any failure talking to E-utilities."""


class EutilsHTTPError(EutilsError):
    """A non-retryable HTTP status, or a retryable one that outlasted every retry."""

    def __init__(self, status: int, url: str, body: bytes = b"", retry_after: float | None = None) -> None:
        self.status = status
        self.url = url
        self.body = body
        self.retry_after = retry_after
        super().__init__(f"HTTP {status} from {url}: {body[:200].decode('utf-8', 'replace')}")


class EutilsTransportError(EutilsError):
    """Timeouts, dropped connections or truncated bodies that outlasted every retry."""


class TruncatedBody(EutilsTransportError):
    """A body that ended before its document did."""


class EutilsResponseError(EutilsError):
    """E-utilities answered HTTP 200 with an error in the body (JSON ERROR, XML ERROR/ErrorList)."""


class WindowTruncatedError(EutilsError):
    """Fewer records came back for a window than ESearch counted."""
