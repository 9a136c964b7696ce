"""The ledger's rows and the only code that moves them between states.

States, the statements that claim and finish a row (each conditional on the state it expects,
so two runs never both win a row), the cursor and bounce updates made in the same transaction,
the recovery of a row a crash left in `sending`, and the operator's requeue. The state diagram
is in the package's docstring (`lupus_alerts.delivery`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email
from sqlalchemy.engine import Connection, Engine

from lupus_alerts import mailer, store

if TYPE_CHECKING:
    from lupus_alerts.config import Settings

D = store.deliveries
S = store.subscribers

QUEUED, SENDING, SENT = "queued", "sending", "sent"
FAILED_TRANSIENT, FAILED_PERMANENT = "failed_transient", "failed_permanent"
UNCONFIRMED, EMPTY, CANCELLED, SUPERSEDED = "unconfirmed", "empty", "cancelled", "superseded"
PENDING_STATES = (QUEUED, FAILED_TRANSIENT, SENDING)
# Rows a send run may claim: what is in SENDING already belongs to another (or a dead) run.
CLAIMABLE_STATES = (QUEUED, FAILED_TRANSIENT)
DONE_STATES = (SENT, EMPTY, UNCONFIRMED)
_IN_CHUNK = 500  # ids per IN (...) clause: well under SQLite's bound-parameter limit


class DeliveryError(Exception):
    """The ledger cannot proceed (e.g. no link-signing secret); nothing was claimed."""


@dataclass(slots=True)
class DeliveryStats:
    """What `send_due` did. `errors` holds one {email, code, reason, state} per failed message."""

    sent: int = 0
    empty_skipped: int = 0
    failed_transient: int = 0
    failed_permanent: int = 0
    unconfirmed: int = 0
    cancelled: int = 0
    already_sent: int = 0
    recovered: int = 0  # rows found in `sending` whose message the transport confirmed
    errors: list[dict[str, Any]] = field(default_factory=list)

    def merge(self, other: DeliveryStats) -> None:
        for f in dataclasses.fields(self):
            if f.name == "errors":
                self.errors.extend(other.errors)
            else:
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


def _resolve_crashed(
    db: Engine | Connection, transport: mailer.Transport, row: Any, now: datetime, stats: DeliveryStats
) -> bool:
    """A row found in `sending`: True if it may be sent now, False if it has been settled.

    The transport is asked whether the row's Message-ID went out. Yes: record it as sent. No
    (the outbox can prove it): back to queued and send. Cannot tell (SMTP): `unconfirmed`, cursors
    advanced, reported — never resent without an operator (see docs/delivery.md).
    """
    was_sent = transport.was_sent(row.message_id)
    if was_sent:
        if _finish(db, row, SENT, now, expect=(SENDING,), advance=True, error="confirmed after a crash"):
            stats.recovered += 1
            stats.sent += 1
        return False
    if was_sent is False:
        with store.transaction(db) as conn:
            res = conn.execute(
                sa.update(D)
                .where(D.c.id == row.id, D.c.state == SENDING)
                .values(state=QUEUED, updated_at=now)
            )
        return res.rowcount == 1
    if _finish(
        db,
        row,
        UNCONFIRMED,
        now,
        expect=(SENDING,),
        advance=True,
        error="found in `sending` after a crash; the mail server may have accepted it (not resent)",
    ):
        stats.unconfirmed += 1
        stats.errors.append(
            {
                "subscriber_id": row.subscriber_id,
                "email": None,
                "code": None,
                "reason": "interrupted mid-send; not resent (requeue after checking the mail log)",
                "state": UNCONFIRMED,
            }
        )
    return False


# Statements built once: constructing SQLAlchemy expressions costs more than running them on
# SQLite, and a run executes these two or three times per subscriber.
def _rendered_row(states: tuple[str, ...]) -> tuple[sa.ColumnElement[bool], ...]:
    """The row this run read, still in one of `states` and still covering the range this run
    rendered: a re-plan may have widened an unattempted row meanwhile, and such a row is
    neither claimed nor finished by this run."""
    return (
        D.c.id == sa.bindparam("b_id"),
        D.c.state.in_(states),
        D.c.announce_to == sa.bindparam("b_range_a", type_=sa.BigInteger),
        D.c.update_to == sa.bindparam("b_range_u", type_=sa.BigInteger),
    )


# The ledger's statements are built once per process, on first use, and kept in `_STATEMENTS`
# (not built at import, and not behind a decorator): the mutation check (scripts/mutation.py)
# empties it before every test, so that a mutated builder is really the one that runs.
_STATEMENTS: dict[tuple[Any, ...], sa.Update] = {}


def _statement(key: tuple[Any, ...], build: Callable[[], sa.Update]) -> sa.Update:
    stmt = _STATEMENTS.get(key)
    if stmt is None:
        stmt = _STATEMENTS[key] = build()
    return stmt


def _claim_stmt() -> sa.Update:
    return (
        sa.update(D)
        .where(
            *_rendered_row(CLAIMABLE_STATES),
            sa.exists().where(S.c.id == D.c.subscriber_id, S.c.status == "active"),
        )
        .values(state=SENDING, attempts=D.c.attempts + 1, updated_at=sa.bindparam("b_now"))
    )


def _advance(reset_failures: bool) -> sa.Update:
    a_to, u_to = sa.bindparam("b_a_to", type_=sa.BigInteger), sa.bindparam("b_u_to", type_=sa.BigInteger)
    values: dict[str, Any] = {
        # Never backward: an old row confirmed late must not rewind a newer digest's cursor.
        "cursor": sa.case((S.c.cursor < a_to, a_to), else_=S.c.cursor),
        "update_cursor": sa.case((S.c.update_cursor < u_to, u_to), else_=S.c.update_cursor),
        "updated_at": sa.bindparam("b_now"),
    }
    if reset_failures:
        # Bounces are counted consecutively: a delivered digest clears the count.
        values["permanent_failures"] = 0
    return sa.update(S).where(S.c.id == sa.bindparam("b_sid")).values(**values)


def _bounce_stmt() -> sa.Update:
    return (
        sa.update(S)
        .where(S.c.id == sa.bindparam("b_sid"))
        .values(
            permanent_failures=S.c.permanent_failures + 1,
            status=sa.case(
                (
                    sa.and_(S.c.status == "active", S.c.permanent_failures + 1 >= sa.bindparam("b_limit")),
                    "bounced",
                ),
                else_=S.c.status,
            ),
            updated_at=sa.bindparam("b_now"),
        )
    )


def _finish_stmt(expect: tuple[str, ...], sent: bool, with_count: bool) -> sa.Update:
    values: dict[str, Any] = {
        "state": sa.bindparam("b_state"),
        "updated_at": sa.bindparam("b_now"),
        "smtp_code": sa.bindparam("b_code", type_=sa.Integer),
        "last_error": sa.bindparam("b_error", type_=sa.Text),
    }
    if sent:
        values["sent_at"] = sa.bindparam("b_now")
    if with_count:
        values["paper_count"] = sa.bindparam("b_count")
    return sa.update(D).where(*_rendered_row(expect)).values(**values)


def _claim(db: Engine | Connection, row: Any, now: datetime) -> bool:
    """queued|failed_transient -> sending, committed before any byte goes to the mail server.

    Conditional on the state, so of two concurrent runs exactly one wins the row.
    """
    with store.transaction(db) as conn:
        res = conn.execute(
            _statement(("claim",), _claim_stmt),
            {
                "b_id": row.id,
                "b_now": now,
                "b_range_a": int(row.announce_to),
                "b_range_u": int(row.update_to),
            },
        )
    return res.rowcount == 1


def advance_cursors(
    conn: Connection,
    subscriber_id: int,
    *,
    cursor: int,
    update_cursor: int,
    now: datetime,
    reset_failures: bool = False,
) -> None:
    """Move a subscriber's cursors forward to (at least) these numbers, never backward; with
    `reset_failures`, a delivered digest also clears the bounce count. The ledger calls it in
    the transaction that marks the digest sent (`_finish`); it is the only code that moves
    cursors."""
    conn.execute(
        _statement(("advance", reset_failures), lambda: _advance(reset_failures)),
        {"b_sid": subscriber_id, "b_now": now, "b_a_to": cursor, "b_u_to": update_cursor},
    )


def _finish(
    db: Engine | Connection,
    row: Any,
    state: str,
    now: datetime,
    *,
    expect: Sequence[str],
    code: int | None = None,
    error: str | None = None,
    advance: bool = False,
    paper_count: int | None = None,
    bounce: Settings | None = None,
) -> bool:
    """Move the row to `state` (only from `expect`) and, in the same transaction, update the
    subscriber: cursors to the row's range end (`advance`), failure count and bounce (`bounce`)."""
    key = (tuple(expect), state == SENT, paper_count is not None)
    stmt = _statement(("finish", *key), lambda: _finish_stmt(*key))
    params = {
        "b_id": row.id,
        "b_state": state,
        "b_now": now,
        "b_code": code,
        "b_error": error,
        "b_range_a": int(row.announce_to),
        "b_range_u": int(row.update_to),
    }
    if paper_count is not None:
        params["b_count"] = paper_count
    with store.transaction(db) as conn:
        if conn.execute(stmt, params).rowcount != 1:
            return False
        sid = row.subscriber_id
        if advance or state == SENT:
            advance_cursors(
                conn,
                sid,
                # Without `advance` (never the case for SENT today) the cursors stay put.
                cursor=int(row.announce_to) if advance else 0,
                update_cursor=int(row.update_to) if advance else 0,
                now=now,
                reset_failures=state == SENT,
            )
        if bounce is not None:
            conn.execute(
                _statement(("bounce",), _bounce_stmt),
                {"b_sid": sid, "b_now": now, "b_limit": bounce.mail.max_permanent_failures},
            )
    return True


