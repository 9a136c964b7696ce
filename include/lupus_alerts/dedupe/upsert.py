"""`upsert_papers`: the only writer of `papers` and `paper_sources`. Each batch: match, plan,
write, in one transaction, redone when a concurrent writer got in the way."""

from __future__ import annotations

import itertools
import multiprocessing
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from lupus_alerts import store
from lupus_alerts.dedupe._bulk import _apply
from lupus_alerts.dedupe._checkpoint import _Checkpointer
from lupus_alerts.dedupe._parallel import _FORK, _upsert_in_workers
from lupus_alerts.dedupe.codec import _encode_batch, _Encoded, _same_record
from lupus_alerts.dedupe.match import (
    _in_chunks,
    _link_by_title,
    _load_papers,
    _lookup,
    _source_rows,
    _UnionFind,
    _untouched_papers,
)
from lupus_alerts.dedupe.plan import _Batch, _plan_group, _Planning, _StoredSource, _Writes
from lupus_alerts.dedupe.stats import MergeError, UpsertStats, _Retry
from lupus_alerts.doi import normalize_doi
from lupus_alerts.models import Paper

BATCH_SIZE = 500  # records per transaction; measured best of 250/500/1000 with two writers (docs/dedupe.md)


MAX_ATTEMPTS = 12


# PostgreSQL SQLSTATEs that mean "someone else got there first, try again".
_RETRY_SQLSTATES = {"40001", "40P01"}


def upsert_papers(
    engine: Engine,
    papers: Iterable[Paper],
    *,
    now: datetime | None = None,
    batch_size: int = BATCH_SIZE,
) -> UpsertStats:
    """Store records from any source, merging each into the paper it belongs to.

    Idempotent (the same records again change nothing and count as unchanged), batched
    (`batch_size` records per transaction), and safe against concurrent writers on PostgreSQL
    and SQLite. A merged record that changed is marked `needs_classification`. On PostgreSQL
    an input of several batches is written by two forked worker processes at once. Raises
    MergeError if a batch keeps conflicting with concurrent writers or a worker dies; a
    database error in any batch is raised as it is, after the batches in flight finish.
    """
    when = now or store.utcnow()
    if engine.dialect.name == "sqlite":
        return _upsert_sqlite(engine, papers, when, batch_size)
    batches = _chunks(papers, batch_size)
    head = list(itertools.islice(batches, 2))
    every = itertools.chain(head, batches)
    if len(head) < 2 or _FORK is None or multiprocessing.current_process().daemon:
        # One batch (a daily poll, usually) is not worth a process. Without fork (Windows), or
        # in a daemonic process (which may not start children), they run one after another.
        total = UpsertStats()
        for batch in every:
            total.add(_upsert_with_retries(engine.begin, batch, when))
        return total
    return _upsert_in_workers(engine, every, when, _upsert_with_retries)


def _upsert_sqlite(engine: Engine, papers: Iterable[Paper], when: datetime, batch_size: int) -> UpsertStats:
    """SQLite has one writer at a time, so the batches run one after the other, on one
    connection; WAL checkpoints run beside them on another (see _Checkpointer)."""
    total = UpsertStats()
    with engine.connect() as conn, _Checkpointer(engine, conn) as checkpointer:

        @contextmanager
        def begin() -> Iterator[Connection]:
            with conn.begin():
                yield conn

        for batch in _chunks(papers, batch_size):
            total.add(_upsert_with_retries(begin, batch, when))
            checkpointer.kick()
    return total


def _upsert_with_retries(
    begin: Callable[[], AbstractContextManager[Connection]], batch: Sequence[Paper], when: datetime
) -> UpsertStats:
    """One batch in one transaction, redone when a concurrent writer got in its way."""
    prepared = _encode_batch(batch)  # once: a retry redoes the transaction, not the encoding
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            with begin() as conn:
                stats = _upsert_batch(conn, prepared, when)
        except (IntegrityError, _Retry) as e:
            last: Exception = e
        except DBAPIError as e:
            if getattr(e.orig, "pgcode", None) not in _RETRY_SQLSTATES:
                raise
            last = e
        else:
            stats.attempts = attempt
            return stats
        # Jitter so two writers that collided do not collide again in lock-step.
        time.sleep(random.uniform(0.005, 0.05) * attempt)
    raise MergeError(
        f"batch of {len(prepared.recs)} records still conflicting after {MAX_ATTEMPTS} attempts: {last}"
    )


def _chunks(items: Iterable[Paper], n: int) -> Iterator[list[Paper]]:
    batch: list[Paper] = []
    for item in items:
        batch.append(item)
        if len(batch) >= n:
            yield batch
            batch = []
    if batch:
        yield batch


def _upsert_batch(conn: Connection, enc: _Encoded, now: datetime) -> UpsertStats:
    """One batch, inside the caller's transaction: match, lock and load, plan per group, write."""
    uf = _UnionFind()
    src_rows, same = _match_records(conn, enc, uf)
    papers_by_id, sources_by_paper = _load_linked_papers(conn, uf, same)

    # 3. Per group: merge, decide what changed, and collect the writes.
    batch = _Batch(enc.recs, enc.texts, enc.hashes, src_rows, same)
    stats = UpsertStats()
    w = _Writes()
    ctx = _Planning(conn, batch, papers_by_id, sources_by_paper, now, w, stats)
    for rec_idx, pids in _groups(uf).values():
        _plan_group(ctx, sorted(rec_idx), sorted(pids))

    _apply(conn, w, now, stats)
    return stats


