"""What the operator views in the Airflow UI show: one run's story, and the 30-day dashboard.

The plugin (`plugins/lupus_alerts_ops.py`) only routes requests here. This module reads the
project's store and turns it into plain dataclasses (`ingest_run_view`, `digest_run_view`,
`dashboard_view`), and renders them with the Jinja templates in `templates/ops/` (autoescaped:
paper titles and feed errors come from the internet) and the SVG charts of `svg_charts`.

Where each view's numbers come from:
- an ingest run: its rows in `ingest_runs` (`pipeline.run_records`: one per source, and the
  announce step's, whose announcement range names the run's new papers); a rerun's or
  retry's extra rows (an `attempt` key) are shown one line each.
- a digest run: the delivery ledger rows of the run's day (the daily period, and the weekly
  period for the subscribers whose weekday it is), classified by `delivery_outcome`; plus every
  `unconfirmed` row, whatever its period, since each needs an operator's decision.
- the dashboard: `paper_sources` (first seen per day and source), announced papers with their
  topics, the ledger (sent per `sent_at` day; failures per `updated_at` day) and `feed_state`.
Days are UTC days, as every timestamp in the store is naive UTC.

Modules: `common`, `ingest_run`, `digest_run`, `dashboard` (its data and charts), `render`.
"""

from __future__ import annotations

from lupus_alerts.ops_views.common import (
    ANNOUNCE_SOURCE,
    DASHBOARD_DAYS,
    DEFERRED_STATES,
    DIGEST_DAG_ID,
    INGEST_DAG_ID,
    MAX_SOURCES_CHARTED,
    OUTCOME_COLOURS,
    OUTCOMES,
    SKIPPED_STATES,
    TITLE_MAX,
    delivery_outcome,
    iter_outcomes,
    run_kind,
)
from lupus_alerts.ops_views.dashboard import (
    DashboardView,
    FeedFreshness,
    dashboard_view,
    day_range,
    digests_chart,
    digests_per_day,
    feed_freshness,
    freshness_chart,
    new_papers_per_topic,
    papers_chart,
    papers_per_day,
    source_name,
    topics_chart,
)
from lupus_alerts.ops_views.digest_run import (
    DigestRunView,
    LedgerRow,
    digest_run_view,
)
from lupus_alerts.ops_views.ingest_run import (
    IngestRunView,
    PaperLink,
    SourceOutcome,
    TopicPapers,
    ingest_run_view,
    papers_by_topic,
    source_outcome,
)
from lupus_alerts.ops_views.render import (
    fmt_ts,
    render,
    render_dashboard,
    render_digest_run,
    render_ingest_run,
    render_message,
    topic_names,
)

__all__ = [
    "ANNOUNCE_SOURCE",
    "DASHBOARD_DAYS",
    "DEFERRED_STATES",
    "DIGEST_DAG_ID",
    "INGEST_DAG_ID",
    "MAX_SOURCES_CHARTED",
    "OUTCOMES",
    "OUTCOME_COLOURS",
    "SKIPPED_STATES",
    "TITLE_MAX",
    "DashboardView",
    "DigestRunView",
    "FeedFreshness",
    "IngestRunView",
    "LedgerRow",
    "PaperLink",
    "SourceOutcome",
    "TopicPapers",
    "dashboard_view",
    "day_range",
    "delivery_outcome",
    "digest_run_view",
    "digests_chart",
    "digests_per_day",
    "feed_freshness",
    "fmt_ts",
    "freshness_chart",
    "ingest_run_view",
    "iter_outcomes",
    "new_papers_per_topic",
    "papers_by_topic",
    "papers_chart",
    "papers_per_day",
    "render",
    "render_dashboard",
    "render_digest_run",
    "render_ingest_run",
    "render_message",
    "run_kind",
    "source_name",
    "source_outcome",
    "topic_names",
    "topics_chart",
]
