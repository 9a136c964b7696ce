"""The PubMed ingest of one window: search, fetch, parse, upsert, and the run's summary.

Owns the orchestration: the E-utilities client's prefetching fetch of the window, each batch
parsed and upserted (`dedupe.upsert_papers`) while the next downloads, deletions and unreadable
records counted (problems listed up to `MAX_PROBLEMS_REPORTED`), ESearch's count checked
against what EFetch returned, and the watermark moved only when every record was stored.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from lupus_alerts.models import Paper
from lupus_alerts.pubmed.items import DeletedCitation
from lupus_alerts.pubmed.stream import parse_pubmed
from lupus_alerts.pubmed.window import WATERMARK_NAME, search_window

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from lupus_alerts.config import Settings
    from lupus_alerts.eutils import EutilsClient

MAX_PROBLEMS_REPORTED = 50


def _stat(stats: Any, key: str) -> int:
    if stats is None:
        return 0
    if isinstance(stats, dict):
        return int(stats.get(key) or 0)
    return int(getattr(stats, key, 0) or 0)


def _new_summary(search_start: datetime, search_end: datetime) -> dict[str, Any]:
    """The summary before the first batch: the days searched, and every count at zero."""
    return {
        "search_start": search_start.date().isoformat(),
        "search_end": search_end.date().isoformat(),
        "hits": None,
        "fetched": 0,
        "parsed": 0,
        "deleted": 0,
        "problems": [],
        "problem_count": 0,
        "new": 0,
        "updated": 0,
        "unchanged": 0,
        "merged": 0,
        "notices_new": 0,
        "batches": 0,
    }


def _batch_papers(body: bytes, fetched_at: datetime, summary: dict[str, Any]) -> list[Paper]:
    """The batch's papers, stamped `fetched_at`; its deletions and (capped) problems are counted."""
    papers: list[Paper] = []
    for item in parse_pubmed(body):
        if isinstance(item, Paper):
            item.fetched_at = fetched_at
            papers.append(item)
        elif isinstance(item, DeletedCitation):
            summary["deleted"] += len(item.pmids)
        else:
            summary["problem_count"] += 1
            if len(summary["problems"]) < MAX_PROBLEMS_REPORTED:
                summary["problems"].append({"pmid": item.pmid, "reason": item.reason})
    return papers


def _check_hits(summary: dict[str, Any], hits: int | None) -> None:
    """Records ESearch's count, and a problem when EFetch returned fewer records than it."""
    summary["hits"] = hits
    if hits is not None and summary["fetched"] < hits:
        # PubMed can withdraw a record between the search and the fetch; anything more
        # than that must be visible in the run's summary.
        summary["problem_count"] += 1
        summary["problems"].append(
            {
                "pmid": None,
                "reason": f"ESearch counted {hits} records, EFetch returned {summary['fetched']}",
            }
        )


def _settle_watermark(engine: Engine, summary: dict[str, Any], end: datetime, record: bool) -> None:
    """Whether the watermark moves to `end`: only when every record the window held is stored."""
    # Records the window held that are not in the store now: unreadable ones, and ones ESearch
    # counted that EFetch did not return. The watermark says "everything before me is stored",
    # so it stays put; the next run over this window tries them again.
    summary["expected"] = max(summary["hits"] or 0, summary["fetched"])
    summary["unstored"] = max(0, summary["expected"] - summary["parsed"])
    summary["watermark"] = None
    if record and not summary["unstored"]:
        from lupus_alerts.store import advance_watermark

        summary["watermark"] = advance_watermark(engine, WATERMARK_NAME, end).isoformat()


def ingest_window(
    settings: Settings,
    engine: Engine,
    *,
    start: datetime,
    end: datetime,
    client: EutilsClient | None = None,
    overlap_days: int | None = None,
    record: bool = True,
) -> dict[str, Any]:
    """Search PubMed for records created from `start` (less the overlap) to `end`, upsert them.

    The search runs on inclusive creation days (`[crdt]` is day-granular), widened backwards by
    `overlap_days` (default `settings.pubmed.overlap_days`). Batches are fetched in a background
    thread while the previous one is parsed and upserted. Unreadable records are counted and
    listed (capped) in the summary, never fatal; E-utilities failures raise `EutilsError`. The
    `pubmed` watermark advances to `end` (when `record`) only if every record the window held
    was stored: never past a record that was not.

    Returns {"search_start", "search_end", "hits" (ESearch's count), "fetched", "parsed",
    "deleted", "problems", "problem_count", "new", "updated", "unchanged", "merged",
    "notices_new", "requests", "calls", "batches", "expected" (records the window held),
    "unstored" (of those, not stored), "watermark" (the stored watermark, ISO, or None when it
    was not advanced)} (the upsert counts are `dedupe.UpsertStats`').
    """
    from lupus_alerts.dedupe import upsert_papers
    from lupus_alerts.eutils import EutilsClient, count_records
    from lupus_alerts.store import utcnow

    overlap = settings.pubmed.overlap_days if overlap_days is None else overlap_days
    s, e = search_window(start, end, overlap)
    own = client is None
    c = client or EutilsClient.from_settings(settings.pubmed)
    summary = _new_summary(s, e)
    requests_before = c.requests_made
    calls_before = dict(c.calls)
    fetched_at = utcnow()
    try:
        for body in c.prefetch_window(settings.pubmed.query, s.date(), e.date()):
            summary["batches"] += 1
            summary["fetched"] += count_records(body)
            papers = _batch_papers(body, fetched_at, summary)
            summary["parsed"] += len(papers)
            if papers:
                stats = upsert_papers(engine, papers)
                for key in ("new", "updated", "unchanged", "merged", "notices_new"):
                    summary[key] += _stat(stats, key)
        _check_hits(summary, c.last_window_hits)
    finally:
        summary["requests"] = c.requests_made - requests_before
        summary["calls"] = {k: v - calls_before.get(k, 0) for k, v in c.calls.items()}
        if own:
            c.close()
    _settle_watermark(engine, summary, e, record)
    return summary
