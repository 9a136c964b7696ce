"""Per-feed state: the `FeedOutcome` of a poll and its row in `store.feed_state`.

Owns what a poll remembers between runs: the validators (ETag / Last-Modified) for the next
conditional GET, the last HTTP status, error and warnings, the item and DOI counts of the last
successful fetch, and the count of consecutive failures the feed health report reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lupus_alerts import store
from lupus_alerts.config import FeedConfig


@dataclass(slots=True)
class FeedOutcome:
    """The result of polling (or checking) one feed; also what is stored in `feed_state`.

    `status` is "ok", "not_modified" or "error"; `http_status` the final HTTP status (None when
    no response arrived); `error` the reason for "error".
    """

    feed_id: str
    status: str
    url: str
    http_status: int | None = None
    items: int = 0
    kept: int = 0
    rejected: int = 0
    dois: int = 0
    new: int = 0
    updated: int = 0
    not_modified: bool = False
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    final_url: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    bytes: int = 0
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status != "error"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _load_state(engine: Engine, feed_id: str) -> dict[str, Any] | None:
    fs = store.feed_state
    with engine.connect() as conn:
        row = conn.execute(sa.select(fs).where(fs.c.feed_id == feed_id)).mappings().first()
    return dict(row) if row else None


def _save_state(
    engine: Engine, feed: FeedConfig, outcome: FeedOutcome, previous: Mapping[str, Any] | None, now: datetime
) -> None:
    fs = store.feed_state
    failed = outcome.status == "error"
    values: dict[str, Any] = {
        "url": feed.url,
        "final_url": outcome.final_url,
        "last_status": outcome.http_status,
        "last_error": outcome.error,
        "last_warning": "; ".join(outcome.warnings)[:4000] or None,
        "last_polled_at": now,
        "consecutive_failures": ((previous or {}).get("consecutive_failures") or 0) + 1 if failed else 0,
    }
    if not failed:
        values["last_success_at"] = now
        values["etag"] = outcome.etag
        values["last_modified"] = outcome.last_modified
        if not outcome.not_modified:
            values["items_last"] = outcome.items
            values["dois_last"] = outcome.dois
    with engine.begin() as conn:
        updated = conn.execute(sa.update(fs).where(fs.c.feed_id == feed.id).values(**values)).rowcount
        if not updated:
            conn.execute(sa.insert(fs).values(feed_id=feed.id, **values))