def _match_records(
    conn: Connection, enc: _Encoded, uf: _UnionFind
) -> tuple[dict[tuple[str, str], Any], list[bool]]:
    """Which stored papers and batch records each record belongs with (in `uf`), and which are unchanged.

    Returns the stored source rows by (source, source_key) and, per record, whether it is
    stored already exactly as it is now.
    """
    P, S = store.papers, store.paper_sources
    recs, hashes = enc.recs, enc.hashes

    # 1. Find every stored paper each record may belong to, and records that share a key.
    src_rows = _source_rows(conn, [(r.source, r.source_key) for r in recs])
    doi_hits = _lookup(conn, P.c.doi, (r.doi for r in recs))
    pmid_hits = _lookup(conn, P.c.pmid, (r.pmid for r in recs))
    # Records stored before exactly as they are now: their title was matched when they first
    # came, and their paper needs no work unless another record in the batch touches it. The
    # stored hash decides; only rows stored without one have their JSON read.
    same = [False] * len(recs)
    unhashed: dict[int, int] = {}
    first_with: dict[tuple[str, str], int] = {}
    for i, r in enumerate(recs):
        node = ("r", i)
        uf.find(node)
        row = src_rows.get((r.source, r.source_key))
        if row is not None:
            uf.union(node, ("p", row.paper_id))
            if row.record_hash is None:
                unhashed[row.id] = i
            else:
                same[i] = row.record_hash == hashes[i]
        for kind, value, hits in (("doi", r.doi, doi_hits), ("pmid", r.pmid, pmid_hits)):
            if value:
                if value in hits:
                    uf.union(node, ("p", hits[value]))
                j = first_with.setdefault((kind, value), i)
                uf.union(node, ("r", j))
    for chunk in _in_chunks(unhashed):
        for sid, record in conn.execute(sa.select(S.c.id, S.c.record).where(S.c.id.in_(chunk))):
            i = unhashed[sid]
            same[i] = _same_record(None, record, recs[i], hashes[i])
    # Title keys only for records nothing else matched: a record that matched by source, DOI
    # or PMID had its title compared when that paper or the DOI-less one was first stored.
    matched = [(r.source, r.source_key) in src_rows or r.doi in doi_hits or r.pmid in pmid_hits for r in recs]
    _link_by_title(conn, recs, uf, skip=matched)
    return src_rows, same


def _load_linked_papers(
    conn: Connection, uf: _UnionFind, same: list[bool]
) -> tuple[dict[int, Any], dict[int, list[_StoredSource]]]:
    """Which stored papers the batch touches: matched ones and those holding a DOI or PMID they mention."""
    P = store.papers
    # 2. Lock and load the matched papers, their sources, and any paper holding a DOI or PMID
    #    those sources mention (so the merged row can take it without a unique violation).
    #    Papers whose every record arrived unchanged are left alone (the fast path, plan._unchanged).
    papers_by_id: dict[int, Any] = {}
    sources_by_paper: dict[int, list[_StoredSource]] = {}
    untouched = _untouched_papers(uf, same)
    wanted = {n[1] for n in list(uf.parent) if n[0] == "p"} - untouched
    for _ in range(8):
        missing = wanted - papers_by_id.keys()
        if not missing:
            break
        _load_papers(conn, missing, papers_by_id, sources_by_paper)
        mentions: dict[tuple[str, str], set[int]] = {}
        for pid in missing:
            prow = papers_by_id[pid]
            for srow in sources_by_paper.get(pid, []):
                d, pm = normalize_doi(srow.paper.doi), srow.paper.pmid
                if d and d != prow.doi:
                    mentions.setdefault(("doi", d), set()).add(pid)
                if pm and pm != prow.pmid:
                    mentions.setdefault(("pmid", pm), set()).add(pid)
        holders = {
            "doi": _lookup(conn, P.c.doi, (v for k, v in mentions if k == "doi")),
            "pmid": _lookup(conn, P.c.pmid, (v for k, v in mentions if k == "pmid")),
        }
        for (kind, value), pids in mentions.items():
            holder = holders[kind].get(value)
            if holder is not None:
                for pid in pids:
                    uf.union(("p", pid), ("p", holder))
                wanted.add(holder)
    else:
        raise _Retry("papers kept linking to further papers; giving up this attempt")
    return papers_by_id, sources_by_paper


def _groups(uf: _UnionFind) -> dict[Any, tuple[list[int], list[int]]]:
    """The batch's groups: per union-find root, the record indices and paper ids that merge together."""
    groups: dict[Any, tuple[list[int], list[int]]] = {}
    for node in list(uf.parent):
        rec_idx, pids = groups.setdefault(uf.find(node), ([], []))
        (rec_idx if node[0] == "r" else pids).append(node[1])
    return groups
