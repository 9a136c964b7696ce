"""Upsert 10,000 candidates (half new) into stores holding 100,000 and 1,000,000 papers.

Run: `.venv/bin/python -m bench.bench_upsert` (add `--sizes 100000` for a quick run, `--db sqlite`
for one database, `--repeat 3` for medians over three measurements each). The seeded stores are
cached: SQLite files under bench/out/ and PostgreSQL databases `lupus_bench_<size>_v<N>`
(templates) that every measurement clones, so each measurement starts from the same store.
Seeding 1,000,000 papers takes a few minutes the first time only.

Each measurement runs in a fresh process so its peak RSS is the upsert's own: the figure is
the growth of the process's high-water mark from just before to just after `upsert_papers`.
The candidates: 5,000 new papers (half from a feed, half from PubMed) and 5,000 PubMed records
of stored feed papers (same DOI, adding PMID, MeSH and abstract), so half of them take the full
merge path, not just the "nothing changed" shortcut.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from datetime import date, datetime, timedelta
from hashlib import sha256
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"
PG_ADMIN = os.environ.get("LUPUS_BENCH_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
SIZES = (100_000, 1_000_000)
CANDIDATES = 10_000
BUDGET_S = 2.0
SEED_VERSION = 6  # bump when the seeded shape changes, to rebuild caches
T0 = datetime(2026, 1, 1, 6, 0)
JOURNALS = (
    "Lupus",
    "Lupus Science & Medicine",
    "Arthritis & Rheumatology",
    "Rheumatology",
    "Annals of the Rheumatic Diseases",
)


# -- the synthetic papers -----------------------------------------------------------------


def _title(i: int) -> str:
    return f"Synthetic benchmark paper {i}: outcomes of lupus nephritis in cohort {i % 97}"


def _doi(i: int) -> str:
    return f"10.{5000 + i % 1000}/bench.{i}"


def _feed_paper(i: int) -> Any:
    from lupus_alerts.models import Paper

    return Paper(
        source=f"feed:bench{i % 20}",
        source_key=f"https://journals.example/item/{i}",
        title=_title(i),
        doi=_doi(i),
        journal=JOURNALS[i % len(JOURNALS)],
        abstract="Background: a synthetic abstract for the benchmark. " * 3,
        pub_date=date(2020, 1, 1) + timedelta(days=i % 2000),
        url=f"https://journals.example/item/{i}",
    )


def _pubmed_paper(i: int) -> Any:
    from lupus_alerts.models import MeshHeading, Paper

    p = _feed_paper(i)
    return Paper(
        source="pubmed",
        source_key=str(20_000_000 + i),
        pmid=str(20_000_000 + i),
        title=p.title + ".",
        doi=p.doi,
        journal=p.journal,
        abstract="BACKGROUND: a longer PubMed abstract. " * 8,
        pub_date=p.pub_date,
        mesh=[MeshHeading("Lupus Erythematosus, Systemic", major=True), MeshHeading("Lupus Nephritis")],
        publication_types=["Journal Article"],
    )


def _fast_title_key(i: int, year: int) -> str:
    # dedupe.title_key for _title(i), without its Unicode folding (the title is plain ASCII);
    # _seed_rows checks the two agree.
    norm = f"syntheticbenchmarkpaper{i}outcomesoflupusnephritisincohort{i % 97}"
    return sha256(f"{norm}|{year}".encode()).hexdigest()


def _seed_rows(start: int, stop: int) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Rows for papers start..stop-1: a feed record each, stored as its own merged record."""
    import dataclasses

    from lupus_alerts.dedupe import encode_paper, merge_records, title_key

    template = _feed_paper(start)
    assert merge_records([template]) == template  # one source: merged == its record
    assert _fast_title_key(start, 2020) == title_key(_title(start), None, 2020)
    stamp = T0.isoformat(sep=" ")
    papers, sources = [], []
    for i in range(start, stop):
        # _feed_paper(i), from a template: a dataclass replace is cheaper than a full build
        pub_date = date(2020, 1, 1) + timedelta(days=i % 2000)
        link = f"https://journals.example/item/{i}"
        rec = dataclasses.replace(
            template,
            source=f"feed:bench{i % 20}",
            source_key=link,
            url=link,
            title=_title(i),
            doi=_doi(i),
            journal=JOURNALS[i % len(JOURNALS)],
            pub_date=pub_date,
        )
        # stored as upsert_papers stores it (so a re-poll of it is recognised as unchanged)
        text, digest = encode_paper(rec)
        if i == start:
            assert (text, digest) == encode_paper(_feed_paper(i))
        papers.append(
            (
                i,
                rec.doi,
                None,
                _fast_title_key(i, pub_date.year),
                rec.title,
                rec.journal,
                pub_date.isoformat(),
                text,
                digest,
                True,
                0.9,
                False,
                False,
                i,
                stamp,
                stamp,
                stamp,
            )
        )
        sources.append((i, i, rec.source, link, text, digest, stamp, stamp))
    return papers, sources


