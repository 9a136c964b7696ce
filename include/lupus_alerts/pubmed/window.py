"""The PubMed search's creation-date window and the name of its watermark.

Which window a run reads is decided once, for every source, by `pipeline.windows` (a scheduled
run's data interval, or from the source's watermark); the watermark itself lives in `store`
(`store.read_watermark`, `store.advance_watermark`). What is PubMed's own is the overlap: records
are indexed days after their creation date, so the search reaches back `overlap_days` before the
window's start, and the upsert makes re-reading them harmless.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

WATERMARK_NAME = "pubmed"


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def search_window(start: datetime, end: datetime, overlap_days: int) -> tuple[datetime, datetime]:
    """The creation-date range a window's search covers: (start less the overlap, end), naive UTC.

    Depends only on its arguments, never on the clock, so a rerun searches the same range.
    """
    if overlap_days < 0:
        raise ValueError(f"overlap_days must be >= 0, not {overlap_days}")
    return _naive_utc(start) - timedelta(days=overlap_days), _naive_utc(end)
