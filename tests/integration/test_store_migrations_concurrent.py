"""Every task migrates the store on start (`pipeline.open_store`), so on a first run the mapped
`poll_feed` tasks (14 of them) meet on an empty database. Their migrations must take turns.

Real processes (forked, so each has its own connections), released together at a barrier, each
calling `store.upgrade` on the same empty database, once on SQLite and once on PostgreSQL.
"""

from __future__ import annotations

import multiprocessing
import traceback

import pytest
import sqlalchemy as sa

from lupus_alerts import store

PROCESSES = 8


def _upgrade_at_barrier(
    url: str, barrier: multiprocessing.synchronize.Barrier, out: multiprocessing.Queue
) -> None:
    try:
        barrier.wait(timeout=60)
        store.upgrade(url)
        out.put("ok")
    except BaseException:  # reported to the test, which fails with it
        out.put(traceback.format_exc())


def _head() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(store.alembic_config("sqlite://")).get_current_head()


@pytest.mark.slow
def test_concurrent_upgrades_of_an_empty_store_all_succeed(db_url: str) -> None:
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(PROCESSES)
    out: multiprocessing.Queue = ctx.Queue()
    procs = [ctx.Process(target=_upgrade_at_barrier, args=(db_url, barrier, out)) for _ in range(PROCESSES)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    failures = [r for r in results if r != "ok"]
    assert failures == [], failures[0] if failures else ""
    assert all(p.exitcode == 0 for p in procs)
    engine = store.make_engine(db_url)
    try:
        with engine.connect() as conn:
            versions = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
        tables = set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert versions == [_head()]
    assert {t.name for t in store.metadata.sorted_tables} <= tables


def test_upgrading_a_current_store_changes_nothing(db_url: str) -> None:
    store.upgrade(db_url)
    store.upgrade(db_url)
    assert store.current_revision(db_url) == _head()


def _upgrade_and_report(url: str, out: multiprocessing.Queue) -> None:
    try:
        store.upgrade(url)
        out.put(("done", store.current_revision(url)))
    except BaseException as e:
        out.put(("error", repr(e)))


def test_an_upgrade_waits_while_another_process_holds_the_migration_lock(db_url: str) -> None:
    ctx = multiprocessing.get_context("fork")
    out: multiprocessing.Queue = ctx.Queue()
    with store.migration_lock(db_url):
        proc = ctx.Process(target=_upgrade_and_report, args=(db_url, out))
        proc.start()
        proc.join(timeout=2.0)
        assert proc.is_alive(), "the upgrade ran while the lock was held"
        assert store.current_revision(db_url) is None
    assert out.get(timeout=60) == ("done", _head())
    proc.join(timeout=10)


def _lock_with_timeout(url: str, out: multiprocessing.Queue) -> None:
    try:
        with store.migration_lock(url, timeout_s=0.3):
            out.put("acquired")
    except store.MigrationLockTimeout as e:
        out.put(f"timeout: {e}")


def test_a_lock_held_too_long_is_a_clear_error_not_a_hang(db_url: str) -> None:
    ctx = multiprocessing.get_context("fork")
    out: multiprocessing.Queue = ctx.Queue()
    with store.migration_lock(db_url):
        proc = ctx.Process(target=_lock_with_timeout, args=(db_url, out))
        proc.start()
        got = out.get(timeout=30)
        proc.join(timeout=10)
    assert got.startswith("timeout: another process has been migrating the store")
