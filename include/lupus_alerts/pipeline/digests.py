"""The digest tasks: plan the day's digests, send them in chunks, report."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, is_dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from lupus_alerts.config import Settings
from lupus_alerts.pipeline.common import (
    DIGEST_CHUNK_SIZE,
    DigestSendFailed,
    PipelineError,
    _jsonable,
    load_settings,
    open_store,
)
from lupus_alerts.pipeline.ingest import (
    _now,
    summary_table,
)

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


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
