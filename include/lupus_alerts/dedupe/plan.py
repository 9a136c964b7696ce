"""Planning a matched group: its merged record, the paper row, the source rows and notices to
write (`_Writes`); nothing is written here."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lupus_alerts import store
from lupus_alerts.dedupe.codec import _same_record, encode_paper
from lupus_alerts.dedupe.keys import _stored_title_key
from lupus_alerts.dedupe.records import UPDATE_KINDS, _merges_to_itself, _notice_key, merge_records
from lupus_alerts.dedupe.stats import UpsertStats
from lupus_alerts.models import Paper


@dataclass
class _Batch:
    """The batch's records with their stored forms, computed once."""

    recs: list[Paper]
    texts: list[str]
    hashes: list[str]
    # per record: the stored source row with its (source, source_key), and whether it is unchanged
    src_rows: dict[tuple[str, str], Any]
    same: list[bool]


@dataclass(slots=True)
class _StoredSource:
    """A paper_sources row with its record decoded."""

    id: int
    paper_id: int
    source: str
    source_key: str
    paper: Paper
    record_hash: str | None


@dataclass
class _Writes:
    new_papers: list[dict[str, Any]] = field(default_factory=list)
    new_paper_sources: list[list[dict[str, Any]]] = field(default_factory=list)  # per new paper
    new_paper_notices: list[list[dict[str, Any]]] = field(default_factory=list)
    paper_updates: list[dict[str, Any]] = field(default_factory=list)  # "id" + changed columns
    source_inserts: list[dict[str, Any]] = field(default_factory=list)
    source_updates: list[dict[str, Any]] = field(default_factory=list)  # "id" + changed columns
    source_touches: list[int] = field(default_factory=list)
    notices: list[dict[str, Any]] = field(default_factory=list)
    merges: list[tuple[int, list[int]]] = field(default_factory=list)  # (survivor, losers)


def _columns(merged: Paper) -> dict[str, Any]:
    return {
        "doi": merged.doi,
        "pmid": merged.pmid,
        "pmcid": merged.pmcid,
        "title_key": _stored_title_key(merged),
        "title": merged.title,
        "journal": (merged.journal or merged.journal_iso or "")[:512] or None,
        "pub_date": merged.first_date,
        "is_retracted": merged.is_retracted,
    }


def _notice_rows(merged: Paper, now: datetime) -> list[dict[str, Any]]:
    rows = {}
    for n in merged.notices:
        if n.kind in UPDATE_KINDS:
            key = _notice_key(n)
            rows[(n.kind, key)] = {
                "kind": n.kind,
                "notice_key": key,
                "notice": dataclasses.asdict(n),
                "detected_at": now,
            }
    return list(rows.values())


@dataclass
class _Planning:
    """What planning a batch needs besides the group: the batch, the papers and sources the
    match loaded (locked), the time, and where the plan and the counts go."""

    conn: Connection
    batch: _Batch
    papers_by_id: dict[int, Any]
    sources_by_paper: dict[int, list[_StoredSource]]
    now: datetime
    writes: _Writes
    stats: UpsertStats


@dataclass
class _Merged:
    record: Paper
    text: str
    hash: str


def _plan_group(ctx: _Planning, idx: list[int], pids: list[int]) -> None:
    """Plan one matched group: records `idx` of the batch and the stored papers `pids` they
    matched. Unchanged, a new paper, or an update of the surviving paper (merging the others)."""
    b = ctx.batch
    keys = [(b.recs[i].source, b.recs[i].source_key) for i in idx]
    if _unchanged(ctx, idx, pids, keys):
        return
    # Everything the group's papers already had, overridden by what arrived now.
    existing = {(s.source, s.source_key): s for pid in pids for s in ctx.sources_by_paper.get(pid, [])}
    merged = _merge_group(b, idx, keys, existing)
    if not pids:
        _plan_new_paper(ctx, idx, keys, merged)
        return
    rows = [ctx.papers_by_id[p] for p in pids]
    # The survivor keeps the earliest announcement (a paper is never announced twice), else
    # it is the oldest row.
    announced = sorted((r for r in rows if r.announce_no is not None), key=lambda r: r.announce_no)
    survivor = announced[0] if announced else min(rows, key=lambda r: r.id)
    _plan_sources(ctx, idx, keys, existing, survivor.id)
    _plan_survivor(ctx, survivor, [r for r in rows if r.id != survivor.id], merged)


