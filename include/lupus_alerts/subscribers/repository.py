"""Subscribers in the store: read, add, change, unsubscribe, remove."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lupus_alerts import store, tokens
from lupus_alerts.subscribers.model import (
    InvalidSubscriber,
    Subscriber,
    SubscriberExists,
    SubscriberNotFound,
)
from lupus_alerts.subscribers.topics import (
    normalize_topics,
)
from lupus_alerts.subscribers.validation import (
    _check_frequency,
    _check_max_papers,
    _check_status,
    _parse_bool,
    normalize_email,
    normalize_name,
)

# --- storage --------------------------------------------------------------------------------


_S = store.subscribers


def _where(id_or_email: int | str) -> sa.ColumnElement[bool]:
    if isinstance(id_or_email, int) and not isinstance(id_or_email, bool):
        return _S.c.id == id_or_email
    text = str(id_or_email).strip()
    if text.isascii() and text.isdigit() and len(text) <= 9:
        return _S.c.id == int(text)
    try:
        return _S.c.email == normalize_email(text)  # the stored form (ASCII domain, lower case)
    except InvalidSubscriber:
        return _S.c.email == text.lower()


def _load_topics(conn: Connection, ids: list[int]) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {i: set() for i in ids}
    if not ids:
        return out
    t = store.subscriber_topics
    for chunk_start in range(0, len(ids), 500):
        chunk = ids[chunk_start : chunk_start + 500]
        for sid, label in conn.execute(
            sa.select(t.c.subscriber_id, t.c.label).where(t.c.subscriber_id.in_(chunk))
        ):
            out[sid].add(label)
    return out


def _from_row(row: Any, topics: set[str]) -> Subscriber:
    return Subscriber(
        id=row.id,
        email=row.email,
        name=row.name,
        topics=None if row.all_topics else frozenset(topics),
        frequency=row.frequency,
        weekday=row.weekday,
        max_papers=row.max_papers,
        send_when_empty=bool(row.send_when_empty),
        status=row.status,
        cursor=int(row.cursor),
        update_cursor=int(row.update_cursor),
        permanent_failures=int(row.permanent_failures),
        link_key=row.link_key,
        legacy_links=bool(row.legacy_links),
    )


def get(conn_or_engine: Connection | Engine, id_or_email: int | str) -> Subscriber:
    """The subscriber with that id (int or digits) or email. Raises SubscriberNotFound."""
    with store.transaction(conn_or_engine) as conn:
        row = conn.execute(sa.select(_S).where(_where(id_or_email))).first()
        if row is None:
            raise SubscriberNotFound(f"no subscriber {id_or_email!r}")
        return _from_row(row, _load_topics(conn, [row.id])[row.id])


def get_by_link_key(conn_or_engine: Connection | Engine, link_key: str) -> Subscriber:
    """The subscriber whose link key this is. Raises SubscriberNotFound (deleted, or the key
    was replaced by revoke_links)."""
    with store.transaction(conn_or_engine) as conn:
        row = conn.execute(sa.select(_S).where(_S.c.link_key == link_key)).first()
        if row is None:
            raise SubscriberNotFound("no subscriber with that link key")
        return _from_row(row, _load_topics(conn, [row.id])[row.id])


def list_subscribers(conn_or_engine: Connection | Engine, status: str | None = None) -> list[Subscriber]:
    """All subscribers (optionally only those with `status`), ordered by id."""
    with store.transaction(conn_or_engine) as conn:
        q = sa.select(_S).order_by(_S.c.id)
        if status is not None:
            q = q.where(_S.c.status == _check_status(status))
        rows = conn.execute(q).all()
        topics = _load_topics(conn, [r.id for r in rows])
        return [_from_row(r, topics[r.id]) for r in rows]


def _set_topic_rows(conn: Connection, subscriber_id: int, topics: frozenset[str] | None) -> None:
    t = store.subscriber_topics
    conn.execute(sa.delete(t).where(t.c.subscriber_id == subscriber_id))
    if topics:
        conn.execute(sa.insert(t), [{"subscriber_id": subscriber_id, "label": x} for x in sorted(topics)])


def _validated(
    *,
    email: str,
    name: str | None,
    topics: Iterable[str] | str | None,
    frequency: str,
    weekday: int | str | None,
    max_papers: int | str,
    send_when_empty: bool | str | None,
    status: str,
) -> dict[str, Any]:
    freq, day = _check_frequency(frequency, weekday)
    return {
        "email": normalize_email(email),
        "name": normalize_name(name),
        "topics": normalize_topics(topics),
        "frequency": freq,
        "weekday": day,
        "max_papers": _check_max_papers(max_papers),
        "send_when_empty": _parse_bool("send_when_empty", send_when_empty, False),
        "status": _check_status(status),
    }


def _insert(conn: Connection, v: dict[str, Any], *, from_beginning: bool) -> int:
    cursor, update_cursor = (0, 0) if from_beginning else store.high_water_marks(conn)
    now = store.utcnow()
    sid = conn.execute(
        sa.insert(_S)
        .values(
            email=v["email"],
            name=v["name"],
            all_topics=v["topics"] is None,
            frequency=v["frequency"],
            weekday=v["weekday"],
            max_papers=v["max_papers"],
            send_when_empty=v["send_when_empty"],
            status=v["status"],
            cursor=cursor,
            update_cursor=update_cursor,
            permanent_failures=0,
            created_at=now,
            updated_at=now,
            link_key=tokens.new_link_key(),
            legacy_links=False,
        )
        .returning(_S.c.id)
    ).scalar_one()
    _set_topic_rows(conn, sid, v["topics"])
    return int(sid)


def add(
    conn_or_engine: Connection | Engine,
    *,
    email: str,
    name: str | None = None,
    topics: Iterable[str] | str | None = None,
    frequency: str = "daily",
    weekday: int | str | None = None,
    max_papers: int = 50,
    send_when_empty: bool = False,
    status: str = "active",
    from_beginning: bool = False,
) -> Subscriber:
    """Validate and store a new subscriber; raises InvalidSubscriber or SubscriberExists.

    A new subscriber's cursors start at the current announcement/update numbers, so the first
    digest holds what is announced from now on, not the whole archive; `from_beginning=True`
    starts them at 0 (demos, back-fills).
    """
    v = _validated(
        email=email,
        name=name,
        topics=topics,
        frequency=frequency,
        weekday=weekday,
        max_papers=max_papers,
        send_when_empty=send_when_empty,
        status=status,
    )
    with store.transaction(conn_or_engine) as conn:
        if conn.execute(sa.select(_S.c.id).where(_S.c.email == v["email"])).first():
            raise SubscriberExists(f"{v['email']} is already a subscriber")
        sid = _insert(conn, v, from_beginning=from_beginning)
        return get(conn, sid)


_UNSET: Any = object()


def update(
    conn_or_engine: Connection | Engine,
    id_or_email: int | str,
    *,
    email: str = _UNSET,
    name: str | None = _UNSET,
    topics: Iterable[str] | str | None = _UNSET,
    frequency: str = _UNSET,
    weekday: int | str | None = _UNSET,
    max_papers: int = _UNSET,
    send_when_empty: bool = _UNSET,
    status: str = _UNSET,
) -> Subscriber:
    """Change the given fields (others untouched) and return the stored subscriber.

    Switching to daily drops the weekday; switching to weekly needs one (given or stored).
    Reactivating (status "active") resets the permanent-failure count.
    """
    with store.transaction(conn_or_engine) as conn:
        cur = get(conn, id_or_email)
        values: dict[str, Any] = {}
        if email is not _UNSET:
            new_email = normalize_email(email)
            if new_email != cur.email:
                clash = conn.execute(sa.select(_S.c.id).where(_S.c.email == new_email)).first()
                if clash:
                    raise SubscriberExists(f"{new_email} is already a subscriber")
                values["email"] = new_email
                # Links sent to the old address must not keep working for the new one (an
                # address handed to someone else, a shared inbox left behind).
                values["link_key"] = tokens.new_link_key()
                values["legacy_links"] = False
        if name is not _UNSET:
            values["name"] = normalize_name(name)
        if frequency is not _UNSET or weekday is not _UNSET:
            freq = cur.frequency if frequency is _UNSET else frequency
            if weekday is _UNSET:
                day = cur.weekday if str(freq).strip().lower() == "weekly" else None
            else:
                day = weekday
            values["frequency"], values["weekday"] = _check_frequency(freq, day)
        if max_papers is not _UNSET:
            values["max_papers"] = _check_max_papers(max_papers)
        if send_when_empty is not _UNSET:
            values["send_when_empty"] = _parse_bool("send_when_empty", send_when_empty, False)
        if status is not _UNSET:
            values["status"] = _check_status(status)
            if values["status"] == "active":
                values["permanent_failures"] = 0
        if topics is not _UNSET:
            new_topics = normalize_topics(topics)
            values["all_topics"] = new_topics is None
            _set_topic_rows(conn, cur.id, new_topics)
        if values or topics is not _UNSET:
            values["updated_at"] = store.utcnow()
            conn.execute(sa.update(_S).where(_S.c.id == cur.id).values(**values))
        return get(conn, cur.id)


def set_status(conn_or_engine: Connection | Engine, id_or_email: int | str, status: str) -> Subscriber:
    """Set status to active, unsubscribed or bounced (used by unsubscribe and the ledger)."""
    return update(conn_or_engine, id_or_email, status=status)


def set_topics(
    conn_or_engine: Connection | Engine, id_or_email: int | str, topics: Iterable[str] | str | None
) -> Subscriber:
    """Replace the subscriber's topics (None or "all" for every topic)."""
    return update(conn_or_engine, id_or_email, topics=topics)


