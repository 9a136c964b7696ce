"""Concurrent writers on real PostgreSQL and SQLite: the same paper arriving at the same moment
from several ingest tasks must end up as one paper.

Records are constructed (hand-written); each writer has its own engine and connections, as
separate Airflow tasks would.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from datetime import date, datetime

import sqlalchemy as sa

from lupus_alerts import store
from lupus_alerts.dedupe import UpsertStats, upsert_papers
from lupus_alerts.models import Paper

T0 = datetime(2026, 11, 2, 6, 0)
DOI_FORMS = (
    "10.9999/LUPUS.{i}",
    "https://doi.org/10.9999%2Flupus.{i}",
    "doi: 10.9999/lupus.{i}.",
    "info:doi/10.9999/lupus.{i}",
)


def record(writer: int, i: int) -> Paper:
    return Paper(
        source=f"feed:writer{writer}",
        source_key=f"item-{i}",
        title=f"Lupus paper number {i} seen by several writers",
        doi=DOI_FORMS[writer % len(DOI_FORMS)].format(i=i),
        journal="Lupus",
        pub_date=date(2026, 11, 1),
    )


def _run_writers(url: str, writers: int, rounds: int) -> list[UpsertStats]:
    barrier = threading.Barrier(writers)
    results: list[UpsertStats] = []
    errors: list[BaseException] = []

    def work(w: int) -> None:
        engine = store.make_engine(url)
        try:
            for i in range(rounds):
                barrier.wait(timeout=30)  # everyone upserts paper i at the same moment
                results.append(upsert_papers(engine, [record(w, i)], now=T0))
        except BaseException as e:  # reported to the test thread below
            errors.append(e)
            barrier.abort()
        finally:
            engine.dispose()

    threads = [threading.Thread(target=work, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return results


def _counts(url: str) -> tuple[int, int, set[int]]:
    engine = store.make_engine(url)
    with engine.connect() as conn:
        papers = conn.execute(sa.select(sa.func.count()).select_from(store.papers)).scalar()
        sources = conn.execute(sa.select(sa.func.count()).select_from(store.paper_sources)).scalar()
        per_paper = set(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(store.paper_sources)
                .group_by(store.paper_sources.c.paper_id)
            ).scalars()
        )
    engine.dispose()
    return int(papers or 0), int(sources or 0), per_paper


def test_writers_upserting_the_same_doi_at_the_same_moment_leave_one_paper(store_url: str) -> None:
    writers, rounds = 4, 15
    results = _run_writers(store_url, writers, rounds)
    papers, sources, per_paper = _counts(store_url)
    assert papers == rounds
    assert sources == writers * rounds
    assert per_paper == {writers}
    assert sum(r.new for r in results) == rounds  # exactly one writer created each paper


def test_a_writer_that_loses_the_insert_race_merges_into_the_winners_row(store_url: str) -> None:
    """Writer A has inserted the DOI but not committed; writer B must wait, then join A's row
    (on PostgreSQL by failing on the unique index and redoing its batch)."""
    engine_a, engine_b = store.make_engine(store_url), store.make_engine(store_url)
    holder = engine_a.connect()
    tx = holder.begin()
    holder.execute(
        sa.insert(store.papers).values(
            doi="10.9999/lupus.0",
            title="Lupus paper number 0 seen by several writers",
            record={},
            first_seen_at=T0,
            updated_at=T0,
        )
    )
    result: list[UpsertStats] = []
    t = threading.Thread(target=lambda: result.append(upsert_papers(engine_b, [record(1, 0)], now=T0)))
    t.start()
    time.sleep(0.5)
    assert t.is_alive()  # blocked behind A's uncommitted row (or, on SQLite, A's write lock)
    tx.commit()
    holder.close()
    t.join(timeout=30)
    assert result and result[0].new == 0 and result[0].updated == 1
    if store_url.startswith("postgresql"):
        assert result[0].attempts == 2  # the unique violation was caught and the batch redone
    papers, sources, _ = _counts(store_url)
    assert (papers, sources) == (1, 1)
    engine_a.dispose()
    engine_b.dispose()


def _process_writer(url: str, writer: int, rounds: int, start_at: float) -> None:
    engine = store.make_engine(url)
    time.sleep(max(0.0, start_at - time.time()))
    for i in range(rounds):
        upsert_papers(engine, [record(writer, i), record(writer, i + 1000)], now=T0)
    engine.dispose()


def test_separate_processes_upserting_the_same_dois_leave_one_paper_each(store_url: str) -> None:
    writers, rounds = 3, 20
    ctx = multiprocessing.get_context("spawn")
    start_at = time.time() + 3.0  # after every process has imported and connected
    procs = [
        ctx.Process(target=_process_writer, args=(store_url, w, rounds, start_at)) for w in range(writers)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * writers
    papers, sources, per_paper = _counts(store_url)
    assert papers == 2 * rounds
    assert sources == 2 * rounds * writers
    assert per_paper == {writers}
