"""One digest run's story: the ledger rows of its day by outcome, and every unconfirmed row."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from lupus_alerts import store
from lupus_alerts.ops_views.common import (
    OUTCOMES,
    SKIPPED_STATES,
    _jsonable,
    delivery_outcome,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


# -- digest run ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LedgerRow:
    subscriber_id: int
    period: str
    state: str
    outcome: str
    attempts: int
    smtp_code: int | None
    reason: str | None
    paper_count: int
    updated_at: datetime | None


@dataclass(slots=True)
class DigestRunView:
    run_id: str
    day: date
    periods: list[str]
    counts: dict[str, int]
    papers_sent: int
    rows: list[LedgerRow]  # everything but `sent`, with its reason
    attention: list[LedgerRow]  # every `unconfirmed` row, of any period

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


def _ledger_row(r: Any) -> LedgerRow:
    outcome = delivery_outcome(r.state, r.smtp_code)
    reason = r.last_error or SKIPPED_STATES.get(r.state)
    if r.smtp_code is not None and reason and str(r.smtp_code) not in reason:
        reason = f"SMTP {r.smtp_code}: {reason}"
    return LedgerRow(
        subscriber_id=int(r.subscriber_id),
        period=str(r.period),
        state=str(r.state),
        outcome=outcome,
        attempts=int(r.attempts or 0),
        smtp_code=r.smtp_code,
        reason=reason,
        paper_count=int(r.paper_count or 0),
        updated_at=r.updated_at,
    )


def digest_run_view(engine: Engine, run_id: str, day: date, *, row_limit: int = 500) -> DigestRunView:
    """The ledger as digest run `run_id` (for `day`) left it: counts per outcome, the rows that
    were not sent with their reasons, and every row that needs an operator (`unconfirmed`)."""
    d, s = store.deliveries, store.subscribers
    year, week, _ = day.isocalendar()
    daily, weekly = day.isoformat(), f"{year}-W{week:02d}"
    of_day = sa.or_(
        d.c.period == daily,
        # A weekly period spans seven days but is planned (and sent) on the subscriber's weekday.
        sa.and_(d.c.period == weekly, sa.func.coalesce(s.c.weekday, 0) == day.weekday()),
    )
    cols = (
        d.c.subscriber_id,
        d.c.period,
        d.c.state,
        d.c.attempts,
        d.c.smtp_code,
        d.c.last_error,
        d.c.paper_count,
        d.c.updated_at,
    )
    with engine.connect() as conn:
        counts: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        papers_sent = 0
        for state, code, n, papers in conn.execute(
            sa.select(d.c.state, d.c.smtp_code, sa.func.count(), sa.func.sum(d.c.paper_count))
            .join(s, s.c.id == d.c.subscriber_id)
            .where(of_day)
            .group_by(d.c.state, d.c.smtp_code)
        ):
            outcome = delivery_outcome(state, code)
            counts[outcome] = counts.get(outcome, 0) + int(n)
            if state == "sent":
                papers_sent += int(papers or 0)
        rows = conn.execute(
            sa.select(*cols)
            .join(s, s.c.id == d.c.subscriber_id)
            .where(of_day, d.c.state != "sent")
            .order_by(d.c.state, d.c.subscriber_id)
            .limit(row_limit)
        ).all()
        attention = conn.execute(
            sa.select(*cols)
            .where(d.c.state == "unconfirmed")
            .order_by(d.c.period, d.c.subscriber_id)
            .limit(row_limit)
        ).all()
    ledger = sorted(
        (_ledger_row(r) for r in rows), key=lambda r: (OUTCOMES.index(r.outcome), r.subscriber_id)
    )
    return DigestRunView(
        run_id=run_id,
        day=day,
        periods=[daily, weekly],
        counts=counts,
        papers_sent=papers_sent,
        rows=ledger,
        attention=[_ledger_row(r) for r in attention],
    )
