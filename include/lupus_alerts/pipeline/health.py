"""Source health: each feed's last polls and failures in a row, for the operators."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from lupus_alerts.config import Settings
from lupus_alerts.pipeline.common import (
    load_settings,
    open_store,
)
from lupus_alerts.pipeline.runs import (
    utc_text,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)


def feed_health(engine: Engine, settings: Settings) -> list[dict[str, Any]]:
    """One row per configured feed, failing feeds first: last poll and last success (UTC, to
    the second), HTTP status, items of the last poll ("not modified" on a 304), how many
    ingest runs in a row it failed (runs, not tries: a run retries a feed up to three times),
    and the last error."""
    import sqlalchemy as sa

    from lupus_alerts import store

    fs = store.feed_state
    with engine.connect() as conn:
        state = {r.feed_id: r for r in conn.execute(sa.select(fs)).all()}
    rows = []
    for f in settings.feeds:
        s = state.get(f.id)
        status = "never polled" if s is None else ("failing" if s.last_error else "ok")
        http = s.last_status if s is not None else None
        rows.append(
            {
                "feed_id": f.id,
                "name": f.name,
                "status": status,
                "last_polled_at": utc_text(s.last_polled_at) if s is not None else None,
                "last_success_at": utc_text(s.last_success_at) if s is not None else None,
                "http_status": http,
                # a 304 brought no items: showing the previous poll's count beside it misleads
                "items_last": "not modified" if http == 304 else (s.items_last if s is not None else None),
                "failed_runs_in_a_row": failed_runs_in_a_row(engine, f"feed:{f.id}") if s is not None else 0,
                # tries, Airflow's retries included, and polls outside Airflow (`feeds poll`)
                "failed_polls_in_a_row": int(s.consecutive_failures) if s is not None else 0,
                "url": s.url if s is not None else f.url,
                "final_url": s.final_url if s is not None else None,
                "dois_last": s.dois_last if s is not None else None,
                "last_error": s.last_error if s is not None else None,
                "last_warning": s.last_warning if s is not None else None,
            }
        )
    order = {"failing": 0, "never polled": 1, "ok": 2}
    return sorted(rows, key=lambda r: (order[r["status"]], r["name"].lower()))


def failed_runs_in_a_row(engine: Engine, source: str, *, look_back: int = 200) -> int:
    """How many of the latest ingest runs ended with `source` failed (each run's last attempt
    decides), newest first, up to the first run in which it succeeded."""
    import sqlalchemy as sa

    from lupus_alerts import store

    t = store.ingest_runs
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.c.run_id, t.c.attempt, t.c.error, t.c.finished_at)
            .where(t.c.source == source)
            .order_by(sa.desc(t.c.finished_at), sa.desc(t.c.attempt))
            .limit(look_back)
        ).all()
    seen: set[str] = set()
    count = 0
    for run_id, _attempt, error, _finished in rows:
        if run_id in seen:
            continue  # an earlier attempt of a run already decided by its last one
        seen.add(run_id)
        if not error:
            break
        count += 1
    return count


def format_health_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """A fixed-width text table of feed health, for a task log."""
    cols = (
        "feed_id",
        "status",
        "last_success_at",
        "http_status",
        "items_last",
        "failed_runs_in_a_row",
        "last_error",
    )
    heads = ("feed", "status", "last success", "http", "items", "failed runs in a row", "error")
    cells = [[("" if r.get(c) is None else str(r.get(c)))[:60] for c in cols] for r in rows]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(heads)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def feed_health_table(config: Settings | str | None) -> dict[str, Any]:
    """Task `feed_health`: log every feed's health as a table; return the counts by status."""
    settings = load_settings(config)
    engine = open_store(settings)
    rows = feed_health(engine, settings)
    log.info("feed health:\n%s", format_health_table(rows))
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    failing = [r["feed_id"] for r in rows if r["status"] == "failing"]
    return {"feeds": len(rows), "by_status": counts, "failing": failing}


# -- digests ------------------------------------------------------------------------------------