def _valid_address(email: str) -> bool:
    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


def _err(sub: Any, code: int | None, reason: str, state: str) -> dict[str, Any]:
    return {"subscriber_id": sub.id, "email": sub.email, "code": code, "reason": reason, "state": state}


def _naive(dt: datetime) -> datetime:
    """Naive UTC, as the store keeps timestamps."""
    if dt.tzinfo is None:
        return dt
    from datetime import UTC

    return dt.astimezone(UTC).replace(tzinfo=None)


def requeue_unconfirmed(
    engine: Engine, *, period: str | None = None, subscriber_ids: Iterable[int] | None = None
) -> int:
    """Put `unconfirmed` rows back in the queue, after the operator has checked they did not go out.

    The resend covers the row's original range, so the subscriber misses nothing. Returns the
    number of rows requeued.
    """
    q = sa.update(D).where(D.c.state == UNCONFIRMED)
    if period is not None:
        q = q.where(D.c.period == period)
    if subscriber_ids is not None:
        q = q.where(D.c.subscriber_id.in_(list(subscriber_ids)))
    with engine.begin() as conn:
        res = conn.execute(q.values(state=QUEUED, updated_at=store.utcnow(), last_error=None))
    return max(res.rowcount or 0, 0)


def ledger_counts(engine: Engine, period: str | None = None) -> dict[str, int]:
    """Number of ledger rows per state (for one period, or all)."""
    q = sa.select(D.c.state, sa.func.count()).group_by(D.c.state)
    if period is not None:
        q = q.where(D.c.period == period)
    with engine.connect() as conn:
        return {str(s): int(n) for s, n in conn.execute(q)}
