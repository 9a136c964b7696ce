"""What each Airflow task calls: one function per task, each returning a small summary dict.

The DAG files in `dags/` are a table of contents; every task body is one call into this module,
and this module is glue: it loads the settings, opens the store and calls the library module
that owns the work (`pubmed`, `feeds`, `announce`, `delivery`). Papers flow through the store,
never through XCom: what a task returns is a JSON-able summary small enough for the UI.

Every function takes plain arguments (a config path or `Settings`, the run's window, its
run_id), so it runs the same under `dag.test()`, a real scheduler, the demo and a unit test.
This module imports nothing heavy at import time: the DAG files import it while being parsed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from dataclasses import asdict, dataclass, is_dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from lupus_alerts.config import ScheduleSettings, Settings, load_config

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

# Source names in store.ingest_runs besides "pubmed" and "feed:<id>".
ANNOUNCE_SOURCE = "announce"
PUBMED_SOURCE = "pubmed"
# The watermark a manual (or asset-triggered) ingest run starts from when it has no data interval.
RUN_WATERMARK = "ingest_run_end"
# Subscribers per mapped send task: enough to amortise a task's start-up, few enough that a
# retry of one chunk repeats little (the ledger makes a repeat harmless anyway).
# Subscribers per mapped send task: large enough that task start-up is amortised, small enough
# that a retried chunk (the ledger skips what was sent) and the XCom of chunk lists stay small.
DIGEST_CHUNK_SIZE = 200


class PipelineError(Exception):
    """A pipeline step failed in a way the operator must see (the task goes red)."""


class FeedPollFailed(PipelineError):
    """A journal feed could not be polled; its state (error, failures) is already recorded."""


class DigestSendFailed(PipelineError):
    """Some digests in a chunk failed to send; the ledger knows which, a retry resends only those."""


@dataclass(frozen=True, slots=True)
class RunWindow:
    """The half-open time window [start, end) an ingest run covers (naive UTC).

    `origin` says where its start came from: "data_interval" (scheduled runs), "watermark"
    (manual and asset-triggered runs, which have no data interval in Airflow 3: the end of the
    last run, or for one source the end of the last run in which it succeeded) or "lookback"
    (no such run yet: `pubmed.initial_lookback_days` before the end). `why` says it in words,
    for the log.
    """

    start: datetime
    end: datetime
    origin: str
    why: str = ""

    def to_dict(self) -> dict[str, str]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "origin": self.origin,
            "why": self.why,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, str]) -> RunWindow:
        return cls(
            datetime.fromisoformat(d["start"]),
            datetime.fromisoformat(d["end"]),
            d["origin"],
            d.get("why", ""),
        )

    def describe(self) -> str:
        start, end = self.start.isoformat(sep=" "), self.end.isoformat(sep=" ")
        return f"{start} .. {end} UTC ({self.why or self.origin})"


# -- settings and store -------------------------------------------------------------------------


def load_settings(config: Settings | str | os.PathLike[str] | None = None) -> Settings:
    """The validated settings: given, from a path, or from $LUPUS_ALERTS_CONFIG / ./lupus-alerts.yaml."""
    if isinstance(config, Settings):
        return config
    return load_config(config)


def open_store(settings: Settings) -> Engine:
    """The store's engine, migrated to the latest schema (cheap when already current)."""
    from lupus_alerts import store

    store.upgrade(settings.database_url)
    return store.get_engine(settings.database_url)


def schedule_settings(config: str | os.PathLike[str] | None = None) -> ScheduleSettings:
    """The schedule section for DAG files at parse time; defaults if the config can't be read.

    DAG parsing must never fail or be slow because of the config: a broken file shows up when
    the first task loads it (a red task with the file, field and problem), not as an import error.
    """
    try:
        return load_config(config).schedule
    except Exception as e:  # any problem at parse time means "use the defaults"; tasks report it
        log.debug("schedule settings unavailable at parse time (%s); using defaults", e)
        return ScheduleSettings()


