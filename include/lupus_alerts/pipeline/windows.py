"""Which time window each ingest run, and each source within it, fetches (and why)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from lupus_alerts.config import Settings
from lupus_alerts.pipeline.common import (
    PUBMED_SOURCE,
    RUN_WATERMARK,
    PipelineError,
    RunWindow,
    _naive_utc,
    load_settings,
    open_store,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)


# -- ingest -------------------------------------------------------------------------------------


def run_window(
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
    from lupus_alerts import store

    mark = store.read_watermark(engine, RUN_WATERMARK)
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
    from lupus_alerts import store

    mark = store.read_watermark(engine, source_watermark(source))
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


def resolve_window(
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
    window = run_window(data_interval_start, data_interval_end, run_after, engine, settings)
    summary = {"run_id": run_id, **window.to_dict(), "feeds": len(settings.feeds)}
    log.info("ingest window for %s: %s", run_id, window.describe())
    return summary
