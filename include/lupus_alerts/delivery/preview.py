"""The dry run: what planning and sending would send on a day, with no change to the ledger."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lupus_alerts import mailer, store
from lupus_alerts.delivery.compose import Composer
from lupus_alerts.delivery.ledger import (
    FAILED_PERMANENT,
    FAILED_TRANSIENT,
    PENDING_STATES,
    D,
    DeliveryStats,
    _err,
)
from lupus_alerts.delivery.periods import due_subscribers, period_for

if TYPE_CHECKING:
    from lupus_alerts.config import Settings

log = logging.getLogger(__name__)


def preview_due(
    engine: Engine,
    settings: Settings,
    *,
    day: date,
    transport: mailer.Transport,
    now: datetime | None = None,
    build: Callable[..., Any] | None = None,
) -> DeliveryStats:
    """A dry run: what `plan_period` + `send_due` would send on `day`, written to `transport`
    (an outbox), with no change to the ledger or to any subscriber.

    Covers the subscribers due that day with no finished row for the period, with the range a
    plan would give them now (an existing row's range if it was planned already). Each digest is
    made by the same step as `send_due`'s (`Composer.compose`).
    """
    from lupus_alerts import subscribers as subs_mod

    composer = Composer.for_run(settings, now, build)
    stats = DeliveryStats()
    domain = mailer.sender_domain(settings)
    with engine.connect() as conn:
        marks = store.high_water_marks(conn)
        for sid in due_subscribers(conn, day):
            sub = subs_mod.get(conn, sid)
            period = period_for(sub, day)
            if period is None:
                continue
            ranges = _planned_ranges(conn, sub, period, marks)
            if ranges is None:
                stats.already_sent += 1
                continue
            try:
                mail = composer.compose(
                    conn,
                    sub,
                    announce=ranges[0],
                    update=ranges[1],
                    period=period,
                    message_id=mailer.message_id_for(sub.link_key, period, domain),
                )
            except Exception as e:
                log.exception("dry run: the digest for subscriber %s could not be built", sid)
                stats.failed_transient += 1
                stats.errors.append(_err(sub, None, f"{type(e).__name__}: {e}", FAILED_TRANSIENT))
                conn.rollback()  # a failed statement aborts PostgreSQL's transaction: start afresh
                continue
            if mail.failure is not None:  # what send_due would record: reported, and on we go
                stats.failed_permanent += 1
                stats.errors.append(_err(sub, None, mail.failure, FAILED_PERMANENT))
            elif mail.empty:
                stats.empty_skipped += 1
            else:
                assert mail.message is not None
                result = transport.send(mail.message)
                if result.ok:
                    stats.sent += 1
                else:
                    stats.errors.append(_err(sub, result.code, result.message, result.status))
    return stats


def _planned_ranges(
    conn: Connection, sub: Any, period: str, marks: tuple[int, int]
) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """The (announce, update) ranges the period's row has or a plan would give it now; None when
    the period's digest is already done."""
    row = conn.execute(sa.select(D).where(D.c.subscriber_id == sub.id, D.c.period == period)).first()
    if row is None:
        a_now, u_now = marks
        return (sub.cursor, max(a_now, sub.cursor)), (sub.update_cursor, max(u_now, sub.update_cursor))
    if row.state not in PENDING_STATES:
        return None
    return (row.announce_from, row.announce_to), (row.update_from, row.update_to)