def _unchanged(ctx: _Planning, idx: list[int], pids: list[int], keys: list[tuple[str, str]]) -> bool:
    """The fast path: one stored paper and every record already stored as it is now. The
    common case for a daily re-poll of a feed, so it must not pay for a merge."""
    b = ctx.batch
    if len(pids) != 1:
        return False
    pid = pids[0]
    if not all(b.same[i] and b.src_rows[k].paper_id == pid for i, k in zip(idx, keys, strict=True)):
        return False
    ctx.writes.source_touches.extend(b.src_rows[k].id for k in keys)
    ctx.stats.unchanged += 1
    ctx.stats.unchanged_ids.append(pid)
    return True


def _merge_group(
    b: _Batch, idx: list[int], keys: list[tuple[str, str]], existing: dict[tuple[str, str], _StoredSource]
) -> _Merged:
    if not existing and len(idx) == 1 and _merges_to_itself(b.recs[idx[0]]):
        # a brand-new paper from one record (half of every batch): skip the merge, and store the
        # record's JSON as it is for both the paper and its source
        i = idx[0]
        return _Merged(b.recs[i], b.texts[i], b.hashes[i])
    records: dict[tuple[str, str], Paper] = {k: s.paper for k, s in existing.items()}
    records.update((k, b.recs[i]) for i, k in zip(idx, keys, strict=True))
    merged = merge_records(list(records.values()))
    return _Merged(merged, *encode_paper(merged))


def _plan_new_paper(ctx: _Planning, idx: list[int], keys: list[tuple[str, str]], merged: _Merged) -> None:
    b, now = ctx.batch, ctx.now
    ctx.writes.new_papers.append(
        {
            **_columns(merged.record),
            "record": merged.text,
            "record_hash": merged.hash,
            "needs_classification": True,
            "first_seen_at": now,
            "updated_at": now,
        }
    )
    ctx.writes.new_paper_sources.append(
        [
            {"source": k[0], "source_key": k[1], "record": b.texts[i], "record_hash": b.hashes[i]}
            for i, k in zip(idx, keys, strict=True)
        ]
    )
    ctx.writes.new_paper_notices.append(_notice_rows(merged.record, now))


def _plan_sources(
    ctx: _Planning,
    idx: list[int],
    keys: list[tuple[str, str]],
    existing: dict[tuple[str, str], _StoredSource],
    survivor_id: int,
) -> None:
    """Each record's source row: inserted, rewritten (moved to the survivor), or only touched."""
    b, w = ctx.batch, ctx.writes
    for i, k in zip(idx, keys, strict=True):
        srow = existing.get(k)
        if srow is None:
            w.source_inserts.append(
                {
                    "paper_id": survivor_id,
                    "source": k[0],
                    "source_key": k[1],
                    "record": b.texts[i],
                    "record_hash": b.hashes[i],
                }
            )
        elif not _same_record(srow.record_hash, srow.paper, b.recs[i], b.hashes[i]):
            upd = {"id": srow.id, "record": b.texts[i], "record_hash": b.hashes[i], "last_seen_at": ctx.now}
            if srow.paper_id != survivor_id:
                upd["paper_id"] = survivor_id
            w.source_updates.append(upd)
        else:
            w.source_touches.append(srow.id)


def _plan_survivor(ctx: _Planning, survivor: Any, losers: list[Any], merged: _Merged) -> None:
    """The surviving paper's row: the merged record if anything changed, the others merged in."""
    w, stats, now = ctx.writes, ctx.stats, ctx.now
    cols = _columns(merged.record)
    stored_cols = {k: getattr(survivor, k) for k in cols}

    def stored_record() -> Any:
        return ctx.conn.execute(
            sa.select(store.papers.c.record).where(store.papers.c.id == survivor.id)
        ).scalar()

    changed = (
        bool(losers)
        or stored_cols != cols
        or not _same_record(survivor.record_hash, stored_record, merged.record, merged.hash)
    )
    if losers:
        w.merges.append((survivor.id, [r.id for r in losers]))
        stats.merged += len(losers)
        stats.merged_ids.extend(r.id for r in losers)
    w.notices.extend({**n, "paper_id": survivor.id} for n in _notice_rows(merged.record, now))
    if not changed:
        stats.unchanged += 1
        stats.unchanged_ids.append(survivor.id)
        return
    # Only the columns that change: fewer index entries to rewrite.
    upd = {"id": survivor.id}
    upd.update((k, v) for k, v in cols.items() if stored_cols[k] != v)
    upd.update(record=merged.text, record_hash=merged.hash, updated_at=now)
    if not survivor.needs_classification:
        upd["needs_classification"] = True
    first_seen = min(r.first_seen_at for r in [survivor, *losers])
    if first_seen != survivor.first_seen_at:
        upd["first_seen_at"] = first_seen
    w.paper_updates.append(upd)
    stats.updated += 1
    stats.updated_ids.append(survivor.id)
