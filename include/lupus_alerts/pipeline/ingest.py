"""The ingest tasks: PubMed, each feed, then classify and announce, and the asset event's counts."""

from __future__ import annotations

import logging
from collections.abc import Mapping, MutableMapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from lupus_alerts.config import Settings
from lupus_alerts.pipeline.common import (
    ANNOUNCE_SOURCE,
    PUBMED_SOURCE,
    RUN_WATERMARK,
    FeedPollFailed,
    RunWindow,
    _jsonable,
    load_settings,
    open_store,
)
from lupus_alerts.pipeline.runs import (
    record_run,
    run_records,
)
from lupus_alerts.pipeline.windows import source_window

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)


def list_feeds(config: Settings | str | None) -> list[dict[str, str]]:
    """Task `list_feeds`: the configured feeds as small dicts to map `poll_feed` over."""
    settings = load_settings(config)
    return [{"id": f.id, "name": f.name} for f in settings.feeds]


def search_pubmed(config: Settings | str | None, *, window: Mapping[str, str]) -> dict[str, Any]:
    """Task `search_pubmed`: how many PubMed records the window holds, and in how many batches.

    One count-only ESearch over the same creation days `fetch_pubmed` will read (the window
    widened by `pubmed.overlap_days`), so the run shows what is coming before fetching it and
    an NCBI outage shows up here, cheaply. The fetch repeats its own search with the history
    server: a WebEnv kept between tasks could expire before a retry.
    """
    import math

    from lupus_alerts.eutils import EutilsClient

    settings = load_settings(config)
    w = source_window(open_store(settings), settings, RunWindow.from_dict(window), PUBMED_SOURCE)
    start = (w.start - timedelta(days=settings.pubmed.overlap_days)).date()
    with EutilsClient.from_settings(settings.pubmed) as client:
        result = client.esearch(settings.pubmed.query, mindate=start, maxdate=w.end.date(), usehistory=False)
    p = settings.pubmed
    summary = {
        "search_start": start.isoformat(),
        "search_end": w.end.date().isoformat(),
        "hits": result.count,
        "batches": math.ceil(result.count / p.batch_size),
        # Above the cap the fetch splits the window into day ranges (more searches, same records).
        "split_window": result.count >= p.max_hits_per_window,
    }
    log.info("%s", summary_table(f"pubmed search {w.describe()}:", summary))
    return summary


def fetch_pubmed(config: Settings | str | None, *, window: Mapping[str, str], run_id: str) -> dict[str, Any]:
    """Task `fetch_pubmed`: search PubMed for the window and fetch, parse and upsert the records.

    `pubmed.ingest_window` owns the E-utilities conversation (history server, batches of
    `pubmed.batch_size`, rate limit, window splitting past 9,999 hits) and the merge into the
    store; this records what it did in store.ingest_runs. Records of the window that could not
    be stored are recorded as the source's error (the task stays green: retrying cannot make
    an unreadable record readable), which keeps the run's own watermark where it was.
    """
    from lupus_alerts import pubmed

    settings = load_settings(config)
    engine = open_store(settings)
    w = source_window(engine, settings, RunWindow.from_dict(window), PUBMED_SOURCE)
    log.info("pubmed window: %s", w.describe())
    try:
        stats = pubmed.ingest_window(settings, engine, start=w.start, end=w.end)
    except Exception as e:
        record_run(engine, run_id, PUBMED_SOURCE, {}, window=w, error=f"{type(e).__name__}: {e}")
        raise
    summary = _jsonable(stats)
    error = _unstored_error(summary)
    # Unstored records make the source count as failed for the run (so the run's watermark
    # holds too) without failing the task: a retry would fetch the same unreadable record.
    record_run(engine, run_id, PUBMED_SOURCE, summary, window=w, error=error)
    if error:
        log.warning("pubmed: %s", error)
    log.info("%s", summary_table("pubmed:", summary))
    return summary


def _unstored_error(summary: Mapping[str, Any]) -> str | None:
    """The operator's line for records of the window that are not in the store, or None."""
    unstored = int(summary.get("unstored") or 0)
    if not unstored:
        return None
    pmids = [str(p["pmid"]) for p in summary.get("problems", []) if p.get("pmid")]
    named = f" (PMIDs {', '.join(pmids[:10])}{', ...' if len(pmids) > 10 else ''})" if pmids else ""
    return (
        f"{unstored} of {summary.get('expected')} records in the window were not stored{named};"
        " the pubmed watermark stays where it was, so the next run over this window tries them again"
    )