_PAPER_COLS = (
    "id, doi, pmid, title_key, title, journal, pub_date, record, record_hash, is_lupus, relevance_score, "
    "needs_classification, is_retracted, announce_no, announced_at, first_seen_at, updated_at"
)
_SOURCE_COLS = "id, paper_id, source, source_key, record, record_hash, first_seen_at, last_seen_at"
_CHUNK = 50_000


def _counter_rows(n: int) -> list[tuple[str, int]]:
    return [("announce", n)]


# -- SQLite -------------------------------------------------------------------------------


def _sqlite_seed(size: int) -> Path:
    from lupus_alerts import store

    path = OUT / f"upsert_sqlite_{size}_v{SEED_VERSION}.db"
    if path.exists():
        return path
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    store.upgrade(f"sqlite:///{tmp}")
    t = time.perf_counter()
    db = sqlite3.connect(tmp)
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    for start in range(0, size, _CHUNK):
        papers, sources = _seed_rows(start + 1, min(size, start + _CHUNK) + 1)
        db.executemany(f"INSERT INTO papers ({_PAPER_COLS}) VALUES ({','.join('?' * 17)})", papers)
        db.executemany(f"INSERT INTO paper_sources ({_SOURCE_COLS}) VALUES ({','.join('?' * 8)})", sources)
    db.execute("DELETE FROM counters WHERE name = 'announce'")
    db.executemany("INSERT INTO counters (name, value) VALUES (?, ?)", _counter_rows(size))
    db.commit()
    db.execute("ANALYZE")
    db.close()
    tmp.rename(path)
    print(f"  seeded SQLite with {size:,} papers in {time.perf_counter() - t:.0f} s -> {path}", flush=True)
    return path


def _sqlite_copy(size: int) -> str:
    src = _sqlite_seed(size)
    dst = OUT / f"upsert_sqlite_{size}_run.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(dst) + suffix).unlink(missing_ok=True)
    shutil.copyfile(src, dst)
    return f"sqlite:///{dst}"


# -- PostgreSQL ---------------------------------------------------------------------------


def _pg_url(name: str) -> str:
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


def _pg_admin() -> Any:
    import sqlalchemy as sa

    return sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")


def _pg_seed(size: int) -> str:
    import sqlalchemy as sa

    from lupus_alerts import store

    name = f"lupus_bench_{size}_v{SEED_VERSION}"
    admin = _pg_admin()
    with admin.connect() as c:
        exists = c.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
        if exists:
            ok = c.execute(
                sa.text("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = :n"),
                {"n": name},
            ).scalar()
            if ok == "complete":
                admin.dispose()
                return name
            c.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
        c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = _pg_url(name)
    store.upgrade(url)
    t = time.perf_counter()
    eng = sa.create_engine(url)
    raw = eng.raw_connection()
    try:
        cur = raw.cursor()
        for start in range(0, size, _CHUNK):
            papers, sources = _seed_rows(start + 1, min(size, start + _CHUNK) + 1)
            for table, cols, rows in (
                ("papers", _PAPER_COLS, papers),
                ("paper_sources", _SOURCE_COLS, sources),
            ):
                buf = io.StringIO()
                csv.writer(buf).writerows(rows)
                buf.seek(0)
                cur.copy_expert(f"COPY {table} ({cols}) FROM STDIN WITH (FORMAT csv)", buf)
        cur.execute("DELETE FROM counters WHERE name = 'announce'")
        cur.execute("INSERT INTO counters (name, value) VALUES ('announce', %s)", (size,))
        for table in ("papers", "paper_sources"):
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), %s)", (size,))
        raw.commit()
        cur.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()
        eng.dispose()
    with admin.connect() as c:
        c.exec_driver_sql(f"COMMENT ON DATABASE \"{name}\" IS 'complete'")
    admin.dispose()
    print(
        f"  seeded PostgreSQL with {size:,} papers in {time.perf_counter() - t:.0f} s -> {name}", flush=True
    )
    return name


def _pg_copy(size: int) -> str:
    template = _pg_seed(size)
    run = f"lupus_bench_{size}_run"
    admin = _pg_admin()
    with admin.connect() as c:
        c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{run}" WITH (FORCE)')
        # FILE_COPY, not PostgreSQL 15's default WAL_LOG: WAL_LOG writes the whole template
        # (gigabytes) through the WAL, which forces checkpoints that would still be flushing
        # during the timed upsert. Then a CHECKPOINT, so the measurement starts from a clean
        # state (and pays full-page images for every page it touches first, as a real upsert
        # after a periodic checkpoint does); the SQLite side os.sync()s for the same reason.
        c.exec_driver_sql(f'CREATE DATABASE "{run}" TEMPLATE "{template}" STRATEGY = FILE_COPY')
        c.exec_driver_sql("CHECKPOINT")
    admin.dispose()
    return _pg_url(run)


