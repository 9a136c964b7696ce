"""How upsert_papers runs its batches: one connection plus a checkpointing one on SQLite, two
batches in flight on PostgreSQL. Real stores; records constructed in the paper schema."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import date, datetime
from pathlib import Path

import sqlalchemy as sa

from lupus_alerts import store
from lupus_alerts.merge import upsert_papers
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
        setting = conn.connection.dbapi_connection.execute("PRAGMA wal_autocheckpoint").fetchone()[0]  # type: ignore[union-attr]
    assert setting == store.SQLITE_WAL_AUTOCHECKPOINT
    engine.dispose()


def test_many_batches_store_each_paper_once_and_enrich_it(engine: sa.Engine) -> None:
    # On PostgreSQL two batches are in flight at once: the counts prove none was lost or doubled.
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
