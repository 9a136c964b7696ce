"""What each Airflow task calls: one function per task, each returning a small summary dict.

The DAG files in `dags/` are a table of contents; every task body is one call into this package,
and this package is glue: it loads the settings, opens the store and calls the library module
that owns the work (`pubmed`, `feeds`, `announce`, `delivery`). Papers flow through the store,
never through XCom: what a task returns is a JSON-able summary small enough for the UI.

Every function takes plain arguments (a config path or `Settings`, the run's window, its
run_id), so it runs the same under `dag.test()`, a real scheduler, the demo and a unit test.
This package imports nothing heavy at import time: the DAG files import it while being parsed.

Modules: `common` (settings, store, the run window, errors), `runs` (run records),
`windows` (each run's and each source's window), `ingest`, `health` (source health), `digests`.
"""

from __future__ import annotations

from lupus_alerts.pipeline.common import (
    ANNOUNCE_SOURCE,
    DIGEST_CHUNK_SIZE,
    PUBMED_SOURCE,
    RUN_WATERMARK,
    DigestSendFailed,
    FeedPollFailed,
    PipelineError,
    RunWindow,
    load_settings,
    open_store,
    schedule_settings,
)
from lupus_alerts.pipeline.digests import (
    digest_day,
    plan_digests,
    report_digests,
    send_digest_chunk,
)
from lupus_alerts.pipeline.health import (
    failed_runs_in_a_row,
    feed_health,
    feed_health_table,
    format_health_table,
)
from lupus_alerts.pipeline.ingest import (
    OUTCOME_KEY,
    announce_numbers,
    announce_report,
    asset_extra,
    classify_and_announce,
    event_extra,
    feed_outcome_label,
    fetch_pubmed,
    list_feeds,
    poll_feed,
    search_pubmed,
    summary_table,
)
from lupus_alerts.pipeline.runs import (
    recent_runs,
    record_run,
    run_records,
    utc_text,
)
from lupus_alerts.pipeline.windows import (
    resolve_window,
    run_window,
    source_watermark,
    source_window,
)

__all__ = [
    "ANNOUNCE_SOURCE",
    "DIGEST_CHUNK_SIZE",
    "OUTCOME_KEY",
    "PUBMED_SOURCE",
    "RUN_WATERMARK",
    "DigestSendFailed",
    "FeedPollFailed",
    "PipelineError",
    "RunWindow",
    "announce_numbers",
    "announce_report",
    "asset_extra",
    "classify_and_announce",
    "digest_day",
    "event_extra",
    "failed_runs_in_a_row",
    "feed_health",
    "feed_health_table",
    "feed_outcome_label",
    "fetch_pubmed",
    "format_health_table",
    "list_feeds",
    "load_settings",
    "open_store",
    "plan_digests",
    "poll_feed",
    "recent_runs",
    "record_run",
    "report_digests",
    "resolve_window",
    "run_records",
    "run_window",
    "schedule_settings",
    "search_pubmed",
    "send_digest_chunk",
    "source_watermark",
    "source_window",
    "summary_table",
    "utc_text",
]
