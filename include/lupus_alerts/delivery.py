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
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email
from sqlalchemy.engine import Connection, Engine

from lupus_alerts import mailer, store, tokens

if TYPE_CHECKING:
    from lupus_alerts.config import Settings
    from lupus_alerts.subscribers import Subscriber

log = logging.getLogger(__name__)

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


# --------------------------------------------------------------------------------------------
# Who is due, for which period


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


# --------------------------------------------------------------------------------------------
# Planning


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
        a_now, u_now = store.high_water_marks(conn)
        snap: dict[str, tuple[int, int]] = {}
        for p in (daily_p, weekly_p):
            row = conn.execute(
                sa.select(sa.func.max(D.c.announce_to), sa.func.max(D.c.update_to)).where(D.c.period == p)
            ).first()
            snap[p] = (int(row[0]), int(row[1])) if row is not None and row[0] is not None else (a_now, u_now)
            if snap[p] != (a_now, u_now):
                stats.widened += _widen(conn, p, a_now, u_now, now)
                snap[p] = (a_now, u_now)
        subs = conn.execute(
            sa.select(S.c.id, S.c.frequency, S.c.weekday, S.c.cursor, S.c.update_cursor, S.c.link_key)
            .where(_due_filter(day))
            .order_by(S.c.id)
        ).all()
        have: set[int] = set()
        for p in (daily_p, weekly_p):
            have.update(int(r[0]) for r in conn.execute(sa.select(D.c.subscriber_id).where(D.c.period == p)))
        # A row still in `sending` (its run died mid-send) will end as sent or unconfirmed, and
        # either way its papers count as delivered: the new digest starts after its range, so a
        # paper is never in two digests.
        inflight = {
            int(r[0]): (int(r[1]), int(r[2]))
            for r in conn.execute(
                sa.select(D.c.subscriber_id, sa.func.max(D.c.announce_to), sa.func.max(D.c.update_to))
                .where(D.c.state == SENDING)
                .group_by(D.c.subscriber_id)
            )
        }
        new_rows: list[dict[str, Any]] = []
        for s in subs:
            period = weekly_p if s.frequency == "weekly" else daily_p
            if s.id in have:
                stats.existing += 1
                continue
            a_to, u_to = snap[period]
            busy_a, busy_u = inflight.get(s.id, (0, 0))
            a_from, u_from = max(int(s.cursor), busy_a), max(int(s.update_cursor), busy_u)
            new_rows.append(
                {
                    "subscriber_id": s.id,
                    "period": period,
                    "state": QUEUED,
                    "message_id": mailer.message_id_for(s.link_key, period, domain),
                    "announce_from": a_from,
                    "announce_to": max(a_to, a_from),
                    "update_from": u_from,
                    "update_to": max(u_to, u_from),
                    "paper_count": 0,
                    "attempts": 0,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        new_ids = [r["subscriber_id"] for r in new_rows]
        for part in chunks(new_ids, _IN_CHUNK):
            res = conn.execute(
                sa.update(D)
                .where(
                    D.c.subscriber_id.in_(part),
                    D.c.state.in_(CLAIMABLE_STATES),
                    D.c.period.notin_((daily_p, weekly_p)),
                )
                .values(state=SUPERSEDED, updated_at=now, last_error="superseded by a newer period")
            )
            stats.superseded += max(res.rowcount or 0, 0)
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


def _pending_subscribers(conn: Connection) -> list[int]:
    q = (
        sa.select(D.c.subscriber_id)
        .where(D.c.state.in_(PENDING_STATES))
        .distinct()
        .order_by(D.c.subscriber_id)
    )
    return [int(r[0]) for r in conn.execute(q)]


# --------------------------------------------------------------------------------------------
# Sending


def send_due(
    engine: Engine,
    settings: Settings,
    *,
    day: date | None = None,
    subscriber_ids: Iterable[int] | None = None,
    now: datetime | None = None,
    transport: mailer.Transport | None = None,
    transport_factory: Callable[[], mailer.Transport] | None = None,
    connections: int = 1,
    build: Callable[..., Any] | None = None,
) -> DeliveryStats:
    """Send every pending digest of these subscribers (all subscribers when None).

    Pending means queued or failed_transient, of any period (so a 4xx from an earlier run is
    retried), plus rows left in `sending` by a crash, which are resolved without a blind resend.
    `transport` is used as given (one connection); otherwise `connections` transports are made
    with `transport_factory` (default: the configured one, mail.mode) and closed here, each in
    its own thread over its share of the rows, so rendering overlaps the SMTP round trips.
    `build` defaults to `digest.build_digest`. One recipient's failure never stops the others.
    Raises DeliveryError before touching the ledger if links cannot be signed, and
    mailer.TransportError (after the other connections finish their rows) if the server is
    unreachable.
    """
    now = _naive(now) if now else store.utcnow()
    try:
        secret = tokens.get_secret()
    except tokens.MissingSecret as e:
        raise DeliveryError(str(e)) from e
    if connections < 1 or (transport is not None and connections != 1):
        raise ValueError("connections must be >= 1, and 1 when a transport instance is given")
    if build is None:
        from lupus_alerts.digest import build_digest as build

    ids = sorted(set(subscriber_ids)) if subscriber_ids is not None else None
    stats = DeliveryStats()
    # The digest module loads each (announce, update) window once per run through this cache;
    # most subscribers of a period share one window.
    windows: dict[Any, Any] = {}
    with engine.connect() as conn:
        rows = _pending_rows(conn, ids)
        subs = load_subscribers(conn, sorted({int(r.subscriber_id) for r in rows}))
        if day is not None and ids:
            stats.already_sent = _already_done(conn, ids, day, exclude={r.subscriber_id for r in rows})
    stop = threading.Event()

    def work(part: list[Any], tr: mailer.Transport) -> DeliveryStats:
        st = DeliveryStats()
        # One store connection per worker for all its rows: each claim and each finish is still
        # its own committed transaction, but without a pool checkout (and, on PostgreSQL, a
        # pre-ping round trip) per transaction.
        with engine.connect() as db:
            for row in part:
                if stop.is_set():
                    break
                try:
                    _deliver_one(db, settings, tr, row, build, subs, secret, now, st, windows)
                except mailer.TransportError:
                    stop.set()  # the mail server is unreachable: stop, Airflow retries the task
                    raise
                except Exception as e:
                    _settle_failed(engine, db, row, e, now, st)
        return st

    if transport is not None:
        stats.merge(work(rows, transport))
    else:
        factory = transport_factory or (lambda: mailer.transport_from_settings(settings))
        n = max(1, min(connections, len(rows)))
        transports = [factory() for _ in range(n)]
        try:
            if n == 1:
                stats.merge(work(rows, transports[0]))
            else:
                with ThreadPoolExecutor(n, thread_name_prefix="digest-send") as pool:
                    futures = [pool.submit(work, rows[i::n], transports[i]) for i in range(n)]
                errors: list[BaseException] = []
                for f in futures:
                    exc = f.exception()
                    if exc is None:
                        stats.merge(f.result())
                    else:
                        errors.append(exc)
                if errors:
                    raise errors[0]
        finally:
            for tr in transports:
                close = getattr(tr, "close", None)
                if close is not None:
                    close()
    log.info("digests sent: %s", {k: v for k, v in dataclasses.asdict(stats).items() if k != "errors"})
    return stats


def load_subscribers(conn: Connection, ids: Sequence[int]) -> dict[int, Subscriber]:
    """The subscribers with these ids, by id, in two queries per 500 (not two per subscriber).

    Builds the same `subscribers.Subscriber` that `subscribers.get` returns.
    """
    from lupus_alerts.subscribers import Subscriber

    st = store.subscriber_topics
    out: dict[int, Subscriber] = {}
    for part in chunks(list(ids), _IN_CHUNK):
        topics: dict[int, set[str]] = {i: set() for i in part}
        for sid, label in conn.execute(
            sa.select(st.c.subscriber_id, st.c.label).where(st.c.subscriber_id.in_(part))
        ):
            topics[int(sid)].add(label)
        for r in conn.execute(sa.select(S).where(S.c.id.in_(part))):
            out[int(r.id)] = Subscriber(
                id=int(r.id),
                email=r.email,
                name=r.name,
                topics=None if r.all_topics else frozenset(topics[int(r.id)]),
                frequency=r.frequency,
                weekday=r.weekday,
                max_papers=int(r.max_papers),
                send_when_empty=bool(r.send_when_empty),
                status=r.status,
                cursor=int(r.cursor),
                update_cursor=int(r.update_cursor),
                permanent_failures=int(r.permanent_failures),
                link_key=r.link_key,
                legacy_links=bool(r.legacy_links),
            )
    return out


def _pending_rows(conn: Connection, ids: list[int] | None) -> list[Any]:
    q = sa.select(D).where(D.c.state.in_(PENDING_STATES)).order_by(D.c.subscriber_id, D.c.period)
    if ids is None:
        return list(conn.execute(q))
    out: list[Any] = []
    for part in chunks(ids, _IN_CHUNK):
        out.extend(conn.execute(q.where(D.c.subscriber_id.in_(part))))
    return out


def _already_done(conn: Connection, ids: list[int], day: date, exclude: set[int]) -> int:
    n = 0
    for part in chunks([i for i in ids if i not in exclude], _IN_CHUNK):
        n += conn.execute(
            sa.select(sa.func.count(sa.distinct(D.c.subscriber_id))).where(
                D.c.subscriber_id.in_(part), D.c.period.in_(_periods_of_day(day)), D.c.state.in_(DONE_STATES)
            )
        ).scalar_one()
    return int(n)


def _settle_failed(
    engine: Engine, db: Connection, row: Any, e: Exception, now: datetime, st: DeliveryStats
) -> None:
    """An exception raised before the row was claimed (rendering, the store): nothing went out,
    so the row stays retryable, and one digest's bug does not stop everyone else's."""
    log.exception("digest for subscriber %s, period %s failed", row.subscriber_id, row.period)
    try:
        if db.in_transaction():
            db.rollback()  # the worker's connection is reused for the next row
    except sa.exc.SQLAlchemyError:
        log.warning("could not roll back the store connection", exc_info=True)
    # A fresh connection from the pool: the worker's may be the thing that failed.
    _finish(engine, row, FAILED_TRANSIENT, now, error=f"{type(e).__name__}: {e}", expect=CLAIMABLE_STATES)
    st.failed_transient += 1
    st.errors.append(
        {
            "subscriber_id": row.subscriber_id,
            "email": None,
            "code": None,
            "reason": str(e),
            "state": FAILED_TRANSIENT,
        }
    )


@contextmanager
def _reader(db: Engine | Connection) -> Iterator[Connection]:
    """A connection for reads; the given one has its read transaction (if any) ended after,
    so it holds no lock while the message is sent and can begin the next write."""
    if isinstance(db, Connection):
        try:
            yield db
        finally:
            if db.in_transaction():
                db.rollback()
    else:
        with db.connect() as conn:
            yield conn


def _deliver_one(
    db: Engine | Connection,
    settings: Settings,
    transport: mailer.Transport,
    row: Any,
    build: Callable[..., Any],
    subs: dict[int, Subscriber],
    secret: bytes,
    now: datetime,
    stats: DeliveryStats,
    windows: dict[Any, Any],
) -> None:
    if row.state == SENDING and not _resolve_crashed(db, transport, row, now, stats):
        return
    sub = subs.get(row.subscriber_id)
    if sub is None:
        return  # deleted meanwhile; the ledger row went with it (ON DELETE CASCADE)
    if sub.status != "active":
        if _finish(db, row, CANCELLED, now, error=f"subscriber is {sub.status}", expect=CLAIMABLE_STATES):
            stats.cancelled += 1
        return
    if not _valid_address(sub.email):
        if _finish(
            db,
            row,
            FAILED_PERMANENT,
            now,
            error="invalid email address",
            expect=CLAIMABLE_STATES,
            bounce=settings,
        ):
            stats.failed_permanent += 1
            stats.errors.append(_err(sub, None, "invalid email address", FAILED_PERMANENT))
        return
    # Render the row's range, not the subscriber's current cursor: a retry renders the same mail.
    view = dataclasses.replace(sub, cursor=int(row.announce_from), update_cursor=int(row.update_from))
    with _reader(db) as conn:
        dg = build(
            conn,
            settings,
            view,
            announce_to=int(row.announce_to),
            update_to=int(row.update_to),
            period=row.period,
            now=now,
            windows=windows,
            secret=secret,
        )
    if dg.is_empty and not sub.send_when_empty:
        if _finish(db, row, EMPTY, now, expect=CLAIMABLE_STATES, advance=True):
            stats.empty_skipped += 1
        return
    try:
        msg = mailer.build_message(
            dg,
            settings=settings,
            unsubscribe_url=dg.unsubscribe_url
            or tokens.unsubscribe_url(settings, sub.link_key, issued=now.date(), secret=secret),
            now=now,
            message_id=row.message_id,
        )
    except mailer.MessageBuildError as e:
        # The subscriber's own data cannot go into a mail (a stored name with a line break):
        # retrying cannot help. Recorded with the reason for the operator, who fixes the data;
        # the cursor stays, so the next digest carries these papers. Not a bounce.
        reason = f"the message could not be built: {e}"
        if _finish(db, row, FAILED_PERMANENT, now, error=reason, expect=CLAIMABLE_STATES):
            stats.failed_permanent += 1
            stats.errors.append(_err(sub, None, reason, FAILED_PERMANENT))
        return
    if not _claim(db, row, now):
        # Another run took the row, or the subscriber left since we loaded them (the claim
        # requires an active subscriber, so an unsubscribe during the run is honoured).
        if _finish(db, row, CANCELLED, now, error="subscriber left during the run", expect=CLAIMABLE_STATES):
            stats.cancelled += 1
        return
    try:
        result = transport.send(msg)
    except mailer.TransportError as e:
        # Raised only when the message cannot have gone out (no connection, or dropped before
        # DATA): safe to retry. Then stop the run: the next message would fail the same way.
        _finish(db, row, FAILED_TRANSIENT, now, error=str(e), expect=(SENDING,))
        raise
    except Exception as e:
        # Unexpected, with the row claimed: we cannot prove nothing went out.
        log.exception("sending the digest for subscriber %s, period %s failed", sub.id, row.period)
        _finish(db, row, UNCONFIRMED, now, error=f"{type(e).__name__}: {e}", expect=(SENDING,), advance=True)
        stats.unconfirmed += 1
        stats.errors.append(_err(sub, None, str(e), UNCONFIRMED))
        return
    if result.status == "sent":
        _finish(
            db,
            row,
            SENT,
            now,
            code=result.code,
            expect=(SENDING, UNCONFIRMED),
            advance=True,
            paper_count=dg.paper_count,
        )
        stats.sent += 1
    elif result.status == "transient":
        _finish(db, row, FAILED_TRANSIENT, now, code=result.code, error=result.message, expect=(SENDING,))
        stats.failed_transient += 1
        stats.errors.append(_err(sub, result.code, result.message, FAILED_TRANSIENT))
    elif result.status == "permanent":
        _finish(
            db,
            row,
            FAILED_PERMANENT,
            now,
            code=result.code,
            error=result.message,
            expect=(SENDING,),
            bounce=settings,
        )
        stats.failed_permanent += 1
        stats.errors.append(_err(sub, result.code, result.message, FAILED_PERMANENT))
    else:
        # The server may have accepted it: do not send it again, do not send its papers again.
        _finish(
            db,
            row,
            UNCONFIRMED,
            now,
            code=result.code,
            error=result.message,
            expect=(SENDING,),
            advance=True,
        )
        stats.unconfirmed += 1
        stats.errors.append(_err(sub, result.code, result.message, UNCONFIRMED))


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
    plan would give them now (an existing row's range if it was planned already).
    """
    now = _naive(now) if now else store.utcnow()
    try:
        secret = tokens.get_secret()
    except tokens.MissingSecret as e:
        raise DeliveryError(str(e)) from e
    if build is None:
        from lupus_alerts.digest import build_digest as build
    from lupus_alerts import subscribers as subs_mod

    stats = DeliveryStats()
    windows: dict[Any, Any] = {}
    domain = mailer.sender_domain(settings)
    with engine.connect() as conn:
        a_now, u_now = store.high_water_marks(conn)
        for sid in due_subscribers(conn, day):
            sub = subs_mod.get(conn, sid)
            period = period_for(sub, day)
            if period is None:
                continue
            row = conn.execute(sa.select(D).where(D.c.subscriber_id == sid, D.c.period == period)).first()
            if row is not None and row.state not in PENDING_STATES:
                stats.already_sent += 1
                continue
            if row is not None:
                a_from, a_to, u_from, u_to = (
                    row.announce_from,
                    row.announce_to,
                    row.update_from,
                    row.update_to,
                )
            else:
                a_from, a_to = sub.cursor, max(a_now, sub.cursor)
                u_from, u_to = sub.update_cursor, max(u_now, sub.update_cursor)
            if not _valid_address(sub.email):
                stats.failed_permanent += 1
                stats.errors.append(_err(sub, None, "invalid email address", FAILED_PERMANENT))
                continue
            view = dataclasses.replace(sub, cursor=int(a_from), update_cursor=int(u_from))
            try:
                dg = build(
                    conn,
                    settings,
                    view,
                    announce_to=int(a_to),
                    update_to=int(u_to),
                    period=period,
                    now=now,
                    windows=windows,
                    secret=secret,
                )
                if dg.is_empty and not sub.send_when_empty:
                    stats.empty_skipped += 1
                    continue
                msg = mailer.build_message(
                    dg,
                    settings=settings,
                    unsubscribe_url=dg.unsubscribe_url,
                    now=now,
                    message_id=mailer.message_id_for(sub.link_key, period, domain),
                )
            except mailer.MessageBuildError as e:
                # What send_due would record: reported, and the dry run goes on.
                stats.failed_permanent += 1
                stats.errors.append(_err(sub, None, f"the message could not be built: {e}", FAILED_PERMANENT))
                continue
            except Exception as e:
                log.exception("dry run: the digest for subscriber %s could not be built", sid)
                stats.failed_transient += 1
                stats.errors.append(_err(sub, None, f"{type(e).__name__}: {e}", FAILED_TRANSIENT))
                conn.rollback()  # a failed statement aborts PostgreSQL's transaction: start afresh
                continue
            result = transport.send(msg)
            if result.ok:
                stats.sent += 1
            else:
                stats.errors.append(_err(sub, result.code, result.message, result.status))
    return stats


# --------------------------------------------------------------------------------------------
# Operator actions and reports


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
