"""Announcement numbering (`announce._number` and the counters it draws from), case by case.

Digests select papers by announcement number with a cursor per subscriber, so the numbering
promises: numbers in first-seen order (ties by id), each paper and each update numbered once,
even when two numbering steps meet; only classified lupus papers; an update is a notice detected
strictly after its paper was announced. Each test here was written against a mutant that
`make mutation` found alive (docs/testing.md). Rows are CONSTRUCTED and written straight into the
tables, in the state the earlier pipeline steps leave them.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from lupus_alerts import announce, store
from lupus_alerts.models import Paper

T0 = datetime(2026, 11, 27, 6, 0, 0)
P, U = store.papers, store.paper_updates


def _paper(
    conn: sa.Connection,
    n: int,
    *,
    first_seen_at: datetime = T0,
    is_lupus: bool | None = True,
    needs_classification: bool = False,
    announce_no: int | None = None,
    announced_at: datetime | None = None,
) -> int:
    paper = Paper(
        source="pubmed", source_key=str(90_000_000 + n), pmid=str(90_000_000 + n), title=f"Lupus {n}"
    )
    return conn.execute(
        sa.insert(P)
        .values(
            pmid=paper.pmid,
            title=paper.title,
            record=paper.to_dict(),
            is_lupus=is_lupus,
            needs_classification=needs_classification,
            announce_no=announce_no,
            announced_at=announced_at,
            first_seen_at=first_seen_at,
            updated_at=first_seen_at,
        )
        .returning(P.c.id)
    ).scalar_one()


def _notice(conn: sa.Connection, paper_id: int, key: str, detected_at: datetime) -> int:
    return conn.execute(
        sa.insert(U)
        .values(
            paper_id=paper_id,
            kind="erratum_in",
            notice_key=key,
            notice={"kind": "erratum_in"},
            detected_at=detected_at,
        )
        .returning(U.c.id)
    ).scalar_one()


def _numbers(engine: sa.Engine) -> dict[int, int | None]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(P.c.id, P.c.announce_no)).all())


def _update_numbers(engine: sa.Engine) -> dict[int, int | None]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(U.c.id, U.c.update_no)).all())


def _number(engine: sa.Engine, now: datetime) -> announce.AnnounceStats:
    stats = announce.AnnounceStats()
    announce._number(engine, now, stats)
    return stats


# -- counters -------------------------------------------------------------------------------------


def test_counters_are_separate_and_a_new_one_starts_at_one(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        assert store.next_numbers(conn, "announce", 3) == range(1, 4)
        assert store.next_numbers(conn, "update", 2) == range(1, 3)
        assert store.next_numbers(conn, "announce", 2) == range(4, 6)
        assert store.next_numbers(conn, "brand-new", 4) == range(1, 5)
        assert store.next_numbers(conn, "brand-new", 1) == range(5, 6)
        assert store.next_numbers(conn, "announce", 0) == range(0)
        assert [store.counter_value(conn, n) for n in ("announce", "update", "brand-new", "never")] == [
            5,
            2,
            5,
            0,
        ]


# -- papers ---------------------------------------------------------------------------------------


def test_numbers_follow_first_seen_then_id_and_skip_what_is_not_ready(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        late = _paper(conn, 1, first_seen_at=T0 + timedelta(hours=1))
        a = _paper(conn, 2)
        b = _paper(conn, 3)
        c = _paper(conn, 4)
        not_lupus = _paper(conn, 5, is_lupus=False)
        unclassified = _paper(conn, 6, is_lupus=None, needs_classification=True)
        changed_since = _paper(conn, 7, needs_classification=True)  # classified lupus, then changed
        # Move a's row (PostgreSQL writes a new row version at the end of the table), so that
        # table order is no longer id order among the papers first seen together.
        conn.execute(sa.update(P).where(P.c.id == a).values(title="Lupus 2, corrected"))
    stats = _number(engine, T0 + timedelta(days=1))
    got = _numbers(engine)
    assert [got[x] for x in (a, b, c, late)] == [1, 2, 3, 4]
    assert got[not_lupus] is got[unclassified] is got[changed_since] is None
    assert (stats.announce_from, stats.announce_to, stats.announced) == (0, 4, 4)


def test_a_step_with_nothing_new_reports_where_the_numbers_stand(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        for n in range(3):
            _paper(conn, n)
        paper = _paper(conn, 9)
        _notice(conn, paper, "n1", T0 + timedelta(days=2))
    _number(engine, T0 + timedelta(days=1))
    again = _number(engine, T0 + timedelta(days=3))
    assert (again.announce_from, again.announce_to, again.announced) == (4, 4, 0)
    assert (again.update_from, again.update_to, again.updates_flagged) == (1, 1, 0)


# -- updates --------------------------------------------------------------------------------------


def test_updates_are_numbered_by_detection_time_then_id_each_once(engine: sa.Engine) -> None:
    announced = T0 + timedelta(days=1)
    with engine.begin() as conn:
        paper = _paper(conn, 1, announce_no=1, announced_at=announced)
        conn.execute(sa.update(store.counters).where(store.counters.c.name == "announce").values(value=1))
        later = _notice(conn, paper, "later", announced + timedelta(hours=5))
        earlier = _notice(conn, paper, "earlier", announced + timedelta(hours=1))
        tie_a = _notice(conn, paper, "tie-a", announced + timedelta(hours=3))
        tie_b = _notice(conn, paper, "tie-b", announced + timedelta(hours=3))
        same_instant = _notice(conn, paper, "with-the-announcement", announced)
        before = _notice(conn, paper, "came-with-the-record", announced - timedelta(hours=1))
        conn.execute(sa.update(U).where(U.c.id == tie_a).values(notice={"kind": "erratum_in", "v": 2}))
    stats = _number(engine, announced + timedelta(days=1))
    got = _update_numbers(engine)
    assert [got[x] for x in (earlier, tie_a, tie_b, later)] == [1, 2, 3, 4]
    # Detected before or at the moment of the announcement: part of the paper, not an update.
    assert got[same_instant] is got[before] is None
    assert (stats.update_from, stats.update_to, stats.updates_flagged) == (0, 4, 4)


# -- two numbering steps at once (PostgreSQL: SQLite runs whole write transactions one at a time) ---


def _hold_counter(engine: sa.Engine, name: str, ready: threading.Event, release: threading.Event) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.update(store.counters)
            .where(store.counters.c.name == name)
            .values(value=store.counters.c.value)
        )
        ready.set()
        release.wait(30)


def _wait_for_lock_waiters(engine: sa.Engine, n: int) -> None:
    deadline = time.monotonic() + 30
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
            ).scalar_one()
            conn.rollback()
            if waiting >= n:
                return
            time.sleep(0.05)
    raise AssertionError(f"{n} numbering steps never queued for the counter")


@pytest.mark.postgres
def test_two_steps_that_meet_never_number_a_paper_or_an_update_twice(pg_url: str) -> None:
    store.upgrade(pg_url)
    engine = store.make_engine(pg_url)
    try:
        announced = T0 + timedelta(days=1)
        with engine.begin() as conn:
            papers = [_paper(conn, n) for n in range(3)]
            fourth = _paper(conn, 10)
        # Two steps read the same three papers, then queue on the announce counter's row lock.
        ready, release = threading.Event(), threading.Event()
        holder = threading.Thread(target=_hold_counter, args=(engine, "announce", ready, release))
        holder.start()
        assert ready.wait(10)
        outcomes: list[object] = []

        def step() -> None:
            try:
                outcomes.append(_number(engine, announced))
            except announce.AnnounceConflict as e:
                outcomes.append(e)

        steps = [threading.Thread(target=step) for _ in range(2)]
        for t in steps:
            t.start()
        _wait_for_lock_waiters(engine, 2)  # both have read the papers and queue for the counter
        release.set()
        for t in [holder, *steps]:
            t.join(30)
        conflicts = [o for o in outcomes if isinstance(o, announce.AnnounceConflict)]
        assert len(outcomes) == 2 and len(conflicts) == 1
        assert str(conflicts[0]).endswith("was announced by a concurrent step")
        got = _numbers(engine)
        assert sorted(got[p] for p in [*papers, fourth]) == [1, 2, 3, 4]
        with engine.connect() as conn:
            assert store.counter_value(conn, "announce") == 4  # the loser's numbers were rolled back

        # Now only an update is pending; two steps meet on the update counter.
        with engine.begin() as conn:
            notice = _notice(conn, papers[0], "late-erratum", announced + timedelta(hours=1))
        ready, release = threading.Event(), threading.Event()
        holder = threading.Thread(target=_hold_counter, args=(engine, "update", ready, release))
        holder.start()
        assert ready.wait(10)
        outcomes.clear()
        steps = [threading.Thread(target=step) for _ in range(2)]
        for t in steps:
            t.start()
        _wait_for_lock_waiters(engine, 2)
        release.set()
        for t in [holder, *steps]:
            t.join(30)
        assert _update_numbers(engine)[notice] == 1  # numbered once, never renumbered
    finally:
        engine.dispose()