# The context key a mapped `poll_feed` sets for its `map_index_template` (the grid's label).
OUTCOME_KEY = "lupus_outcome"


def feed_outcome_label(name: str, summary: Mapping[str, Any]) -> str:
    """What a feed's poll did, in a few words for the grid: "Lupus · 9 items, 3 new",
    "Lupus · not modified", "Annals · HTTP 404"."""
    if summary.get("error"):
        return f"{name} · {str(summary['error'])[:60]}"
    if summary.get("not_modified"):
        return f"{name} · not modified"
    items, new = int(summary.get("items") or 0), int(summary.get("new") or 0)
    return f"{name} · {items} item{'s' * (items != 1)}, {new} new"


def poll_feed(
    config: Settings | str | None,
    *,
    feed_id: str,
    run_id: str,
    window: Mapping[str, str] | None = None,
    outcome_to: MutableMapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Task `poll_feed` (one mapped instance per journal): fetch, parse and upsert one feed.

    `feeds.poll_feed` records the feed's state (validators, status, error, failures) whatever
    happens; a failed poll then raises `FeedPollFailed`, so the journal's mapped task goes red
    in the UI and its failure notification fires, while the other journals carry on. The
    outcome's label goes into `outcome_to[OUTCOME_KEY]` (the task's context) either way.
    """
    from lupus_alerts import feeds

    settings = load_settings(config)
    engine = open_store(settings)
    feed = settings.feed(feed_id)
    w = RunWindow.from_dict(window) if window else None
    outcome = feeds.poll_feed(settings, engine, feed)
    summary = _jsonable(outcome)
    error = summary.get("error") if isinstance(summary, dict) else None
    record_run(engine, run_id, f"feed:{feed_id}", summary, window=w, error=error)
    if outcome_to is not None:
        outcome_to[OUTCOME_KEY] = feed_outcome_label(feed.name, summary)
    if error:
        raise FeedPollFailed(f"feed {feed_id} ({feed.name}): {error}")
    log.info("%s", summary_table(f"feed {feed_id}: {feed_outcome_label(feed.name, summary)}", summary))
    return summary


def classify_and_announce(
    config: Settings | str | None, *, run_id: str, window: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Task `classify_and_announce`: classify unclassified papers and number the new lupus ones.

    Runs even when a source failed (what did arrive is announced). Records its stats in
    store.ingest_runs, moves the run watermark forward, and returns the asset event's extra:
    papers per source for this run, new papers announced, new papers per topic.
    """
    from lupus_alerts import announce, classify

    settings = load_settings(config)
    engine = open_store(settings)
    before = _last_announce_no(engine)
    classifier = classify.Classifier(classify.load_taxonomy(settings.taxonomy))
    stats = announce.classify_and_announce(engine, classifier, now=_now())
    after = _last_announce_no(engine)
    extra = asset_extra(engine, run_id, before, after)
    # The id lists can be long: the asset event and XCom carry counts only.
    extra["announce"] = {k: v for k, v in _jsonable(stats).items() if not k.endswith("_ids")}
    w = RunWindow.from_dict(window) if window else None
    record_run(engine, run_id, ANNOUNCE_SOURCE, extra, window=w)
    if w is not None:
        # The run is complete whatever failed: a failed source keeps its own watermark
        # (`source_window`), so it alone reads the missed days again in the next manual run.
        from lupus_alerts import store

        store.advance_watermark(engine, RUN_WATERMARK, w.end)
    log.info("%s", announce_report(extra))
    return event_extra(extra)


def announce_numbers(extra: Mapping[str, Any]) -> str:
    """The announcement numbers a run handed out ("43-45", "43"), or "none"."""
    first, last = int(extra["announce_from"]) + 1, int(extra["announce_to"])
    if last < first:
        return "none"
    return str(first) if first == last else f"{first}-{last}"


