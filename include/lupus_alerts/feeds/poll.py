"""Polling feeds: fetch, parse, upsert the kept papers and record the outcome, one feed or many.

Owns the orchestration: `poll_feed` (conditional on the stored validators, papers upserted,
state saved; a feed failure is recorded and returned, never raised: one broken publisher must
not stop the others), `check_feed` (the same fetch and parse without the store), the bounded
thread pool with one `requests.Session` per worker for several feeds, and the lock that
serialises this process's writes to a SQLite store (once per engine, for every polling thread).
"""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import requests
from sqlalchemy.engine import Engine

from lupus_alerts import dedupe, store
from lupus_alerts.config import FeedConfig, Settings
from lupus_alerts.feeds.errors import FeedError
from lupus_alerts.feeds.fetch import _describe_request_error, fetch_feed
from lupus_alerts.feeds.parse import FeedParseResult, parse_feed_bytes
from lupus_alerts.feeds.state import FeedOutcome, _load_state, _save_state


def check_feed(
    settings: Settings, feed: FeedConfig, *, session: requests.Session | None = None
) -> FeedOutcome:
    """Fetch and parse one feed unconditionally without touching the store (`feeds check`).

    Not conditional on purpose: storing validators without storing the items would make the
    next real poll get a 304 and miss them.
    """
    return _fetch_and_parse(settings, feed, session=session, etag=None, last_modified=None, now=None)[0]


def poll_feed(
    settings: Settings,
    engine: Engine,
    feed: FeedConfig,
    *,
    session: requests.Session | None = None,
    now: datetime | None = None,
) -> FeedOutcome:
    """Poll one feed: conditional GET, parse, upsert the kept papers, record the outcome.

    A feed failure (network, HTTP error, size cap, unsafe or unreadable document) is recorded in
    `feed_state` and returned with status "error"; it is not raised. Database errors are.
    """
    now = now or store.utcnow()
    state = _load_state(engine, feed.id)
    etag = last_modified = None
    if state and state["url"] == feed.url:
        # Validators belong to the URL they came from; a changed URL starts afresh.
        etag, last_modified = state["etag"], state["last_modified"]
    outcome, parsed = _fetch_and_parse(
        settings, feed, session=session, etag=etag, last_modified=last_modified, now=now
    )
    with _writer_lock(engine):
        if parsed is not None and parsed.papers:
            stats = dedupe.upsert_papers(engine, parsed.papers, now=now)
            outcome.new, outcome.updated = int(stats.new), int(stats.updated)
        _save_state(engine, feed, outcome, state, now)
    return outcome


_SQLITE_WRITERS: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()
_SQLITE_WRITERS_GUARD = threading.Lock()


def _writer_lock(engine: Engine) -> contextlib.AbstractContextManager[object]:
    """Serialise this process's writes to a SQLite store.

    SQLite admits one writer at a time and makes the others wait in its busy handler, which
    sleeps in growing steps (up to 100 ms); with several polling threads that idles the whole
    pool. A lock hands the store over at once. Other databases need no lock.
    """
    if engine.dialect.name != "sqlite":
        return contextlib.nullcontext()
    with _SQLITE_WRITERS_GUARD:
        return _SQLITE_WRITERS.setdefault(engine, threading.Lock())


def poll_feeds(
    settings: Settings,
    engine: Engine,
    feeds: Iterable[FeedConfig] | None = None,
    concurrency: int | None = None,
    *,
    now: datetime | None = None,
) -> list[FeedOutcome]:
    """Poll several feeds with at most `concurrency` at once; outcomes in the given order.

    For the CLI and the benchmark; Airflow maps one task per feed instead.
    """
    return _map_bounded(
        lambda feed, session: poll_feed(settings, engine, feed, session=session, now=now),
        list(settings.feeds if feeds is None else feeds),
        concurrency or settings.feed_settings.concurrency,
    )


