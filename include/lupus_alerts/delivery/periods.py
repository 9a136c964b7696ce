"""Who is due a digest on a day, and for which period.

A period is the ISO date ("2026-11-27") for daily subscribers and the ISO week ("2026-W48") for
weekly ones, who are due on their weekday.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lupus_alerts.delivery.ledger import S


def period_containing(subscriber: Any, day: date) -> str:
    """The digest period `day` falls in for this subscriber: the ISO date ("2026-11-27")
    daily, the ISO week ("2026-W48") weekly, whatever the weekday (a preview's period)."""
    if subscriber.frequency == "weekly":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    return day.isoformat()


def period_for(subscriber: Any, day: date) -> str | None:
    """The digest period `day` closes for this subscriber, or None if no digest is due that day:
    a weekly digest is due only on the subscriber's weekday (0=Monday; Monday when unset)."""
    if subscriber.frequency == "weekly":
        weekday = subscriber.weekday if subscriber.weekday is not None else 0
        if day.weekday() != weekday:
            return None
    return period_containing(subscriber, day)


def _periods_of_day(day: date) -> tuple[str, str]:
    year, week, _ = day.isocalendar()
    return day.isoformat(), f"{year}-W{week:02d}"


def _due_filter(day: date) -> sa.ColumnElement[bool]:
    return sa.and_(
        S.c.status == "active",
        sa.or_(
            S.c.frequency != "weekly",
            sa.func.coalesce(S.c.weekday, 0) == day.weekday(),
        ),
    )


def due_subscribers(engine: Engine | Connection, day: date) -> list[int]:
    """Ids of the active subscribers due a digest on `day`, ascending (chunk for mapped tasks)."""
    q = sa.select(S.c.id).where(_due_filter(day)).order_by(S.c.id)
    if isinstance(engine, Connection):
        return [int(r[0]) for r in engine.execute(q)]
    with engine.connect() as conn:
        return [int(r[0]) for r in conn.execute(q)]


def chunks(ids: Sequence[int], size: int) -> list[list[int]]:
    """Split ids into lists of at most `size` (one per mapped send task)."""
    return [list(ids[i : i + size]) for i in range(0, len(ids), size)]