def set_frequency(
    conn_or_engine: Connection | Engine,
    id_or_email: int | str,
    frequency: str,
    weekday: int | str | None = None,
) -> Subscriber:
    """Set daily, or weekly on `weekday` (0=Monday..6=Sunday or a day name)."""
    return update(conn_or_engine, id_or_email, frequency=frequency, weekday=weekday)


def revoke_links(conn_or_engine: Connection | Engine, id_or_email: int | str) -> Subscriber:
    """Give the subscriber a new link key: every unsubscribe and preferences link sent so far
    stops working (the next digest carries new ones). For a forwarded digest or a leaked link."""
    with store.transaction(conn_or_engine) as conn:
        cur = get(conn, id_or_email)
        conn.execute(
            sa.update(_S)
            .where(_S.c.id == cur.id)
            .values(link_key=tokens.new_link_key(), legacy_links=False, updated_at=store.utcnow())
        )
        return get(conn, cur.id)


def unsubscribe(conn: Connection, subscriber_id: int) -> bool:
    """Unsubscribe in the caller's transaction; True only for the call that changed the status.

    Conditional on the current status, so of two concurrent one-click POSTs exactly one applies
    it (the other waits for the row and then finds nothing to change).
    """
    res = conn.execute(
        sa.update(_S)
        .where(_S.c.id == subscriber_id, _S.c.status != "unsubscribed")
        .values(status="unsubscribed", updated_at=store.utcnow())
    )
    return res.rowcount == 1


