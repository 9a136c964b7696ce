"""Planning: one `queued` ledger row per due subscriber and period, with the range it covers.

The announcement/update counters are snapshot when a period is first planned; the row covers the
subscriber's cursor (exclusive) to that snapshot (inclusive), so a retry renders the same digest.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lupus_alerts import mailer, store
from lupus_alerts.delivery.ledger import (
    _IN_CHUNK,
    CLAIMABLE_STATES,
    EMPTY,
    PENDING_STATES,
    QUEUED,
    SENDING,
    SUPERSEDED,
    D,
    DeliveryError,
    S,
    _naive,
)
from lupus_alerts.delivery.periods import _due_filter, _periods_of_day, chunks

if TYPE_CHECKING:
    from lupus_alerts.config import Settings

log = logging.getLogger(__name__)


@dataclass(slots=True)
class PlanStats:
    """What `plan_period` did. `due` lists every subscriber with a pending row (new or older)."""

    day: str
    periods: list[str] = field(default_factory=list)
    due: list[int] = field(default_factory=list)
    created: int = 0
    existing: int = 0
    superseded: int = 0
    widened: int = 0  # rows of this period re-planned to include papers announced since
    announce_to: int = 0
    update_to: int = 0


def _insert_ignoring_duplicates(conn: Connection, rows: list[dict[str, Any]]) -> int:
    """Insert ledger rows, skipping any (subscriber, period) another planner wrote meanwhile."""
    if not rows:
        return 0
    name = conn.dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    elif name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    else:  # pragma: no cover - the store supports SQLite and PostgreSQL only
        raise DeliveryError(f"unsupported database {name!r}")
    stmt = dialect_insert(D).on_conflict_do_nothing(index_elements=["subscriber_id", "period"])
    result = conn.execute(stmt, rows)
    return max(result.rowcount or 0, 0)


def plan_period(
    engine: Engine,
    settings: Settings | None = None,
    *,
    day: date,
    now: datetime | None = None,
) -> PlanStats:
    """Queue a ledger row for every subscriber due on `day` that has none for its period yet.

    Idempotent: a rerun creates nothing new. The announcement/update counters are snapshot when a
    period is first planned; a later run for the same period widens only the rows no mail came
    from (never attempted, or ended empty) to include what was announced since (`_widen`), so a
    digest planned before the day's ingest finished still carries that day's papers. Older rows
    still waiting (queued or failed_transient) for a newly due subscriber are superseded: the new
    row starts at the same cursor.
    """
    now = _naive(now) if now else store.utcnow()
    domain = mailer.sender_domain(settings) if settings is not None else "localhost"
    daily_p, weekly_p = _periods_of_day(day)
    stats = PlanStats(day=day.isoformat())
    with engine.begin() as conn:
        snap = _snapshots(conn, (daily_p, weekly_p), now, stats)
        subs = conn.execute(
            sa.select(S.c.id, S.c.frequency, S.c.weekday, S.c.cursor, S.c.update_cursor, S.c.link_key)
            .where(_due_filter(day))
            .order_by(S.c.id)
        ).all()
        have: set[int] = set()
        for p in (daily_p, weekly_p):
            have.update(int(r[0]) for r in conn.execute(sa.select(D.c.subscriber_id).where(D.c.period == p)))
        inflight = _in_flight(conn)
        new_rows: list[dict[str, Any]] = []
        for s in subs:
            if s.id in have:
                stats.existing += 1
                continue
            period = weekly_p if s.frequency == "weekly" else daily_p
            new_rows.append(_new_row(s, period, snap[period], inflight.get(s.id, (0, 0)), domain, now))
        stats.superseded += _supersede(conn, [r["subscriber_id"] for r in new_rows], (daily_p, weekly_p), now)
        for part in chunks(new_rows, 1000):
            stats.created += _insert_ignoring_duplicates(conn, part)
        stats.due = _pending_subscribers(conn)
        stats.periods = sorted(
            {daily_p} | ({weekly_p} if any(s.frequency == "weekly" for s in subs) else set())
        )
        stats.announce_to, stats.update_to = snap[daily_p]
    log.info(
        "planned %s: %d new, %d already planned, %d superseded, %d subscribers pending",
        day,
        stats.created,
        stats.existing,
        stats.superseded,
        len(stats.due),
    )
    return stats


def _snapshots(
    conn: Connection, periods: tuple[str, str], now: datetime, stats: PlanStats
) -> dict[str, tuple[int, int]]:
    """Each period's (announce, update) snapshot: taken at its first plan; a later plan widens
    the period's rows that no mail came from to what has been announced since."""
    a_now, u_now = store.high_water_marks(conn)
    snap: dict[str, tuple[int, int]] = {}
    for p in periods:
        row = conn.execute(
            sa.select(sa.func.max(D.c.announce_to), sa.func.max(D.c.update_to)).where(D.c.period == p)
        ).first()
        snap[p] = (int(row[0]), int(row[1])) if row is not None and row[0] is not None else (a_now, u_now)
        if snap[p] != (a_now, u_now):
            stats.widened += _widen(conn, p, a_now, u_now, now)
            snap[p] = (a_now, u_now)
    return snap


