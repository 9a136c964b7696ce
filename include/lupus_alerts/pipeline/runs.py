"""The run record: one `ingest_runs` row per source, run and attempt (watermarks: `store`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from lupus_alerts.pipeline.common import (
    ANNOUNCE_SOURCE,
    PipelineError,
    RunWindow,
    _jsonable,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)


def record_run(
    engine: Engine,
    run_id: str,
    source: str,
    stats: Mapping[str, Any],
    *,
    window: RunWindow | None = None,
    error: str | None = None,
) -> int:
    """Add one source's stats for a run to store.ingest_runs, as the next attempt; returns it.

    A retried or cleared task adds a row (attempt 2, 3, ...) instead of overwriting the
    first: what the first attempt announced stays on record next to what the rerun did.
    """
    import sqlalchemy as sa

    from lupus_alerts import store

    t = store.ingest_runs
    values = {
        "window_start": window.start if window else None,
        "window_end": window.end if window else None,
        "stats": _jsonable(dict(stats)),
        "error": error,
        "finished_at": store.utcnow(),
    }
    for _ in range(3):  # two writers of the same source and run (never in one DAG run) race once
        try:
            with store.transaction(engine) as conn:
                last = conn.execute(
                    sa.select(sa.func.max(t.c.attempt)).where(t.c.run_id == run_id, t.c.source == source)
                ).scalar()
                attempt = int(last or 0) + 1
                conn.execute(sa.insert(t).values(run_id=run_id, source=source, attempt=attempt, **values))
            return attempt
        except sa.exc.IntegrityError:
            continue
    raise PipelineError(f"could not record run {run_id} for {source}: concurrent writers")


def run_records(engine: Engine, run_id: str, *, every_attempt: bool = False) -> list[dict[str, Any]]:
    """Each source's row of store.ingest_runs for one run: its last attempt, with `attempts`
    (how many there were); with `every_attempt`, every attempt's row, oldest first."""
    import sqlalchemy as sa

    from lupus_alerts import store

    t = store.ingest_runs
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                t.c.source,
                t.c.attempt,
                t.c.stats,
                t.c.error,
                t.c.window_start,
                t.c.window_end,
                t.c.finished_at,
            )
            .where(t.c.run_id == run_id)
            .order_by(t.c.source, t.c.attempt)
        ).all()
    out = [dict(r._mapping) for r in rows]
    if every_attempt:
        return out
    last: dict[str, dict[str, Any]] = {}
    for r in out:
        last[r["source"]] = {**r, "attempts": r["attempt"]}
    return list(last.values())


def recent_runs(engine: Engine, limit: int = 10) -> list[dict[str, Any]]:
    """The latest ingest runs, newest first, each with what every attempt announced: a cleared
    and rerun run shows the first attempt's new papers and the rerun's side by side."""
    import sqlalchemy as sa

    from lupus_alerts import store

    t = store.ingest_runs
    with engine.connect() as conn:
        runs = conn.execute(
            sa.select(t.c.run_id, sa.func.max(t.c.finished_at).label("finished_at"))
            .group_by(t.c.run_id)
            .order_by(sa.desc("finished_at"))
            .limit(limit)
        ).all()
    out = []
    for run_id, finished in runs:
        rows = run_records(engine, run_id, every_attempt=True)
        announced = [r for r in rows if r["source"] == ANNOUNCE_SOURCE]
        out.append(
            {
                "run_id": run_id,
                "finished_at": utc_text(finished),
                "new_papers": [int((r["stats"] or {}).get("new_papers") or 0) for r in announced],
                "failed": sorted({r["source"] for r in run_records(engine, run_id) if r["error"]}),
            }
        )
    return out


def utc_text(value: datetime | None) -> str | None:
    """A stored (naive UTC) time as operators read it: ISO 8601 to the second, marked UTC."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.replace(microsecond=0).isoformat(sep=" ") + " UTC"
