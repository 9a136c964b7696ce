"""Sending: every pending ledger row to the mail server, at most once.

A row moves to `sending` and commits BEFORE the mail server hears of it, then the outcome and the
subscriber's cursors are recorded in one transaction (`ledger._finish`). A row found in `sending`
(the process died mid-send) is never sent blindly again: see `ledger._resolve_crashed`.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lupus_alerts import mailer, store
from lupus_alerts.delivery.compose import Composed, Composer
from lupus_alerts.delivery.ledger import (
    _IN_CHUNK,
    CANCELLED,
    CLAIMABLE_STATES,
    DONE_STATES,
    EMPTY,
    FAILED_PERMANENT,
    FAILED_TRANSIENT,
    PENDING_STATES,
    SENDING,
    SENT,
    UNCONFIRMED,
    D,
    DeliveryStats,
    S,
    _claim,
    _err,
    _finish,
    _resolve_crashed,
)
from lupus_alerts.delivery.periods import _periods_of_day, chunks

if TYPE_CHECKING:
    from lupus_alerts.config import Settings
    from lupus_alerts.subscribers import Subscriber

log = logging.getLogger(__name__)


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
    composer = Composer.for_run(settings, now, build)
    if connections < 1 or (transport is not None and connections != 1):
        raise ValueError("connections must be >= 1, and 1 when a transport instance is given")
    ids = sorted(set(subscriber_ids)) if subscriber_ids is not None else None
    stats = DeliveryStats()
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
                    _deliver_one(db, composer, tr, row, subs, st)
                except mailer.TransportError:
                    stop.set()  # the mail server is unreachable: stop, Airflow retries the task
                    raise
                except Exception as e:
                    _settle_failed(engine, db, row, e, composer.now, st)
        return st

    if transport is not None:
        stats.merge(work(rows, transport))
    else:
        factory = transport_factory or (lambda: mailer.transport_from_settings(settings))
        stats.merge(_in_threads(work, rows, factory, connections))
    log.info("digests sent: %s", {k: v for k, v in dataclasses.asdict(stats).items() if k != "errors"})
    return stats


def _in_threads(
    work: Callable[[list[Any], mailer.Transport], DeliveryStats],
    rows: list[Any],
    factory: Callable[[], mailer.Transport],
    connections: int,
) -> DeliveryStats:
    """`work` over the rows split across `connections` transports, one thread each; every
    thread finishes its share before the first error is raised, and every transport is closed."""
    stats = DeliveryStats()
    n = max(1, min(connections, len(rows)))
    transports = [factory() for _ in range(n)]
    try:
        if n == 1:
            stats.merge(work(rows, transports[0]))
            return stats
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
        return stats
    finally:
        for tr in transports:
            close = getattr(tr, "close", None)
            if close is not None:
                close()


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
    composer: Composer,
    transport: mailer.Transport,
    row: Any,
    subs: dict[int, Subscriber],
    stats: DeliveryStats,
) -> None:
    now = composer.now
    if row.state == SENDING and not _resolve_crashed(db, transport, row, now, stats):
        return
    sub = subs.get(row.subscriber_id)
    if sub is None:
        return  # deleted meanwhile; the ledger row went with it (ON DELETE CASCADE)
    if sub.status != "active":
        if _finish(db, row, CANCELLED, now, error=f"subscriber is {sub.status}", expect=CLAIMABLE_STATES):
            stats.cancelled += 1
        return
    with _reader(db) as conn:
        mail = composer.compose(
            conn,
            sub,
            announce=(row.announce_from, row.announce_to),
            update=(row.update_from, row.update_to),
            period=row.period,
            message_id=row.message_id,
        )
    if mail.failure is not None:
        # The cursor stays, so the next digest carries these papers. A bad address is a bounce.
        bounce = composer.settings if mail.bad_address else None
        if _finish(
            db, row, FAILED_PERMANENT, now, error=mail.failure, expect=CLAIMABLE_STATES, bounce=bounce
        ):
            stats.failed_permanent += 1
            stats.errors.append(_err(sub, None, mail.failure, FAILED_PERMANENT))
        return
    if mail.empty:
        if _finish(db, row, EMPTY, now, expect=CLAIMABLE_STATES, advance=True):
            stats.empty_skipped += 1
        return
    if not _claim(db, row, now):
        # Another run took the row, or the subscriber left since we loaded them (the claim
        # requires an active subscriber, so an unsubscribe during the run is honoured).
        if _finish(db, row, CANCELLED, now, error="subscriber left during the run", expect=CLAIMABLE_STATES):
            stats.cancelled += 1
        return
    _send_claimed(db, composer, transport, row, sub, mail, stats)


def _send_claimed(
    db: Engine | Connection,
    composer: Composer,
    transport: mailer.Transport,
    row: Any,
    sub: Subscriber,
    mail: Composed,
    stats: DeliveryStats,
) -> None:
    """Hand a claimed row's message to the server and record what the server said."""
    now = composer.now
    assert mail.message is not None
    try:
        result = transport.send(mail.message)
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
            paper_count=mail.paper_count,
        )
        stats.sent += 1
        return
    if result.status == "transient":
        state, advance, bounce = FAILED_TRANSIENT, False, None
    elif result.status == "permanent":
        state, advance, bounce = FAILED_PERMANENT, False, composer.settings
    else:
        # The server may have accepted it: do not send it again, do not send its papers again.
        state, advance, bounce = UNCONFIRMED, True, None
    _finish(
        db,
        row,
        state,
        now,
        code=result.code,
        error=result.message,
        expect=(SENDING,),
        advance=advance,
        bounce=bounce,
    )
    # each failure state has the stats counter of the same name
    setattr(stats, state, getattr(stats, state) + 1)
    stats.errors.append(_err(sub, result.code, result.message, state))
