"""The store's tables, as the code sees them, match what the migrations build, on both databases."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from lupus_alerts import store


def test_migrations_build_exactly_the_declared_schema(store_url: str) -> None:
    eng = store.make_engine(store_url)
    with eng.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, store.metadata)
    eng.dispose()
    assert diff == []


def test_upgrade_is_idempotent_and_reports_head(store_url: str) -> None:
    store.upgrade(store_url)
    assert store.current_revision(store_url) == "0005"


def test_counters_start_at_zero_and_hand_out_consecutive_numbers(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        assert store.counter_value(conn, "announce") == 0
        assert list(store.next_numbers(conn, "announce", 3)) == [1, 2, 3]
        assert list(store.next_numbers(conn, "announce", 2)) == [4, 5]
        assert list(store.next_numbers(conn, "announce", 0)) == []
        assert store.counter_value(conn, "announce") == 5


def test_everything_up_to_now_is_the_counter_even_when_its_last_paper_is_gone(engine: sa.Engine) -> None:
    # One function answers "the highest number handed out" for the ledger, new subscribers, the
    # digest preview and the ingest's announced range (it was four copies; two read only the
    # column, which stops short when the highest-numbered paper was merged into an older one).
    now = store.utcnow()
    with engine.begin() as conn:
        list(store.next_numbers(conn, "announce", 42))
        conn.execute(
            sa.insert(store.papers).values(
                title="t", title_key="k", record="{}", first_seen_at=now, updated_at=now, announce_no=40
            )
        )
        assert store.high_water_marks(conn) == (42, 0)
        # rows numbered without the counter (fixtures, imports): the column wins
        conn.execute(
            sa.insert(store.papers).values(
                title="u", title_key="l", record="{}", first_seen_at=now, updated_at=now, announce_no=50
            )
        )
        assert store.high_water_marks(conn) == (50, 0)


def test_an_empty_store_is_at_zero_and_updates_follow_their_own_counter_and_column(engine: sa.Engine) -> None:
    now = store.utcnow()
    with engine.begin() as conn:
        assert store.high_water_marks(conn) == (0, 0)
        # update numbers drawn (their rows written by a later statement): the update counter
        list(store.next_numbers(conn, "update", 7))
        assert store.high_water_marks(conn) == (0, 7)
        pid = conn.execute(
            sa.insert(store.papers)
            .values(title="t", title_key="k", record="{}", first_seen_at=now, updated_at=now)
            .returning(store.papers.c.id)
        ).scalar_one()
        # an update numbered without the counter (an import): the column wins
        conn.execute(
            sa.insert(store.paper_updates).values(
                paper_id=pid, kind="erratum", notice_key="n", notice="{}", detected_at=now, update_no=9
            )
        )
        assert store.high_water_marks(conn) == (0, 9)


def test_a_counter_is_its_own_and_a_new_one_starts_at_one(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        list(store.next_numbers(conn, "announce", 4))
        assert store.counter_value(conn, "update") == 0  # another counter did not move
        assert list(store.next_numbers(conn, "a-new-counter", 3)) == [1, 2, 3]
        assert list(store.next_numbers(conn, "a-new-counter", 2)) == [4, 5]
        assert store.counter_value(conn, "a-new-counter") == 5
        assert store.counter_value(conn, "announce") == 4
        assert store.counter_value(conn, "never-used") == 0


def test_concurrent_transactions_never_share_a_number(store_url: str) -> None:
    eng = store.make_engine(store_url)
    got: list[int] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(10):
                with eng.begin() as conn:
                    nums = list(store.next_numbers(conn, "update", 2))
                with lock:
                    got.extend(nums)
        except BaseException as e:  # surface thread failures in the test
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    eng.dispose()
    assert not errors
    assert sorted(got) == list(range(1, 81))


def test_rolled_back_transaction_releases_nothing(engine: sa.Engine) -> None:
    try:
        with engine.begin() as conn:
            store.next_numbers(conn, "announce", 5)
            raise RuntimeError("abort")
    except RuntimeError:
        pass
    with engine.begin() as conn:
        assert list(store.next_numbers(conn, "announce", 1)) == [1]


def test_records_survive_the_move_to_json_and_back(db_url: str) -> None:
    from datetime import date

    from lupus_alerts.dedupe import upsert_papers
    from lupus_alerts.models import Paper

    paper = Paper(
        source="pubmed",
        source_key="41000001",
        pmid="41000001",
        title="Anifrolumab in lupus nephritis: a constructed record for the migration test",
        doi="10.1177/09612033251234567",
        pub_date=date(2026, 11, 1),
        abstract='Résumé with accents and a "quote".',
    )
    store.upgrade(db_url)
    eng = store.make_engine(db_url)
    upsert_papers(eng, [paper])
    from alembic import command

    steps = (  # records are jsonb on PostgreSQL at 0001, json from 0002
        ("0001", lambda: command.downgrade(store.alembic_config(db_url), "0001")),
        ("0002", lambda: store.upgrade(db_url, "0002")),
        ("head", lambda: store.upgrade(db_url)),
    )
    for revision, step in steps:
        step()
        with eng.connect() as conn:
            stored = conn.execute(
                sa.select(store.papers.c.record, store.paper_sources.c.record).join_from(
                    store.papers, store.paper_sources
                )
            ).one()
        assert stored[0] == stored[1] == paper.to_dict(), revision
    eng.dispose()


def test_one_transaction_helper_commits_its_own_and_joins_the_callers(engine: sa.Engine) -> None:
    def count(conn: sa.Connection) -> int:
        return int(conn.execute(sa.select(sa.func.count()).select_from(store.counters)).scalar() or 0)

    with engine.connect() as probe:
        before = count(probe)
    with store.transaction(engine) as c:  # an engine: its own transaction, committed
        c.execute(sa.insert(store.counters).values(name="t1", value=0))
    with engine.connect() as conn:
        with store.transaction(conn) as c:  # a connection outside a transaction: begun and committed
            c.execute(sa.insert(store.counters).values(name="t2", value=0))
        assert not conn.in_transaction()
        with conn.begin() as outer:  # inside the caller's transaction: joined, the caller decides
            with store.transaction(conn) as c:
                c.execute(sa.insert(store.counters).values(name="t3", value=0))
            assert conn.in_transaction()
            outer.rollback()
    with engine.connect() as probe:
        assert count(probe) == before + 2


def test_a_watermark_only_moves_forward_and_says_where_it_stands(engine: sa.Engine) -> None:
    # The one watermark implementation: the run's, each source's and PubMed's all use it
    # (it merged pipeline's write_watermark and pubmed's record_window, whose tests were these).
    t9, t1, t12 = datetime(2024, 3, 9), datetime(2024, 3, 1), datetime(2024, 3, 12)
    assert store.read_watermark(engine, "w") is None
    assert store.advance_watermark(engine, "w", t9) == t9
    assert store.advance_watermark(engine, "w", t1) == t9
    assert store.read_watermark(engine, "w") == t9
    assert store.advance_watermark(engine, "w", t9) == t9
    # an aware time is stored as naive UTC: 13:00 at UTC+13 is midnight UTC
    assert (
        store.advance_watermark(engine, "w", t12.replace(hour=13, tzinfo=timezone(timedelta(hours=13))))
        == t12
    )
    assert store.read_watermark(engine, "w") == t12
    assert store.read_watermark(engine, "other") is None