def claim_link_mail(conn: Connection, subscriber_id: int, *, now: datetime, min_interval: timedelta) -> bool:
    """Record that a fresh-link mail goes out now, unless one went out within `min_interval`
    (a timedelta); True when the caller may send it. Throttles a link-mail flood."""
    res = conn.execute(
        sa.update(_S)
        .where(
            _S.c.id == subscriber_id,
            sa.or_(_S.c.links_sent_at.is_(None), _S.c.links_sent_at <= now - min_interval),
        )
        .values(links_sent_at=now)
    )
    return res.rowcount == 1


def remove(
    conn_or_engine: Connection | Engine, id_or_email: int | str, *, delete: bool = False
) -> Subscriber:
    """Unsubscribe (default: the row stays, status "unsubscribed") or, with delete=True, erase it.

    Returns the subscriber as it was before a delete, or as it is after an unsubscribe.
    """
    with store.transaction(conn_or_engine) as conn:
        cur = get(conn, id_or_email)
        if not delete:
            return update(conn, cur.id, status="unsubscribed")
        conn.execute(
            sa.delete(store.subscriber_topics).where(store.subscriber_topics.c.subscriber_id == cur.id)
        )
        conn.execute(sa.delete(store.deliveries).where(store.deliveries.c.subscriber_id == cur.id))
        conn.execute(sa.delete(_S).where(_S.c.id == cur.id))
        return cur
