"""
# lupus_ingest: new lupus papers from PubMed and the journals, once a day

**What it does.** For the run's window (the data interval of a scheduled run; from the end of
the last complete run to now for a manual run) it searches PubMed, then fetches the records in
batches (both in pool `ncbi`, sized to NCBI's rate limit), polls every configured journal feed (one
mapped task per journal, labelled with its name), then merges, deduplicates by DOI, classifies
and numbers the new lupus papers. It updates the Asset `lupus_alerts://papers`, whose event
carries the counts (per source, new papers, per topic); that event starts `lupus_digest`.

**Where state lives.** Papers, feed state and per-run stats are in the project's store (see
`store_url` in `lupus-alerts.yaml`, table `ingest_runs`), never in XCom. Every task is
idempotent: clearing any task or rerunning any run leaves the store in the same state, and
announcement numbers are handed out once (hence `max_active_runs=1`).

**When it fails.**
- `search_pubmed` or `fetch_pubmed` red: NCBI down or rate-limited beyond the retries. Clear
  the task when NCBI is back; the next run's search overlaps the last `pubmed.overlap_days`
  anyway, so nothing is lost.
- a `poll_feed` instance red: that journal's feed failed (its error is in the log and on the
  *Lupus feed health* page). The other journals and PubMed carry on. Check the URL in
  `lupus-alerts.yaml`; a feed that keeps failing is listed by `feed_health`.
- `classify_and_announce` red: a bug or a store problem; fix, then clear it. Until it succeeds
  no new papers are announced, and digests go out late (see `lupus_digest`).
- Configuration errors name the file, the field and the problem in the first task's log.

Failure emails go to the Airflow Variable `lupus_alerts_operator_email` through the SMTP
connection `smtp_default`. Runbook: `docs/operations.md`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Asset, CronDataIntervalTimetable, dag, get_current_context, task

from lupus_alerts import dag_defaults
from lupus_alerts.pipeline import schedule_settings

PAPERS = Asset(dag_defaults.PAPERS_ASSET_URI)

default_args = dag_defaults.default_args(retries=2, execution_timeout=timedelta(minutes=20))


def _ctx(name: str) -> Any:
    return get_current_context().get(name)


@dag(
    dag_id="lupus_ingest",
    schedule=CronDataIntervalTimetable(schedule_settings().ingest_cron, timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=default_args,
    tags=["lupus-alerts", "ingest"],
    doc_md=__doc__,
)
def lupus_ingest() -> None:
    # multiple_outputs=False everywhere: a `-> dict` annotation would otherwise push one XCom
    # per key of the summary; operators get one (docs/operations.md).
    @task(multiple_outputs=False)
    def resolve_window() -> dict[str, Any]:
        """Validate the config, migrate the store, and fix this run's window [start, end).

        Scheduled runs use their data interval; manual runs start at the last complete run's end.
        """
        from lupus_alerts import pipeline

        ctx = get_current_context()
        dr = ctx["dag_run"]
        return pipeline.resolve_window(
            None,
            data_interval_start=ctx.get("data_interval_start"),
            data_interval_end=ctx.get("data_interval_end"),
            run_after=dr.run_after,
            run_id=dr.run_id,
        )

    @task(multiple_outputs=False)
    def list_feeds() -> list[dict[str, str]]:
        """The configured journal feeds (id and name), one mapped `poll_feed` each."""
        from lupus_alerts import pipeline

        return pipeline.list_feeds(None)

    @task(multiple_outputs=False, pool="ncbi", execution_timeout=timedelta(minutes=10))
    def search_pubmed(window: dict[str, Any]) -> dict[str, Any]:
        """Count the PubMed records in the window (one ESearch): what the fetch will bring.

        If red: NCBI is down or refusing the query; the log has its answer.
        """
        from lupus_alerts import pipeline

        return pipeline.search_pubmed(None, window=window)

    @task(multiple_outputs=False, pool="ncbi", execution_timeout=timedelta(minutes=60))
    def fetch_pubmed(window: dict[str, Any]) -> dict[str, Any]:
        """Search PubMed for the window and fetch, parse and store the records in batches.

        If red: NCBI is down or throttling; clear it later, nothing is lost (windows overlap).
        """
        from lupus_alerts import pipeline

        return pipeline.fetch_pubmed(None, window=window, run_id=_ctx("run_id"))

    @task(
        multiple_outputs=False,
        # the poll's outcome once it ran ("Lupus · 9 items, 3 new", "Annals · HTTP 404")
        map_index_template="{{ lupus_outcome | default(task.op_kwargs['feed']['name']) }}",
        execution_timeout=timedelta(minutes=10),
    )
    def poll_feed(feed: dict[str, str], window: dict[str, Any]) -> dict[str, Any]:
        """Poll one journal's feed (conditional GET) and store its lupus items.

        If red: this journal's feed failed; the others carry on. See the *Lupus feed health* page.
        """
        from lupus_alerts import pipeline

        ctx = get_current_context()
        return pipeline.poll_feed(
            None, feed_id=feed["id"], run_id=ctx["run_id"], window=window, outcome_to=ctx
        )

    @task(multiple_outputs=False, outlets=[PAPERS], trigger_rule="all_done")
    def classify_and_announce(window: dict[str, Any]) -> dict[str, Any]:
        """Classify new papers by subspecialty, number the new lupus ones, and update the Asset.

        Runs even if a source failed, so what did arrive still goes out.
        """
        from lupus_alerts import pipeline

        extra = pipeline.classify_and_announce(None, run_id=_ctx("run_id"), window=window)
        _ctx("outlet_events")[PAPERS].extra = extra
        return extra

    @task(multiple_outputs=False, trigger_rule="all_done", retries=2)
    def feed_health() -> dict[str, Any]:
        """Log a table of every feed's health: last success, HTTP status, failures, last error."""
        from lupus_alerts import pipeline

        return pipeline.feed_health_table(None)

    window = resolve_window()
    feeds = list_feeds()
    pubmed = search_pubmed(window) >> fetch_pubmed(window)
    polled = poll_feed.override(doc_md=poll_feed.function.__doc__).partial(window=window).expand(feed=feeds)
    announced = classify_and_announce(window)
    [pubmed, polled] >> announced
    announced >> feed_health()


lupus_ingest()