def _naive_utc(value: datetime | str | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    return value


# -- run bookkeeping ----------------------------------------------------------------------------


def read_watermark(engine: Engine, name: str) -> datetime | None:
    """The stored high-water mark `name`, or None."""
    import sqlalchemy as sa

    from lupus_alerts import store

    with engine.connect() as conn:
        return conn.execute(
            sa.select(store.watermarks.c.value).where(store.watermarks.c.name == name)
        ).scalar()


def write_watermark(engine: Engine, name: str, value: datetime) -> None:
    """Move the watermark `name` forward to `value` (never backwards: reruns of old runs are safe)."""
    import sqlalchemy as sa

    from lupus_alerts import store

    wm = store.watermarks
    with store.transaction(engine) as conn:
        current = conn.execute(sa.select(wm.c.value).where(wm.c.name == name)).scalar()
        if current is None:
            conn.execute(sa.insert(wm).values(name=name, value=value, updated_at=store.utcnow()))
        elif value > current:
            conn.execute(
                sa.update(wm).where(wm.c.name == name).values(value=value, updated_at=store.utcnow())
            )


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


# -- ingest -------------------------------------------------------------------------------------


def resolve_window(
    data_interval_start: datetime | str | None,
    data_interval_end: datetime | str | None,
    run_after: datetime | str | None,
    engine: Engine,
    settings: Settings,
) -> RunWindow:
    """The window an ingest run covers.

    Scheduled runs (CronDataIntervalTimetable) use their data interval, so a rerun or a
    catch-up run of a past day reads exactly that day again. Manual and asset-triggered runs
    have no data interval in Airflow 3: they cover from the end of the last completed run
    (the `ingest_run_end` watermark) to the run's `run_after`, or one lookback period before
    `run_after` on a fresh store. The PubMed step widens its own search by
    `pubmed.overlap_days` (records are indexed late), so a narrow window loses nothing.
    """
    start = _naive_utc(data_interval_start)
    end = _naive_utc(data_interval_end)
    if start is not None and end is not None and end > start:
        return RunWindow(start, end, "data_interval", "start: the scheduled run's data interval")
    end = _naive_utc(run_after) or end
    if end is None:
        raise PipelineError("a run with neither a data interval nor run_after has no window")
    mark = read_watermark(engine, RUN_WATERMARK)
    if mark is not None and mark < end:
        return RunWindow(
            mark, end, "watermark", f"start: the end of the last completed run (watermark {RUN_WATERMARK})"
        )
    days = settings.pubmed.initial_lookback_days
    return RunWindow(
        end - timedelta(days=days),
        end,
        "lookback",
        f"start: {days} days before the run, no completed run yet",
    )


def source_watermark(source: str) -> str:
    """The name of the watermark that holds the end of the last window `source` read in full.

    PubMed's is the one `pubmed.ingest_window` advances once every record of a window is
    stored. Feeds read no window (a conditional GET of the whole feed; `feed_state` holds their
    last success), so only windowed sources have one.
    """
    from lupus_alerts import pubmed

    return pubmed.WATERMARK_NAME if source == PUBMED_SOURCE else f"{RUN_WATERMARK}:{source}"


def source_window(engine: Engine, settings: Settings, window: RunWindow, source: str) -> RunWindow:
    """The window one source reads in a run: a scheduled run's data interval as it is; in a
    manual run, from the end of the last run in which *this* source succeeded, so that a
    source that keeps failing holds back only itself (issue 14, defect 3), never the others.
    """
    if window.origin == "data_interval":
        return window
    mark = read_watermark(engine, source_watermark(source))
    if mark is not None and mark < window.end:
        name = source_watermark(source)
        why = f"start: the end of the last window {source} read in full (watermark {name!r})"
        return RunWindow(mark, window.end, "watermark", why)
    if mark is None and window.origin == "watermark":
        # a store from before per-source watermarks: the run's own is the best it knows
        return RunWindow(
            window.start, window.end, "watermark", window.why + f"; no watermark for {source} yet"
        )
    return window


def start_ingest(
    config: Settings | str | None,
    *,
    data_interval_start: datetime | str | None,
    data_interval_end: datetime | str | None,
    run_after: datetime | str | None,
    run_id: str,
) -> dict[str, Any]:
    """Task `resolve_window`: validate the config, migrate the store, decide the run's window."""
    settings = load_settings(config)
    engine = open_store(settings)
    window = resolve_window(data_interval_start, data_interval_end, run_after, engine, settings)
    summary = {"run_id": run_id, **window.to_dict(), "feeds": len(settings.feeds)}
    log.info("ingest window for %s: %s", run_id, window.describe())
    return summary


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
        write_watermark(engine, RUN_WATERMARK, w.end)
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


def digest_day(
    logical_date: datetime | str | None, run_after: datetime | str | None, settings: Settings
) -> date:
    """The day a digest run is for, in the digest's time zone.

    Fallback (cron) runs have a logical date; asset-triggered runs only a `run_after`.
    """
    when = logical_date or run_after
    if when is None:
        raise PipelineError("a digest run with neither logical_date nor run_after has no day")
    if isinstance(when, str):
        when = datetime.fromisoformat(when)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(ZoneInfo(settings.digest.timezone)).date()


def plan_digests(config: Settings | str | None, *, day: date | str) -> dict[str, Any]:
    """Task `plan_digests`: who is due a digest on `day` (daily ones; weekly ones on their weekday).

    `delivery.plan_period` writes a `queued` ledger row per due subscriber (idempotent: one row
    per subscriber and period), and the due subscriber ids are split into chunks for the mapped
    send tasks.
    """
    from lupus_alerts import delivery

    settings = load_settings(config)
    engine = open_store(settings)
    d = date.fromisoformat(day) if isinstance(day, str) else day
    plan = delivery.plan_period(engine, settings, day=d, now=_now())
    ids = sorted(_due_ids(plan))
    chunks = [ids[i : i + DIGEST_CHUNK_SIZE] for i in range(0, len(ids), DIGEST_CHUNK_SIZE)]
    summary = {
        "day": d.isoformat(),
        "due": len(ids),
        "chunks": chunks,
        "plan": _jsonable(_plan_summary(plan)),
    }
    log.info("digests for %s: %d subscribers due in %d chunk(s)", d, len(ids), len(chunks))
    return summary


def _due_ids(plan: Any) -> Iterable[int]:
    if isinstance(plan, Mapping):
        plan = plan.get("due") or plan.get("subscriber_ids") or []
    elif hasattr(plan, "due"):
        plan = plan.due
    elif hasattr(plan, "subscriber_ids"):
        plan = plan.subscriber_ids
    return [int(getattr(x, "subscriber_id", x)) for x in plan]


def _plan_summary(plan: Any) -> Any:
    if is_dataclass(plan) and not isinstance(plan, type):
        d = asdict(plan)
        return {k: (len(v) if isinstance(v, list) else v) for k, v in d.items()}
    return {}


def send_digest_chunk(
    config: Settings | str | None, *, subscriber_ids: Sequence[int], day: date | str
) -> dict[str, Any]:
    """Task `send_digests` (mapped over chunks): build and send the due digests of these subscribers.

    The ledger makes this safe to retry or clear: a digest already sent for the period is never
    sent again. Raises `DigestSendFailed` when some failed transiently, so Airflow retries them.
    """
    from lupus_alerts import delivery

    settings = load_settings(config)
    engine = open_store(settings)
    d = date.fromisoformat(day) if isinstance(day, str) else day
    stats = delivery.send_due(engine, settings, day=d, subscriber_ids=list(subscriber_ids), now=_now())
    summary = _jsonable(stats)
    # Addresses stay out of XCom and the UI: the log names the subscriber ids and reasons only.
    errors = summary.pop("errors", []) if isinstance(summary, dict) else []
    for e in errors:
        log.warning(
            "digest for subscriber %s: %s (%s)", e.get("subscriber_id"), e.get("reason"), e.get("state")
        )
    log.info("%s", summary_table(f"digests for {d}, {len(list(subscriber_ids))} subscribers:", summary))
    transient = summary.get("failed_transient", 0) if isinstance(summary, dict) else 0
    if transient:
        raise DigestSendFailed(
            f"{transient} digest(s) failed transiently for {d}; retrying resends only those"
        )
    return summary


def report_digests(
    results: Sequence[Mapping[str, Any] | None] | Iterable[Mapping[str, Any] | None], *, day: date | str
) -> dict[str, Any]:
    """Task `report_digests`: add up the chunks' results into one line for the log and the UI."""
    totals: dict[str, int] = {}
    chunks = 0
    # Airflow hands a mapped task's results over as a lazy sequence whose iterator asks for one
    # item past the end, which the task SDK logs as "XCom not found" on every run; a slice is
    # one request for exactly the items there are.
    items = results[:] if isinstance(results, Sequence) else list(results)
    for r in items:
        if not r:
            continue
        chunks += 1
        for k, v in r.items():
            if isinstance(v, int) and not isinstance(v, bool):
                totals[k] = totals.get(k, 0) + v
    d = day.isoformat() if isinstance(day, date) else day
    summary = {"day": d, "chunks": chunks, **totals}
    log.info("%s", summary_table(f"digest report {d}:", summary))
    return summary
