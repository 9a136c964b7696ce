"""What every operator view shares: the DAG ids, how a ledger state reads, small helpers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass


INGEST_DAG_ID = "lupus_ingest"
DIGEST_DAG_ID = "lupus_digest"
ANNOUNCE_SOURCE = "announce"  # as pipeline.ANNOUNCE_SOURCE (not imported: pipeline is glue)
DASHBOARD_DAYS = 30
MAX_SOURCES_CHARTED = 7  # more sources than this: the smallest are summed as "other sources"
TITLE_MAX = 300

# Ledger states (delivery.ledger) by what the operator reads them as.
SKIPPED_STATES = {"empty": "nothing new to send", "cancelled": None, "superseded": None}
DEFERRED_STATES = ("queued", "sending", "failed_transient")
OUTCOMES = ("sent", "skipped", "deferred", "bounced", "failed", "unconfirmed")
OUTCOME_COLOURS = {"sent": "#009E73", "failed": "#D55E00", "bounced": "#E69F00"}


def delivery_outcome(state: str, smtp_code: int | None) -> str:
    """What a ledger row's state means to an operator, one of OUTCOMES.

    sent; skipped (nothing new, the subscriber left, or superseded by a newer period); deferred
    (queued, or a temporary failure the next try resends); bounced (the mail server refused it
    for good: a 5xx reply); failed (refused before any server saw it: an invalid address, a
    message that could not be built); unconfirmed (the server may have accepted it: not resent
    until an operator checks, see docs/delivery.md).
    """
    if state == "sent":
        return "sent"
    if state in SKIPPED_STATES:
        return "skipped"
    if state in DEFERRED_STATES:
        return "deferred"
    if state == "failed_permanent":
        return "bounced" if smtp_code is not None and 500 <= int(smtp_code) < 600 else "failed"
    if state == "unconfirmed":
        return "unconfirmed"
    return "failed"  # an unknown state is shown, never hidden


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {(k.isoformat() if isinstance(k, date) else str(k)): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def run_kind(dag_id: str) -> str | None:
    """ "ingest", "digest", or None for a DAG that is not this project's."""
    return {INGEST_DAG_ID: "ingest", DIGEST_DAG_ID: "digest"}.get(dag_id)


def iter_outcomes(counts: Mapping[str, int]) -> Iterable[tuple[str, int]]:
    return ((o, int(counts.get(o, 0))) for o in OUTCOMES)
