"""Building one subscriber's digest: load (or reuse) the window, select, build the view, render
within Gmail's size budget, and return the `Digest` with the numbers the ledger records. Reads
the store, writes nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Connection

from lupus_alerts.digest.presentation import build_view, overflow_url
from lupus_alerts.digest.rendering import render
from lupus_alerts.digest.selection import GENERAL_LABEL, Selection, Window, load_window, select
from lupus_alerts.digest.views import Digest, DigestView
from lupus_alerts.subscribers import Subscriber

if TYPE_CHECKING:
    from lupus_alerts.config import Settings

# Gmail clips a message body over 102 KB; a digest that would exceed this (a very large
# max_papers) is re-rendered compact, then with fewer papers shown (the rest summarised).
HTML_BUDGET_BYTES = 100 * 1024


def build_digest(
    conn: Connection,
    settings: Settings,
    subscriber: Subscriber,
    *,
    announce_to: int,
    update_to: int,
    period: str,
    now: datetime,
    windows: dict[tuple[int, int, int, int], Window] | None = None,
    secret: bytes | str | None = None,
    link_maker: Callable[[Settings, Subscriber], tuple[str, str]] | None = None,
) -> Digest:
    """Select and render one subscriber's digest for `period`; reads the store, writes nothing.

    The window is (subscriber.cursor, announce_to] for papers and (subscriber.update_cursor,
    update_to] for updates; the ledger records those bounds and advances the cursors once sent.
    Pass the same `windows` dict for every subscriber of a run to load each window once.
    `link_maker(settings, subscriber) -> (preferences_url, unsubscribe_url)` replaces the signed
    links (tests); by default they come from `lupus_alerts.tokens` (`secret` is passed through).
    """
    a_from = min(subscriber.cursor, announce_to)
    u_from = min(subscriber.update_cursor, update_to)
    window = _shared_window(conn, windows, (a_from, announce_to, u_from, update_to))
    prefs, unsub = _subscriber_links(settings, subscriber, now=now, secret=secret, link_maker=link_maker)
    day = _local_day(now, settings.digest.timezone)

    def attempt(limit: int | None, compact: bool) -> tuple[Selection, DigestView, str, str]:
        sel = select(window, subscriber, limit=limit)
        v = build_view(
            window,
            sel,
            subscriber,
            period=period,
            day=day,
            preferences_url=prefs,
            unsubscribe_url=unsub,
            home_url=settings.digest.public_base_url,
            more_url=overflow_url(settings, a_from, announce_to, subscriber.topics),
            compact=compact,
        )
        return (sel, v, *render(v))

    selection, view, html, text = _render_within_budget(attempt)
    shown_ids = tuple(p.paper_id for s in view.sections for p in s.papers)
    return Digest(
        subscriber=subscriber,
        period=period,
        subject=view.subject,
        html=html,
        text=text,
        paper_count=view.paper_count,
        overflow=len(selection.overflow),
        update_count=view.update_count,
        topic_counts={label or GENERAL_LABEL: len(ps) for label, ps in selection.shown},
        paper_ids=shown_ids,
        announce_from=a_from,
        announce_to=announce_to,
        update_from=u_from,
        update_to=update_to,
        unsubscribe_url=unsub,
        preferences_url=prefs,
        update_ids=tuple(u.update_id for u in selection.updates),
    )


def _shared_window(
    conn: Connection,
    windows: dict[tuple[int, int, int, int], Window] | None,
    key: tuple[int, int, int, int],
) -> Window:
    """Whether the window is loaded from the store or reused from `windows` (which then keeps it)."""
    window = windows.get(key) if windows is not None else None
    if window is None:
        a_from, announce_to, u_from, update_to = key
        window = load_window(
            conn, announce_from=a_from, announce_to=announce_to, update_from=u_from, update_to=update_to
        )
        if windows is not None:
            windows[key] = window
    return window


def _subscriber_links(
    settings: Settings,
    subscriber: Subscriber,
    *,
    now: datetime,
    secret: bytes | str | None,
    link_maker: Callable[[Settings, Subscriber], tuple[str, str]] | None,
) -> tuple[str, str]:
    """The (preferences, unsubscribe) URLs: `link_maker`'s if given, else signed for `now`'s UTC day."""
    if link_maker is not None:
        return link_maker(settings, subscriber)
    from lupus_alerts import tokens

    issued = (now.astimezone(UTC) if now.tzinfo else now).date()  # naive `now` is UTC
    prefs = tokens.preferences_url(settings, subscriber.link_key, issued=issued, secret=secret)
    unsub = tokens.unsubscribe_url(settings, subscriber.link_key, issued=issued, secret=secret)
    return prefs, unsub


def _render_within_budget(
    attempt: Callable[[int | None, bool], tuple[Selection, DigestView, str, str]],
) -> tuple[Selection, DigestView, str, str]:
    """How much is shown: everything, else compact, else compact with fewer papers until the HTML fits."""
    selection, view, html, text = attempt(None, False)
    size = len(html.encode("utf-8"))
    if size > HTML_BUDGET_BYTES:
        selection, view, html, text = attempt(None, True)
        size = len(html.encode("utf-8"))
        while size > HTML_BUDGET_BYTES and view.paper_count > 1:
            # shrink in proportion to the excess, at least one paper per step
            fewer = min(view.paper_count - 1, int(view.paper_count * HTML_BUDGET_BYTES / size * 0.95))
            selection, view, html, text = attempt(max(1, fewer), True)
            size = len(html.encode("utf-8"))
    return selection, view, html, text


def _local_day(now: datetime, tz: str) -> date:
    if now.tzinfo is None:  # the project's naive timestamps are UTC
        now = now.replace(tzinfo=ZoneInfo("UTC"))
    return now.astimezone(ZoneInfo(tz)).date()


def placeholder_links(settings: Settings, sub: Subscriber) -> tuple[str, str]:
    """Unsigned preview links (when no signing secret is configured); they do not work."""
    base = settings.digest.public_base_url.rstrip("/")
    return f"{base}/preferences?token=PREVIEW", f"{base}/unsubscribe?token=PREVIEW"