def announce_report(extra: Mapping[str, Any]) -> str:
    """The run's story as a small table for the task log: per source, per topic, failures."""
    new = int(extra["new_papers"])
    if new:
        head = f"Announced {new} new lupus paper{'s' * (new != 1)} (numbers {announce_numbers(extra)})."
    else:
        head = "No new lupus papers in this run."
    lines = [head, "", "papers this run, per source:"]
    per_source: Mapping[str, int] = extra.get("per_source") or {}
    failed = set(extra.get("failed_sources") or [])
    width = max((len(s) for s in per_source), default=6)
    for source, n in sorted(per_source.items()):
        lines.append(f"  {source:<{width}}  {n:>6}{'  FAILED' if source in failed else ''}")
    if not per_source:
        lines.append("  (no source reported)")
    per_topic: Mapping[str, int] = extra.get("per_topic") or {}
    if per_topic:
        lines += ["", "new lupus papers, per topic:"]
        width = max(len(t) for t in per_topic)
        lines += [
            f"  {t:<{width}}  {n:>6}" for t, n in sorted(per_topic.items(), key=lambda kv: (-kv[1], kv[0]))
        ]
    lines += ["", f"failed sources: {', '.join(sorted(failed)) if failed else 'none'}"]
    return "\n".join(lines)


def event_extra(extra: Mapping[str, Any]) -> dict[str, Any]:
    """The asset event's extra, flat: the Airflow UI folds a nested object into `{…}`, so every
    count is a top-level key ("papers from pubmed", "new in nephrology")."""
    out: dict[str, Any] = {
        "run_id": extra["run_id"],
        "new_papers": int(extra["new_papers"]),
        "numbers": announce_numbers(extra),
        "failed_sources": ", ".join(extra.get("failed_sources") or []) or "none",
    }
    for source, n in sorted((extra.get("per_source") or {}).items()):
        out[f"papers from {source}"] = n
    for topic, n in sorted((extra.get("per_topic") or {}).items()):
        out[f"new in {topic}"] = n
    return out


def asset_extra(engine: Engine, run_id: str, announce_before: int, announce_after: int) -> dict[str, Any]:
    """The counts the `lupus_alerts://papers` asset event carries (JSON-able, small)."""
    import sqlalchemy as sa

    from lupus_alerts import store

    per_source: dict[str, int] = {}
    failed: list[str] = []
    for row in run_records(engine, run_id):
        if row["source"] == ANNOUNCE_SOURCE:
            continue
        per_source[row["source"]] = _papers_count(row["stats"] or {})
        if row["error"]:
            failed.append(row["source"])
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(store.paper_topics.c.label, sa.func.count())
            .join(store.papers, store.papers.c.id == store.paper_topics.c.paper_id)
            .where(store.papers.c.announce_no > announce_before, store.papers.c.announce_no <= announce_after)
            .group_by(store.paper_topics.c.label)
            .order_by(store.paper_topics.c.label)
        ).all()
    return {
        "run_id": run_id,
        "per_source": per_source,
        "failed_sources": failed,
        "new_papers": max(0, announce_after - announce_before),
        "announce_from": announce_before,
        "announce_to": announce_after,
        "per_topic": {label: int(n) for label, n in rows},
    }


def _papers_count(stats: Mapping[str, Any]) -> int:
    # Sources report their item counts under slightly different names; take the first present.
    for key in ("papers", "parsed", "kept", "fetched", "items", "records", "count"):
        v = stats.get(key)
        if isinstance(v, int):
            return v
    return 0


def _last_announce_no(engine: Engine) -> int:
    from lupus_alerts import store

    with engine.connect() as conn:
        return store.high_water_marks(conn)[0]


def _now() -> datetime:
    # Announcement time stamps are bookkeeping, not data windows: wall-clock time is right here.
    from lupus_alerts import store

    return store.utcnow()


def summary_table(title: str, summary: Mapping[str, Any]) -> str:
    """A task's summary for its log: a title line, then one aligned "name  value" line per
    figure (nested values and id lists stay in the XCom, not in the log)."""
    flat = {k: v for k, v in summary.items() if not isinstance(v, Mapping | list | tuple) and v is not None}
    width = max((len(k) for k in flat), default=0)
    return "\n".join([title, *(f"  {k:<{width}}  {v}" for k, v in flat.items())])


# -- feed health --------------------------------------------------------------------------------
