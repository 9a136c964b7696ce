"""How upsert_papers runs its batches: one connection plus a checkpointing one on SQLite, two
forked worker processes on PostgreSQL. Real stores; records constructed in the paper schema."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import sqlite3
from datetime import date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from lupus_alerts import store
from lupus_alerts.dedupe import MergeError, codec, upsert, upsert_papers
from lupus_alerts.models import Paper

T0 = datetime(2026, 11, 2, 6, 0)


def _feed_items(n: int, start: int = 0) -> list[Paper]:
    return [
        Paper(
            source="feed:lupus",
            source_key=f"https://journals.example/item/{i}",
            title=f"Outcomes of lupus nephritis in cohort number {i} of a multicentre registry",
            doi=f"10.1177/0961203325{i:07d}",
            journal="Lupus",
            pub_date=date(2026, 10, 1),
            abstract="Background: constructed for this test. " * 5,
        )
        for i in range(start, start + n)
    ]


def _pubmed_of(p: Paper, pmid: int) -> Paper:
    return Paper(
        source="pubmed",
        source_key=str(pmid),
        pmid=str(pmid),
        title=p.title,
        doi=p.doi,
        journal="Lupus",
        journal_iso="Lupus",
        pub_date=p.pub_date,
        abstract=p.abstract + " Results: a longer PubMed abstract.",
    )


def _count(engine: sa.Engine, table: sa.Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_sqlite_upsert_leaves_its_rows_in_the_database_file_and_autocheckpoint_restored(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store.upgrade(url)
    engine = store.make_engine(url)
    stats = upsert_papers(engine, _feed_items(2500), now=T0, batch_size=250)
    assert stats.new == 2500

    # The checkpoints run beside the batches and the call waits for the last one, so the
    # database file alone (without its -wal) already holds every row.
    copy = tmp_path / "copy.db"
    shutil.copyfile(tmp_path / "store.db", copy)
    with sqlite3.connect(copy) as raw:
        assert raw.execute("SELECT count(*) FROM papers").fetchone()[0] == 2500
        assert raw.execute("SELECT count(*) FROM paper_sources").fetchone()[0] == 2500

    # the pooled connection the upsert wrote on checkpoints by itself again
    with engine.connect() as conn:
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None  # the connection is checked out: its DBAPI connection is open
        setting = dbapi.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
    assert setting == store.SQLITE_WAL_AUTOCHECKPOINT
    engine.dispose()


def test_many_batches_store_each_paper_once_and_enrich_it(engine: sa.Engine) -> None:
    # On PostgreSQL two worker processes write batches at once: the counts prove none was lost
    # or doubled.
    feed = _feed_items(1200)
    first = upsert_papers(engine, feed, now=T0, batch_size=100)
    assert first.new == 1200 and first.attempts >= 1
    # PubMed records of half of them, each batch mixing new papers and enrichments
    mixed: list[Paper] = []
    for i, p in enumerate(feed[:600]):
        mixed += [_pubmed_of(p, 41_000_000 + i), _feed_items(1, start=5000 + i)[0]]
    second = upsert_papers(engine, mixed, now=T0, batch_size=100)
    assert (second.new, second.updated) == (600, 600)
    assert len(set(second.updated_ids)) == 600 and len(set(second.new_ids)) == 600
    assert _count(engine, store.papers) == 1800
    assert _count(engine, store.paper_sources) == 2400
    with engine.connect() as conn:
        enriched = conn.execute(
            sa.select(sa.func.count()).select_from(store.papers).where(store.papers.c.pmid.is_not(None))
        ).scalar_one()
    assert enriched == 600
    again = upsert_papers(engine, mixed, now=T0, batch_size=100)
    assert (again.new, again.updated, again.unchanged) == (0, 0, 1200)


def test_in_memory_sqlite_store_upserts_without_a_checkpointing_connection() -> None:
    # another thread's connection to ":memory:" would be another, empty database
    engine = store.make_engine("sqlite:///:memory:")
    store.metadata.create_all(engine)
    stats = upsert_papers(engine, _feed_items(30), now=T0, batch_size=10)
    assert stats.new == 30
    assert _count(engine, store.papers) == 30
    engine.dispose()


def _papers_with_source(engine: sa.Engine, source: str) -> int:
    S = store.paper_sources
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).where(S.c.source == source)).scalar_one())


def test_the_callers_pooled_connections_survive_the_worker_processes(pg_url: str) -> None:
    # The workers are forked with the caller's pool in their memory: they must neither use
    # nor close those connections (closing one ends the caller's session on the server).
    store.upgrade(pg_url)
    engine = store.make_engine(pg_url)
    held = engine.connect()  # checked out across the upsert
    pid = held.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    with engine.connect() as idle:  # checked back in: sits in the pool during the fork
        idle_pid = idle.exec_driver_sql("SELECT pg_backend_pid()").scalar()

    stats = upsert_papers(engine, _feed_items(900), now=T0, batch_size=100)

    assert stats.new == 900
    assert held.exec_driver_sql("SELECT pg_backend_pid()").scalar() == pid
    with engine.connect() as again:
        assert again.exec_driver_sql("SELECT pg_backend_pid()").scalar() == idle_pid
    # one transaction per batch
    assert held.exec_driver_sql("SELECT count(DISTINCT xmin::text) FROM paper_sources").scalar() == 9
    held.close()
    engine.dispose()


def test_a_database_error_in_a_worker_reaches_the_caller_and_other_batches_stay(pg_url: str) -> None:
    store.upgrade(pg_url)
    engine = store.make_engine(pg_url)
    items = _feed_items(300)
    bad = items[150]
    items[150] = Paper(**{**bad.to_dict(), "source": "feed:" + "x" * 200, "pub_date": bad.pub_date})
    with pytest.raises(sa.exc.DataError, match="too long"):
        upsert_papers(engine, items, now=T0, batch_size=100)
    # the first batch committed; the failed batch (records 100-199) left nothing
    assert _papers_with_source(engine, "feed:lupus") in (100, 200)
    with engine.connect() as conn:
        keys = set(conn.execute(sa.select(store.paper_sources.c.source_key)).scalars())
    assert not {f"https://journals.example/item/{i}" for i in range(100, 200)} & keys
    engine.dispose()


def test_a_worker_that_dies_is_a_merge_error_and_a_rerun_finishes_the_job(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.upgrade(pg_url)
    engine = store.make_engine(pg_url)
    items = _feed_items(400)
    encode = codec._encode_batch

    def dies_on_the_third_batch(batch: list[Paper]) -> codec._Encoded:
        if batch[0].source_key.endswith("/item/200"):
            os._exit(9)  # as if killed: no exception, no cleanup
        return encode(batch)

    monkeypatch.setattr(upsert, "_encode_batch", dies_on_the_third_batch)  # the workers fork with it
    with pytest.raises(MergeError, match="worker process died"):
        upsert_papers(engine, items, now=T0, batch_size=100)
    monkeypatch.undo()

    done = upsert_papers(engine, items, now=T0, batch_size=100)
    assert done.new + done.unchanged == 400 and done.new >= 100
    assert _count(engine, store.papers) == 400
    engine.dispose()


def _upsert_and_report(url: str, results: multiprocessing.Queue[int | str]) -> None:
    engine = store.make_engine(url)
    try:
        results.put(upsert_papers(engine, _feed_items(300), now=T0, batch_size=100).new)
    except Exception as e:  # reported to the test
        results.put(repr(e))
    finally:
        engine.dispose()


def test_a_daemonic_caller_writes_its_batches_itself(pg_url: str) -> None:
    # A daemonic process may not start children (multiprocessing refuses); its upsert must
    # still work, one batch after another.
    store.upgrade(pg_url)
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    proc = ctx.Process(target=_upsert_and_report, args=(pg_url, results), daemon=True)
    proc.start()
    proc.join(timeout=60)
    assert proc.exitcode == 0
    assert results.get(timeout=5) == 300
