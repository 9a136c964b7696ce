"""The PubMed ingest's creation-date window and its watermark.

Owns the `pubmed` watermark in `store.watermarks`: where the next window starts (the stored
end less the overlap, or the initial look-back on a fresh store), never from the clock, and
advancing it, never backwards.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

WATERMARK_NAME = "pubmed"


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def read_watermark(engine: Engine, name: str = WATERMARK_NAME) -> datetime | None:
    """The stored end of the last successful window, or None on a fresh store."""
    import sqlalchemy as sa

    from lupus_alerts.store import watermarks

    with engine.connect() as conn:
        return conn.execute(sa.select(watermarks.c.value).where(watermarks.c.name == name)).scalar()


def decide_window(
    engine: Engine,
    *,
    run_end: datetime,
    overlap_days: int,
    initial_lookback_days: int,
    name: str = WATERMARK_NAME,
) -> tuple[datetime, datetime]:
    """The creation-date window a run searches: (last window's end - overlap, run_end).

    On a fresh store the window starts `initial_lookback_days` before `run_end`. The window
    depends only on the stored watermark and the run's own end, never on the clock, so a rerun
    searches the same window. The overlap re-reads records PubMed created late in the last
    window (upserts make re-reading harmless). Pass the result to `ingest_window` with
    `overlap_days=0`, since it is already applied.
    """
    end = _naive_utc(run_end)
    mark = read_watermark(engine, name)
    if mark is None:
        return end - timedelta(days=initial_lookback_days), end
    start = min(mark, end) - timedelta(days=overlap_days)
    return start, end


def record_window(engine: Engine, end: datetime, name: str = WATERMARK_NAME) -> datetime:
    """Advance the watermark to `end` after a successful window; it never moves backwards.

    Returns the watermark now stored.
    """
    import sqlalchemy as sa

    from lupus_alerts.store import utcnow, watermarks

    end = _naive_utc(end)
    with engine.begin() as conn:
        current = conn.execute(sa.select(watermarks.c.value).where(watermarks.c.name == name)).scalar()
        if current is None:
            conn.execute(sa.insert(watermarks).values(name=name, value=end, updated_at=utcnow()))
            return end
        if end > current:
            conn.execute(
                sa.update(watermarks).where(watermarks.c.name == name).values(value=end, updated_at=utcnow())
            )
            return end
        return current