def _pg_drop_run(size: int) -> None:
    admin = _pg_admin()
    with admin.connect() as c:
        c.exec_driver_sql(f'DROP DATABASE IF EXISTS "lupus_bench_{size}_run" WITH (FORCE)')
    admin.dispose()


# -- one measurement (in its own process) -------------------------------------------------


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _cpu() -> float:
    """CPU seconds of this process and of its finished children (the upsert's worker processes)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _timed(engine: Any, candidates: list[Any], day: int) -> tuple[Any, float, float]:
    from lupus_alerts.dedupe import upsert_papers

    t, cpu = time.perf_counter(), _cpu()
    stats = upsert_papers(engine, candidates, now=T0 + timedelta(days=day))
    return stats, time.perf_counter() - t, _cpu() - cpu


def measure(url: str, size: int) -> dict[str, Any]:
    """Upsert the candidates into the store at `url` (holding `size` papers); time and memory.

    A: 5,000 new + 5,000 PubMed records enriching stored feed papers (full merge path).
    A again: the same 10,000 a second time (all unchanged).
    B: 5,000 new + 5,000 stored feed items polled again unchanged (a daily feed poll).
    """
    from lupus_alerts import store

    half = CANDIDATES // 2
    step = max(2, size // half)
    existing = [_pubmed_paper(i) for i in range(1, size + 1, step)][:half]
    new = [(_feed_paper if i % 2 else _pubmed_paper)(size + 1 + i) for i in range(half)]
    candidates_a = [p for pair in zip(existing, new, strict=True) for p in pair]
    repolled = [_feed_paper(i) for i in range(2, size + 1, step)][:half]  # not touched by A
    new_b = [(_feed_paper if i % 2 else _pubmed_paper)(size + 1 + half + i) for i in range(half)]
    candidates_b = [p for pair in zip(repolled, new_b, strict=True) for p in pair]
    engine = store.make_engine(url)
    with engine.connect() as conn:  # open the pool's connection outside the timing
        conn.exec_driver_sql("SELECT 1")
    hwm_before = _status_kb("VmHWM")
    a, a_s, a_cpu = _timed(engine, candidates_a, 1)
    hwm_after = _status_kb("VmHWM")
    # the largest worker process's peak (0 when the upsert ran in this process alone)
    workers_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    again, again_s, _ = _timed(engine, candidates_a, 2)
    b, b_s, b_cpu = _timed(engine, candidates_b, 3)
    engine.dispose()
    return {
        "seconds": a_s,
        "cpu_seconds": a_cpu,
        "new": a.new,
        "updated": a.updated,
        "unchanged": a.unchanged,
        "seconds_again": again_s,
        "again_unchanged": again.unchanged,
        "seconds_b": b_s,
        "cpu_seconds_b": b_cpu,
        "b_new": b.new,
        "b_unchanged": b.unchanged,
        "rss_growth_mb": (hwm_after - hwm_before) / 1024,
        "worker_rss_mb": workers_kb / 1024,
    }


def _run_measurement(db: str, size: int) -> dict[str, Any]:
    url = _sqlite_copy(size) if db == "sqlite" else _pg_copy(size)
    # The copy leaves hundreds of MB of dirty pages; let them reach the disk before timing.
    os.sync()
    try:
        out = subprocess.run(
            [sys.executable, "-m", "bench.bench_upsert", "--measure", url, "--size", str(size)],
            cwd=REPO,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    finally:
        if db == "postgresql":
            _pg_drop_run(size)
        else:
            for suffix in ("", "-wal", "-shm"):
                Path(url.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=list(SIZES))
    ap.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    ap.add_argument(
        "--repeat", type=int, default=1, help="measurements per store; the table shows medians and ranges"
    )
    ap.add_argument("--measure", metavar="URL", help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, args.size)))
        return 0

    dbs = ("sqlite", "postgresql") if args.db == "both" else (args.db,)
    load = os.getloadavg()[0]
    results: list[tuple[str, int, dict[str, Any]]] = []
    for db in dbs:
        for size in args.sizes:
            runs = [_run_measurement(db, size) for _ in range(args.repeat)]
            r = {k: statistics.median(run[k] for run in runs) for k in runs[0]}
            for k in ("seconds", "seconds_b"):
                r[k + "_range"] = (min(run[k] for run in runs), max(run[k] for run in runs))
            results.append((db, size, r))
            print(
                f"{db:10} {size:>9,} stored: A {r['seconds']:.2f} s (CPU {r['cpu_seconds']:.2f} s; new "
                f"{r['new']}, updated {r['updated']}); A again {r['seconds_again']:.2f} s "
                f"({r['again_unchanged']} unchanged); B {r['seconds_b']:.2f} s "
                f"(CPU {r['cpu_seconds_b']:.2f} s; new {r['b_new']}, unchanged {r['b_unchanged']}); "
                f"peak RSS growth {r['rss_growth_mb']:.1f} MB; worker peak RSS {r['worker_rss_mb']:.0f} MB",
                flush=True,
            )
    load_end = os.getloadavg()[0]
    failed = [f"{db} {size:,}" for db, size, r in results if max(r["seconds"], r["seconds_b"]) > BUDGET_S]

    def spread(lo_hi: tuple[float, float]) -> str:
        return f" ({lo_hi[0]:.2f}-{lo_hi[1]:.2f})" if args.repeat > 1 else ""

    def mb(megabytes: float) -> str:
        return f"{megabytes:.0f} MB" if megabytes else "-"

    def ok(sec: float) -> str:
        return "" if sec <= BUDGET_S else " (over)"

    rows = "\n".join(
        f"| {db} | {size:,} | {r['seconds']:.2f} s{ok(r['seconds'])}{spread(r['seconds_range'])} "
        f"| {r['cpu_seconds']:.2f} s | {r['seconds_again']:.2f} s{ok(r['seconds_again'])} "
        f"| {r['seconds_b']:.2f} s{ok(r['seconds_b'])}{spread(r['seconds_b_range'])} "
        f"| {r['cpu_seconds_b']:.2f} s | {r['rss_growth_mb']:.1f} MB "
        f"| {mb(r['worker_rss_mb'])} |"
        for db, size, r in results
    )
    body = (
        f"Each measurement upserts {CANDIDATES:,} candidates into a copy of the cached seeded store, in a "
        "fresh process (so its peak RSS is the upsert's own). The seeded stores are cached (SQLite files "
        f"under bench/out/, PostgreSQL databases `lupus_bench_<size>_v{SEED_VERSION}` used as templates): "
        "the first run seeds them (about 5 minutes here for both sizes on both databases), later runs "
        "take about a minute per repetition. With `--repeat N` every figure is the median of N "
        "measurements, with the range of the wall times in brackets. Budget: "
        f"{BUDGET_S:.0f} s per {CANDIDATES:,}.\n\n"
        "- **A**: 5,000 new papers (half feed items, half PubMed records) + 5,000 PubMed records of stored "
        "feed papers (same DOI; they add PMID, MeSH and a longer abstract, so each takes the full merge "
        "path and rewrites the paper): the heavy case.\n"
        "- **A again**: the same 10,000 once more (all unchanged).\n"
        "- **B**: 5,000 new + 5,000 stored feed items polled again unchanged: a daily feed poll.\n\n"
        "Wall time is what the budget is about; CPU is the upsert's own: the measuring process's plus, "
        "on PostgreSQL, its two worker processes' (Python, and SQLite, which runs in-process; "
        "PostgreSQL's server work is not in it). Memory: the measuring process's peak RSS growth, and "
        "on PostgreSQL the largest worker's peak RSS, which counts the pages it shares with the process "
        "it was forked from (the candidates, the imported code). The machine's 2 cores are shared with other "
        "jobs, so wall times are noisy and usually inflated (1-minute load average when this run "
        f"started: {load:.2f}, when it ended: {load_end:.2f}); and the VM's speed itself drifts: the same "
        "code's CPU time for the same case has differed by 2x between runs an hour apart. "
        "docs/dedupe.md (Performance) keeps every run of the day and the interleaved comparisons.\n\n"
        "PostgreSQL's copy is made with `CREATE DATABASE .. STRATEGY = FILE_COPY` and followed by a "
        "`CHECKPOINT`, so nothing of the copy is still being flushed during the measurement, and every "
        "page the upsert touches first goes to the WAL as a full-page image, as it does after any "
        "periodic checkpoint (the default WAL_LOG copy had logged every page already, which hid that "
        "cost: 0 full-page images instead of ~7,000 at 100,000 papers).\n\n"
        "| database | papers stored | A (wall) | A (CPU) | A again | B (wall) | B (CPU) "
        "| peak RSS growth (A) | worker peak RSS (A) |\n"
        "|---|---|---|---|---|---|---|---|---|\n" + rows + "\n"
    )
    sizes = ",".join(str(s) for s in args.sizes)
    cmd = ".venv/bin/python -m bench.bench_upsert" + (
        f" --sizes {sizes}" if args.sizes != list(SIZES) else ""
    )
    cmd += f" --db {args.db}" if args.db != "both" else ""
    cmd += f" --repeat {args.repeat}" if args.repeat != 1 else ""
    from bench.report import write_section

    write_section("upsert", "Upsert 10,000 candidates into a large store", body, cmd)
    if failed:
        print("over budget: " + ", ".join(failed), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