def check_feeds(
    settings: Settings, feeds: Iterable[FeedConfig] | None = None, concurrency: int | None = None
) -> list[FeedOutcome]:
    """`check_feed` for several feeds, at most `concurrency` at once; outcomes in order."""
    return _map_bounded(
        lambda feed, session: check_feed(settings, feed, session=session),
        list(settings.feeds if feeds is None else feeds),
        concurrency or settings.feed_settings.concurrency,
    )


def _map_bounded(
    fn: Callable[[FeedConfig, requests.Session], FeedOutcome], feeds: list[FeedConfig], concurrency: int
) -> list[FeedOutcome]:
    if not feeds:
        return []
    local = threading.local()
    sessions: list[requests.Session] = []

    def one(feed: FeedConfig) -> FeedOutcome:
        # requests.Session is not documented as thread-safe: one per worker thread.
        if not hasattr(local, "session"):
            local.session = requests.Session()
            sessions.append(local.session)
        return fn(feed, local.session)

    try:
        with ThreadPoolExecutor(
            max_workers=max(1, min(concurrency, len(feeds))), thread_name_prefix="feed"
        ) as pool:
            return list(pool.map(one, feeds))
    finally:
        for session in sessions:
            session.close()


def _fetch_and_parse(
    settings: Settings,
    feed: FeedConfig,
    *,
    session: requests.Session | None,
    etag: str | None,
    last_modified: str | None,
    now: datetime | None,
) -> tuple[FeedOutcome, FeedParseResult | None]:
    fs = settings.feed_settings
    outcome = FeedOutcome(feed_id=feed.id, status="error", url=feed.url)
    started = time.monotonic()
    own_session = session is None
    sess = session or requests.Session()
    parsed: FeedParseResult | None = None
    try:
        fetched = fetch_feed(
            feed.url,
            session=sess,
            user_agent=fs.user_agent,
            timeout_s=fs.timeout_s,
            max_bytes=fs.max_bytes,
            etag=etag,
            last_modified=last_modified,
        )
        outcome.http_status = fetched.status
        outcome.final_url = fetched.final_url
        outcome.bytes = len(fetched.body)
        if fetched.not_modified:  # a 304 may refresh the validators; otherwise they stand
            outcome.etag = fetched.headers.get("ETag") or etag
            outcome.last_modified = fetched.headers.get("Last-Modified") or last_modified
        else:  # validators belong to the representation just received, absent ones included
            outcome.etag = fetched.headers.get("ETag")
            outcome.last_modified = fetched.headers.get("Last-Modified")
        for status, location in fetched.redirects:
            if status in (301, 308):
                outcome.warnings.append(
                    f"feed moved permanently ({status}) to {location or fetched.final_url}: update its URL"
                )
        if fetched.not_modified:
            outcome.status, outcome.not_modified = "not_modified", True
        elif not 200 <= fetched.status < 300:
            outcome.error = f"HTTP {fetched.status}"
        else:
            parsed = parse_feed_bytes(
                fetched.body, feed=feed, headers=fetched.headers, seen_at=now, max_bytes=fs.max_bytes
            )
            outcome.items, outcome.kept, outcome.rejected = parsed.items, parsed.kept, parsed.rejected
            outcome.dois = parsed.dois
            outcome.warnings.extend(parsed.warnings)
            if parsed.items == 0 and parsed.bozo:
                outcome.error = "not a readable feed: " + "; ".join(parsed.warnings)
                parsed = None
            else:
                outcome.status = "ok"
    except FeedError as e:
        outcome.error = str(e)
    except requests.Timeout as e:
        outcome.error = f"timed out after {fs.timeout_s:g} s: {e}"
    except requests.RequestException as e:
        outcome.error = _describe_request_error(e)
    finally:
        if own_session:
            sess.close()
        outcome.elapsed = time.monotonic() - started
    if outcome.status == "error":
        outcome.etag, outcome.last_modified = etag, last_modified
    return outcome, parsed
