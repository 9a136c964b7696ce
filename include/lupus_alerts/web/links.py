"""Signed links: the token in a request, the subscriber it proves, and the form a page posts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from fastapi import Request
from sqlalchemy.engine import Connection

from lupus_alerts import subscribers, tokens

if TYPE_CHECKING:
    pass


# At most one "here is a fresh link" mail per subscriber in this interval.
LINK_MAIL_INTERVAL = timedelta(minutes=10)


class _BadLink(Exception):
    def __init__(self, status: int) -> None:
        self.status = status


class _ExpiredLink(Exception):
    def __init__(self, token: str) -> None:
        self.token = token


def _today() -> date:
    return datetime.now(UTC).date()


def _claims(token: str | None, purposes: Sequence[str]) -> tokens.Claims:
    if not token:
        raise _BadLink(400)
    for purpose in purposes:
        try:
            return tokens.check_token(token, purpose)
        except tokens.InvalidToken:
            continue
    raise _BadLink(400)


def _subscriber(conn: Connection, claims: tokens.Claims) -> subscribers.Subscriber:
    """The subscriber a valid token names; 404 when deleted or their links were revoked."""
    try:
        if claims.link_key is not None:
            return subscribers.get_by_link_key(conn, claims.link_key)
        assert claims.legacy_id is not None
        sub = subscribers.get(conn, claims.legacy_id)
    except subscribers.SubscriberNotFound:
        raise _BadLink(404) from None
    # A first-format token names an id, which SQLite hands out again: it counts only for a
    # subscriber who existed when such tokens were sent, and whose links were not revoked.
    if not sub.legacy_links:
        raise _BadLink(404)
    return sub


async def _form(request: Request) -> dict[str, list[str]]:
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        return {}
    form = await request.form()
    out: dict[str, list[str]] = {}
    for k, v in form.multi_items():
        if isinstance(v, str):
            out.setdefault(k, []).append(v)
    return out
