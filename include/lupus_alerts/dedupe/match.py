"""Matching a batch to stored papers: by source key, DOI, PMID and title key (union-find over
the records and the papers they meet), and loading the matched papers under lock."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from lupus_alerts import store
from lupus_alerts.dedupe.codec import decode_paper
from lupus_alerts.dedupe.keys import _title_keys
from lupus_alerts.dedupe.plan import _StoredSource
from lupus_alerts.dedupe.stats import _Retry
from lupus_alerts.models import Paper
from lupus_alerts.text import journals_compatible

_IN_CHUNK = 900  # stays under SQLite's bound-parameter limit with room to spare


_LIST_CHUNK = 5000  # values per _one_of list (a single parameter, so no such limit)


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[Any, Any] = {}

    def find(self, x: Any) -> Any:
        self.parent.setdefault(x, x)
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:  # path compression
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: Any, b: Any) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra


def _in_chunks(values: Iterable[Any], size: int = _IN_CHUNK) -> Iterator[list[Any]]:
    vals = sorted(set(values), key=str)
    for i in range(0, len(vals), size):
        yield vals[i : i + size]


def _one_of(conn: Connection, column: Any, values: list[Any]) -> Any:
    """`column IN (values)` with the list bound as ONE parameter (a PostgreSQL array, a JSON
    array expanded by SQLite's json_each), so the statement compiles once and is cached:
    an IN list of a thousand parameters is re-rendered by SQLAlchemy on every execution."""
    if conn.dialect.name == "postgresql":
        return column == sa.any_(_pg_array(values, column.type))
    if conn.dialect.name == "sqlite":
        each = sa.func.json_each(sa.bindparam(None, json.dumps(values), type_=sa.Text)).table_valued("value")
        return column.in_(sa.select(each.c.value))
    return column.in_(values)


def _pg_array(values: list[Any], item_type: Any) -> Any:
    """A PostgreSQL array parameter sent as one array literal ('{"a","b"}'::text[]): psycopg2
    would spell a list as ARRAY['a', 'b'], thousands of constants for the server to parse."""
    items = ",".join('"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
    return sa.cast(sa.bindparam(None, "{" + items + "}", type_=sa.Text), postgresql.ARRAY(item_type))


def _source_rows(conn: Connection, keys: list[tuple[str, str]]) -> dict[tuple[str, str], Any]:
    """The stored paper_sources rows (without their records) for (source, source_key) pairs,
    in one statement per chunk: the pairs go in as two arrays (PostgreSQL) or one JSON array
    (SQLite) joined against the unique index, not one IN query per source."""
    S = store.paper_sources
    cols = (S.c.id, S.c.paper_id, S.c.source, S.c.source_key, S.c.record_hash)
    out: dict[tuple[str, str], Any] = {}
    for chunk in _in_chunks(keys, _LIST_CHUNK):
        if conn.dialect.name == "postgresql":
            pairs = (
                sa.func.unnest(
                    _pg_array([k[0] for k in chunk], sa.Text()), _pg_array([k[1] for k in chunk], sa.Text())
                )
                .table_valued("source", "source_key")
                .render_derived()
            )
            on = sa.and_(S.c.source == pairs.c.source, S.c.source_key == pairs.c.source_key)
        elif conn.dialect.name == "sqlite":
            pairs = sa.func.json_each(sa.bindparam(None, json.dumps(chunk), type_=sa.Text)).table_valued(
                "value"
            )
            on = sa.and_(
                S.c.source == sa.func.json_extract(pairs.c.value, "$[0]"),
                S.c.source_key == sa.func.json_extract(pairs.c.value, "$[1]"),
            )
        else:
            pairs, on = None, sa.tuple_(S.c.source, S.c.source_key).in_(chunk)
        q = (
            sa.select(*cols).select_from(pairs.join(S, on))
            if pairs is not None
            else sa.select(*cols).where(on)
        )
        for row in conn.execute(q):
            out[(row.source, row.source_key)] = row
    return out


def _lookup(conn: Connection, column: sa.Column, values: Iterable[Any]) -> dict[Any, int]:
    out: dict[Any, int] = {}
    for chunk in _in_chunks((v for v in values if v), _LIST_CHUNK):
        for value, pid in conn.execute(
            sa.select(column, store.papers.c.id).where(_one_of(conn, column, chunk))
        ):
            out[value] = pid
    return out


def _untouched_papers(uf: _UnionFind, same: list[bool]) -> set[int]:
    """Papers alone in their group whose every batch record is already stored unchanged."""
    groups: dict[Any, list[Any]] = {}
    for node in list(uf.parent):
        groups.setdefault(uf.find(node), []).append(node)
    out: set[int] = set()
    for nodes in groups.values():
        pids = [n[1] for n in nodes if n[0] == "p"]
        if len(pids) == 1 and all(same[n[1]] for n in nodes if n[0] == "r"):
            out.add(pids[0])
    return out


_SQLITE_DOI_LESS_TITLES = (
    "SELECT id, doi, pmid, journal, title_key, json_extract(record, '$.journal_iso') AS iso"
    " FROM papers INDEXED BY ix_papers_title_key_doi_less"
    " WHERE doi IS NULL AND title_key IN (SELECT value FROM json_each(?))"
)


def _link_by_title(conn: Connection, recs: list[Paper], uf: _UnionFind, *, skip: list[bool]) -> None:
    """Join records to stored papers (and to each other) with the same title key, when nothing
    contradicts it: no different DOI or PMID, and compatible journal names."""
    P = store.papers
    keys_of = {i: ([] if skip[i] else _title_keys(r)) for i, r in enumerate(recs)}
    # A record with a DOI that found no paper by it can only be a paper stored without a DOI
    # (one with another DOI contradicts it), so its keys are looked up among those alone, in a
    # partial index holding just them; a record without a DOI may be any paper.
    any_paper = {k for i, ks in keys_of.items() if not recs[i].doi for k in ks}
    doi_less_only = {k for i, ks in keys_of.items() if recs[i].doi for k in ks} - any_paper
    if not any_paper and not doi_less_only:
        return
    q = sa.select(
        P.c.id,
        P.c.doi,
        P.c.pmid,
        P.c.journal,
        P.c.title_key,
        P.c.record["journal_iso"].as_string().label("iso"),
    )
    candidates: dict[str, list[Any]] = {}
    for keys, only_doi_less in ((any_paper, False), (doi_less_only, True)):
        for chunk in _in_chunks(keys, _LIST_CHUNK):
            if only_doi_less and conn.dialect.name == "sqlite":
                # Without statistics SQLite's planner takes "doi IS NULL" to the unique DOI
                # index and walks every DOI-less paper; name the partial index instead.
                rows = conn.exec_driver_sql(_SQLITE_DOI_LESS_TITLES, (json.dumps(chunk),))
            else:
                where = _one_of(conn, P.c.title_key, chunk)
                rows = conn.execute(q.where(sa.and_(store.DOI_LESS, where) if only_doi_less else where))
            for row in rows:
                candidates.setdefault(row.title_key, []).append(row)
    own_key: dict[str, list[int]] = {}
    for i in range(len(recs)):
        if keys_of[i]:
            own_key.setdefault(keys_of[i][0], []).append(i)
    for i, r in enumerate(recs):
        for k in keys_of[i]:
            for row in candidates.get(k, []):
                if uf.find(("r", i)) == uf.find(("p", row.id)):
                    continue
                if _compatible(r, row.doi, row.pmid, (row.journal, row.iso)):
                    uf.union(("r", i), ("p", row.id))
            for j in own_key.get(k, []):
                o = recs[j]
                if j == i or uf.find(("r", i)) == uf.find(("r", j)):
                    continue
                if _compatible(r, o.doi, o.pmid, (o.journal, o.journal_iso)):
                    uf.union(("r", i), ("r", j))


def _compatible(r: Paper, doi: str | None, pmid: str | None, journals: Iterable[str | None]) -> bool:
    if r.doi and doi and r.doi != doi:
        return False
    if r.pmid and pmid and r.pmid != pmid:
        return False
    return journals_compatible((r.journal, r.journal_iso), journals)


# Every column but the merged record, whose hash stands for it: loading a paper to merge into
# it does not decode its JSON.
_PAPER_COLUMNS_BUT_RECORD = [c for c in store.papers.c if c.name != "record"]


def _load_papers(
    conn: Connection,
    ids: set[int],
    papers_by_id: dict[int, Any],
    sources_by_paper: dict[int, list[_StoredSource]],
) -> None:
    P, S = store.papers, store.paper_sources
    for chunk in _in_chunks(ids, _LIST_CHUNK):
        q = (
            sa.select(*_PAPER_COLUMNS_BUT_RECORD)
            .where(_one_of(conn, P.c.id, chunk))
            .order_by(P.c.id)
            .with_for_update()
        )
        rows = conn.execute(q).all()
        if len(rows) != len(chunk):
            raise _Retry("a matched paper was merged away by a concurrent writer")
        for row in rows:
            papers_by_id[row.id] = row
        # The record as text, decoded here straight into a Paper: not through the driver's or
        # SQLAlchemy's json.loads to a dict and then Paper.from_dict, several times slower.
        text = sa.cast(S.c.record, sa.Text) if conn.dialect.name == "postgresql" else S.c.record
        q = sa.select(
            S.c.id,
            S.c.paper_id,
            S.c.source,
            S.c.source_key,
            sa.type_coerce(text, sa.Text).label("record"),
            S.c.record_hash,
        )
        for row in conn.execute(q.where(_one_of(conn, S.c.paper_id, chunk))):
            stored = _StoredSource(
                row.id, row.paper_id, row.source, row.source_key, decode_paper(row.record), row.record_hash
            )
            sources_by_paper.setdefault(row.paper_id, []).append(stored)
