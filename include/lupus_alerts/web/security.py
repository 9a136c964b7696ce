"""What every response carries (security headers), and tokens kept out of the access log."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send


SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
}


# The paper list holds no personal data and changes only when a paper is reclassified or
# retracted, so browsers and proxies may keep it a few minutes; everything else stays as above.
_PUBLIC_HEADERS = {**SECURITY_HEADERS, "Cache-Control": "public, max-age=300"}


_TOKEN_IN_QUERY = re.compile(r"(?i)((?:^|[?&;])token=)[^&;#\s\"]*")


def redact_tokens(text: str) -> str:
    """`text` (a request line, a URL) with every `token=` query value replaced by [redacted]."""
    return _TOKEN_IN_QUERY.sub(r"\1[redacted]", text)


class RedactTokens(logging.Filter):
    """Keeps link tokens out of uvicorn's access log (`GET /unsubscribe?token=[redacted]`).

    Attached to the `uvicorn.access` logger, so it applies before any handler writes the line.
    (Airflow's API server has its own access log, which already masks a `token` parameter.)
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_tokens(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact_tokens(record.msg)
        return True


def _install_access_log_filter() -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactTokens) for f in access.filters):
        access.addFilter(RedactTokens())


class _SecurityHeaders:
    """Every response carries the security headers, unless it set its own value (the paper
    list's Cache-Control): FastAPI's own 404/405/422 answers included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._defaults = [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in SECURITY_HEADERS.items()
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers.extend((k, v) for k, v in self._defaults if k not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