def _in_flight(conn: Connection) -> dict[int, tuple[int, int]]:
    """Per subscriber, the range end of rows still in `sending` (a run died mid-send). Such a
    row ends as sent or unconfirmed, and either way its papers count as delivered: a new digest
    starts after its range, so a paper is never in two digests."""
    return {
        int(r[0]): (int(r[1]), int(r[2]))
        for r in conn.execute(
            sa.select(D.c.subscriber_id, sa.func.max(D.c.announce_to), sa.func.max(D.c.update_to))
            .where(D.c.state == SENDING)
            .group_by(D.c.subscriber_id)
        )
    }


def _new_row(
    s: Any, period: str, snap: tuple[int, int], busy: tuple[int, int], domain: str, now: datetime
) -> dict[str, Any]:
    """The queued row for subscriber `s`: from its cursors (or past a row in flight) to the
    period's snapshot, never an inverted range."""
    a_from, u_from = max(int(s.cursor), busy[0]), max(int(s.update_cursor), busy[1])
    return {
        "subscriber_id": s.id,
        "period": period,
        "state": QUEUED,
        "message_id": mailer.message_id_for(s.link_key, period, domain),
        "announce_from": a_from,
        "announce_to": max(snap[0], a_from),
        "update_from": u_from,
        "update_to": max(snap[1], u_from),
        "paper_count": 0,
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
    }


def _supersede(conn: Connection, ids: list[int], periods: tuple[str, str], now: datetime) -> int:
    """Older rows still waiting for these subscribers give way to the new period's row, which
    starts at the same cursor and so carries their papers."""
    n = 0
    for part in chunks(ids, _IN_CHUNK):
        res = conn.execute(
            sa.update(D)
            .where(D.c.subscriber_id.in_(part), D.c.state.in_(CLAIMABLE_STATES), D.c.period.notin_(periods))
            .values(state=SUPERSEDED, updated_at=now, last_error="superseded by a newer period")
        )
        n += max(res.rowcount or 0, 0)
    return n


def _pending_subscribers(conn: Connection) -> list[int]:
    q = (
        sa.select(D.c.subscriber_id)
        .where(D.c.state.in_(PENDING_STATES))
        .distinct()
        .order_by(D.c.subscriber_id)
    )
    return [int(r[0]) for r in conn.execute(q)]


def _widen(conn: Connection, period: str, a_now: int, u_now: int, now: datetime) -> int:
    """Stretch this period's rows that no mail came from to the current high-water marks.

    A period is planned at its first run; papers announced after that (an ingest that finished
    after the fallback digest run) would otherwise wait for the next period. Rows never attempted
    (`queued`, no attempts) and rows that ended `empty` sent nothing, so widening them cannot
    repeat a paper: an empty row restarts from the cursor it advanced, with the same Message-ID.
    Attempted rows keep their range, so a retry still renders the mail it tried to send.
    """
    n = conn.execute(
        sa.update(D)
        .where(D.c.period == period, D.c.state == QUEUED, D.c.attempts == 0)
        .values(announce_to=a_now, update_to=u_now, updated_at=now)
    ).rowcount
    cur = sa.select(S.c.cursor).where(S.c.id == D.c.subscriber_id).scalar_subquery()
    ucur = sa.select(S.c.update_cursor).where(S.c.id == D.c.subscriber_id).scalar_subquery()
    n += conn.execute(
        sa.update(D)
        .where(D.c.period == period, D.c.state == EMPTY)
        .values(
            state=QUEUED,
            announce_from=cur,
            update_from=ucur,
            # a cursor never passes the counters, so the new range is never inverted
            announce_to=a_now,
            update_to=u_now,
            last_error=None,
            updated_at=now,
        )
    ).rowcount
    return max(n or 0, 0)
