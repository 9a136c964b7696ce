"""Holding defence: 2,000 requests, 20 at a time, over real HTTP: no error, and every
unsubscribe applied exactly once, however many one-click POSTs arrive for it at once.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from factories import add_papers
from webapp import app_for, serve, settings_for

from lupus_alerts import subscribers, tokens

SUBSCRIBERS = 200
REQUESTS = 2_000
CONCURRENCY = 20


class _Applied(logging.Handler):
    """Counts the web app's 'subscriber N unsubscribed' records: one per status change."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: Counter[int] = Counter()
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg.startswith("subscriber %s unsubscribed"):
            with self._lock:
                args = record.args
                assert isinstance(args, tuple) and isinstance(args[0], int)  # (subscriber id, one-click)
                self.ids[args[0]] += 1


@pytest.mark.slow
def test_2000_requests_at_20_concurrent_no_errors_and_each_unsubscribe_applied_once(
    engine: sa.Engine, tmp_path: Path
) -> None:
    today = datetime.now(UTC).date()
    subs = [
        subscribers.add(engine, email=f"reader{i}@example.org", topics=["nephrology"])
        for i in range(SUBSCRIBERS)
    ]
    [no] = add_papers(engine, [["nephrology"]])
    # Per subscriber: 4 one-click POSTs (a provider retrying, the reader clicking too), 3 GETs of
    # the confirmation page, 1 preferences page, 1 paper list, 1 health check: 10 x 200 = 2,000.
    work: list[tuple[str, str, int]] = []
    for s in subs:
        unsub = f"/unsubscribe?token={tokens.make_token(s.link_key, 'unsubscribe', issued=today)}"
        prefs = f"/preferences?token={tokens.make_token(s.link_key, 'preferences', issued=today)}"
        work += [("POST", unsub, s.id)] * 4 + [("GET", unsub, s.id)] * 3
        work += [("GET", prefs, s.id), ("GET", f"/papers?from=0&to={no}", s.id), ("GET", "/healthz", s.id)]
    assert len(work) == REQUESTS
    random.Random(15).shuffle(work)
    log = logging.getLogger("lupus_alerts.web")
    applied = _Applied()
    log.addHandler(applied)
    old_level = log.level
    log.setLevel(logging.INFO)
    local = threading.local()
    try:
        with serve(app_for(engine, settings_for(tmp_path))) as base:

            def call(item: tuple[str, str, int]) -> int:
                if not hasattr(local, "session"):
                    local.session = requests.Session()
                method, path, _sid = item
                data = {"List-Unsubscribe": "One-Click"} if method == "POST" else None
                return local.session.request(method, base + path, data=data, timeout=60).status_code

            t0 = time.monotonic()
            with ThreadPoolExecutor(CONCURRENCY) as pool:
                statuses = list(pool.map(call, work))
            elapsed = time.monotonic() - t0
    finally:
        log.removeHandler(applied)
        log.setLevel(old_level)
    errors = Counter(s for s in statuses if s != 200)
    assert not errors, errors
    assert all(subscribers.get(engine, s.id).status == "unsubscribed" for s in subs)
    assert applied.ids == Counter({s.id: 1 for s in subs}), "an unsubscribe applied twice or never"
    print(f"{REQUESTS} requests, {CONCURRENCY} at a time, {engine.dialect.name}: {elapsed:.1f} s")
