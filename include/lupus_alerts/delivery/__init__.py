"""The delivery ledger: each subscriber gets each digest period at most once.

One `deliveries` row per (subscriber, period) — "2026-11-27" for daily subscribers, the ISO week
"2026-W48" for weekly ones, who are due on their weekday. States:

    queued ──► sending ──► sent
       ▲          │  ├───► failed_transient ──(next run / task retry)──► sending
       │          │  ├───► failed_permanent          (5xx, or an invalid address: never retried)
       │          │  └───► unconfirmed               (outcome unknown: never retried on its own)
       ├── empty        nothing to send and the subscriber does not want empty digests
       ├── cancelled    the subscriber left (unsubscribed / bounced) before it was sent
       └── superseded   a newer period was planned while this one still waited; the newer
                        digest starts at the same cursor, so it carries these papers too

`plan_period` snapshots the announcement/update counters once per period and writes a `queued`
row per due subscriber with the range it covers (announce_from = the subscriber's cursor,
exclusive; announce_to = the snapshot, inclusive). A retry renders the row's range, so it renders
the same digest, with the same Message-ID.

`send_due` moves a row to `sending` and commits BEFORE talking to the mail server, then records
the outcome and advances the subscriber's cursors in one transaction. The no-double-send rule for a
row found in `sending` (the process died mid-send) is in docs/delivery.md: ask the transport
whether that Message-ID went out; the outbox can tell (the file exists or not), SMTP cannot, so
the row becomes `unconfirmed` — at most once, never twice, and visible to the operator, who may
`requeue_unconfirmed` it after checking the mail server's log.

Modules: `periods` (who is due, for which period), `plan` (queue the rows), `compose` (one
digest for one row's range, shared by sending and the dry run), `send`, `preview` (the dry run),
and `ledger` (the states, and the only code that moves a row or a cursor).
"""

from lupus_alerts.delivery.ledger import (
    CANCELLED,
    CLAIMABLE_STATES,
    DONE_STATES,
    EMPTY,
    FAILED_PERMANENT,
    FAILED_TRANSIENT,
    PENDING_STATES,
    QUEUED,
    SENDING,
    SENT,
    SUPERSEDED,
    UNCONFIRMED,
    DeliveryError,
    DeliveryStats,
    advance_cursors,
    ledger_counts,
    requeue_unconfirmed,
)
from lupus_alerts.delivery.periods import chunks, due_subscribers, period_containing, period_for
from lupus_alerts.delivery.plan import PlanStats, plan_period
from lupus_alerts.delivery.preview import preview_due
from lupus_alerts.delivery.send import load_subscribers, send_due

__all__ = [
    "CANCELLED",
    "CLAIMABLE_STATES",
    "DONE_STATES",
    "EMPTY",
    "FAILED_PERMANENT",
    "FAILED_TRANSIENT",
    "PENDING_STATES",
    "QUEUED",
    "SENDING",
    "SENT",
    "SUPERSEDED",
    "UNCONFIRMED",
    "DeliveryError",
    "DeliveryStats",
    "PlanStats",
    "advance_cursors",
    "chunks",
    "due_subscribers",
    "ledger_counts",
    "load_subscribers",
    "period_containing",
    "period_for",
    "plan_period",
    "preview_due",
    "requeue_unconfirmed",
    "send_due",
]
