"""
# lupus_digest: email each subscriber the new lupus papers in their topics

**What it does.** Runs when `lupus_ingest` updates the Asset `lupus_alerts://papers`, and also
at the fallback time `schedule.digest_fallback_cron` (default 09:00 UTC). `plan_digests`
decides who is due today (daily subscribers; weekly ones on their weekday) and queues them in
the delivery ledger; `send_digests` sends in chunks of subscribers (one mapped task per chunk);
`report_digests` adds up what was sent, skipped and failed.

**Never a double send.** Each (subscriber, period) has one ledger row; a digest marked sent is
never sent again, so clearing or rerunning any task, or the fallback run after the asset run,
sends nothing twice. Papers are chosen by each subscriber's cursor (last announcement number
sent), so a paper announced after a digest went out is in the next one: none is lost.

**On a day the ingest fails.** No asset event comes, so the fallback run sends the day's
digests at the fallback time with whatever was announced (late rather than lost). Papers the
failed ingest missed are announced when it is fixed and go out in the next digest.

**When it fails.** `send_digests` red: SMTP refused or unreachable; retries resend only what
the ledger shows unsent. Permanent rejections are recorded per subscriber and do not retry.
Runbook: `docs/operations.md`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable, dag, get_current_context, task

from lupus_alerts import dag_defaults
from lupus_alerts.pipeline import schedule_settings

PAPERS = Asset(dag_defaults.PAPERS_ASSET_URI)

default_args = dag_defaults.default_args(retries=3, execution_timeout=timedelta(minutes=30))
_schedule = schedule_settings()


@dag(
    dag_id="lupus_digest",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(_schedule.digest_fallback_cron, timezone=_schedule.timezone),
        assets=[PAPERS],
    ),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=default_args,
    tags=["lupus-alerts", "digest"],
    doc_md=__doc__,
)
def lupus_digest() -> None:
    # multiple_outputs=False everywhere: a `-> dict` annotation would otherwise push one XCom
    # per key of the summary; operators get one (docs/operations.md).
    @task(multiple_outputs=False)
    def plan_digests() -> dict[str, Any]:
        """Queue today's due subscribers in the ledger and split them into chunks."""
        from lupus_alerts import pipeline

        ctx = get_current_context()
        settings = pipeline.load_settings(None)
        day = pipeline.digest_day(ctx.get("logical_date"), ctx["dag_run"].run_after, settings)
        return pipeline.plan_digests(settings, day=day)

    @task(multiple_outputs=False)
    def chunks(plan: dict[str, Any]) -> list[list[int]]:
        """The subscriber chunks to map `send_digests` over (empty: nothing to send)."""
        return plan["chunks"]

    @task(
        multiple_outputs=False,
        map_index_template="{{ task.op_kwargs['subscriber_ids'] | length }} subscribers",
    )
    def send_digests(subscriber_ids: list[int], plan: dict[str, Any]) -> dict[str, Any]:
        """Build and send these subscribers' digests; the ledger prevents any double send.

        If red: SMTP refused or unreachable; clearing it resends only what is unsent.
        """
        from lupus_alerts import pipeline

        return pipeline.send_digest_chunk(None, subscriber_ids=subscriber_ids, day=plan["day"])

    @task(multiple_outputs=False, trigger_rule="all_done")
    def report_digests(results: list[dict[str, Any]], plan: dict[str, Any]) -> dict[str, Any]:
        """One line: digests sent, skipped and failed today."""
        from lupus_alerts import pipeline

        return pipeline.report_digests(results, day=plan["day"])

    plan = plan_digests()
    sent = (
        send_digests.override(doc_md=send_digests.function.__doc__)
        .partial(plan=plan)
        .expand(subscriber_ids=chunks(plan))
    )
    report_digests(sent, plan)


lupus_digest()
