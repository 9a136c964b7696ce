"""One paper, one record: match records from every source to stored papers and merge them.

`upsert_papers` is the only writer of `papers` and `paper_sources`. A record is matched to a
stored paper by, in order of strength, its own earlier arrival (same source and source key), its
normalised DOI, its PMID, and last its title key (normalised title + year, with the journal as
a tie-break). Every source's latest record is kept in `paper_sources`; the paper's record is
`merge_records` over all of them. Rules and reasons: docs/dedupe.md.

Concurrency: each batch runs in one transaction. SQLite serialises writers (BEGIN IMMEDIATE);
on PostgreSQL matched papers are locked FOR UPDATE in id order, and a concurrent writer that
inserted the same DOI/PMID/source key first makes our INSERT fail on the unique constraint, so
the batch is rolled back and redone, and on the second pass it finds and merges into that row.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import hashlib
import io
import itertools
import json
import multiprocessing
import random
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from lupus_alerts import store
from lupus_alerts.doi import normalize_doi
from lupus_alerts.models import Author, Notice, Paper
from lupus_alerts.text import journals_compatible, normalize_title

PUBMED = "pubmed"
BATCH_SIZE = 500  # records per transaction; measured best of 250/500/1000 with two writers (docs/dedupe.md)
MAX_ATTEMPTS = 12
# Notices that say something happened *to this paper*; the reverse links (retraction_of, ...)
# belong to the notice's own record and are not updates of the paper that carries them.
UPDATE_KINDS = ("retraction_in", "erratum_in", "expression_of_concern_in", "update_in")
# Titles shorter than this (normalised) are too generic to merge on ("Erratum", "Reply").
MIN_TITLE_CHARS = 20
MIN_TITLE_WORDS = 3
# PostgreSQL SQLSTATEs that mean "someone else got there first, try again".
_RETRY_SQLSTATES = {"40001", "40P01"}
_DOI_MAX = store.papers.c.doi.type.length or 512
_PMID_MAX = store.papers.c.pmid.type.length or 16
_IN_CHUNK = 900  # stays under SQLite's bound-parameter limit with room to spare
_LIST_CHUNK = 5000  # values per _one_of list (a single parameter, so no such limit)
_WORKERS = 2  # processes writing batches at once on PostgreSQL (_upsert_in_workers)
_IGNORED_IN_COMPARISON = ("fetched_at", "classification")


class MergeError(Exception):
    """The batch could not be written after repeated conflicts with concurrent writers."""


class _Retry(Exception):
    """A row we matched changed under us (merged away by a concurrent writer): redo the batch."""


@dataclass(slots=True)
class UpsertStats:
    """What one `upsert_papers` call did, in paper counts and ids.

    `merged` counts stored papers that were joined into another paper (their ids are in
    `merged_ids`, the paper they joined is in `updated_ids`).
    """

    new: int = 0
    updated: int = 0
    unchanged: int = 0
    merged: int = 0
    sources_new: int = 0
    sources_updated: int = 0
    notices_new: int = 0
    attempts: int = 0
    new_ids: list[int] = field(default_factory=list)
    updated_ids: list[int] = field(default_factory=list)
    unchanged_ids: list[int] = field(default_factory=list)
    merged_ids: list[int] = field(default_factory=list)

    def add(self, other: UpsertStats) -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


# -- keys ---------------------------------------------------------------------------------


def _key_of(norm: str, year: int | None) -> str:
    return hashlib.sha256(f"{norm}|{year or ''}".encode()).hexdigest()


def title_key(title: str, journal: str | None = None, year: int | None = None) -> str:
    """A 64-character hex key of the normalised title and the year.

    The journal is deliberately not hashed: a feed says "Arthritis & Rheumatology", PubMed says
    "Arthritis & rheumatology (Hoboken, N.J.)" or "Arthritis Rheumatol", so any normalisation
    strict enough to hash would miss matches. `upsert_papers` instead compares journal names
    when it checks a title match (`journals_compatible`). The parameter stays so every caller
    passes what identifies a paper. Callers look up year-1 and year+1 too, because a paper
    online in December and in an issue in January has different years in different sources.
    """
    del journal  # compared at match time, see docstring
    return _key_of(normalize_title(title), year)


@functools.lru_cache(maxsize=16384)  # each title is keyed when matched and again when stored
def _usable_norm(title: str) -> str | None:
    """The normalised title if it is specific enough to merge on, else None."""
    norm = normalize_title(title)
    if len(norm) >= MIN_TITLE_CHARS and len(title.split()) >= MIN_TITLE_WORDS:
        return norm
    return None


def _year(p: Paper) -> int | None:
    d = p.first_date
    return d.year if d else None


def _title_keys(p: Paper) -> list[str]:
    """The record's title key and its neighbouring years' keys (empty if the title is generic)."""
    norm = _usable_norm(p.title)
    if norm is None:
        return []
    y = _year(p)
    if y is None:
        return [_key_of(norm, None)]
    return [_key_of(norm, yy) for yy in (y, y - 1, y + 1)]


def _stored_title_key(p: Paper) -> str | None:
    norm = _usable_norm(p.title)
    return _key_of(norm, _year(p)) if norm is not None else None


# -- merging records ----------------------------------------------------------------------


def _precedence(p: Paper) -> tuple[Any, ...]:
    # PubMed first (curated: MeSH, types, full author list), then feeds by name; within one
    # source the most recently fetched record first. Input order never matters.
    fetched = p.fetched_at.timestamp() if p.fetched_at else 0.0
    return (p.source != PUBMED, p.source, p.source_key, -fetched)


def _first(records: Sequence[Paper], attr: str) -> Any:
    for r in records:
        v = getattr(r, attr)
        if v:
            return v
    return getattr(records[0], attr)


def _union(records: Sequence[Paper], attr: str, key: Any = None) -> list[Any]:
    out: list[Any] = []
    seen: set[Any] = set()
    for r in records:
        for v in getattr(r, attr):
            k = key(v) if key else v
            if k not in seen:
                seen.add(k)
                out.append(v)
    return out


def _notice_key(n: Notice) -> str:
    return (normalize_doi(n.doi) or n.pmid or (n.ref_source or "").strip() or "?")[:512]


def merge_records(records: Sequence[Paper]) -> Paper:
    """The one record of a paper built from every source's record. Pure and order-independent.

    Precedence (docs/dedupe.md): PubMed's value for every bibliographic field it has (title,
    authors, journal, MeSH, publication types, PMID/PMCID, language), else the first feed's
    (by feed id) that has one; the longest abstract (with its sections); the earliest dates;
    DOI from PubMed else any source; the publisher's link from a feed else any; the union of
    keywords, ISSNs and notices; retracted if any source says so.
    """
    if not records:
        raise ValueError("merge_records needs at least one record")
    recs = sorted(records, key=_precedence)
    primary = recs[0]
    # max() keeps the first of equal lengths, so PubMed wins ties.
    with_abstract = max(recs, key=lambda r: len(r.abstract.strip()))
    feeds_first = sorted(recs, key=lambda r: (r.source == PUBMED, r.source, r.source_key))
    notices = sorted(
        _union(recs, "notices", key=lambda n: (n.kind, _notice_key(n))),
        key=lambda n: (n.kind, _notice_key(n)),
    )
    dated = [r for r in recs if r.pub_date is not None]
    earliest_pub = min(dated, key=lambda r: r.pub_date or date.max) if dated else None
    epubs = [r.epub_date for r in recs if r.epub_date]
    fetched = [r.fetched_at for r in recs if r.fetched_at]
    dois = [d for d in (normalize_doi(r.doi) for r in recs) if d]
    authors: list[Author] = next((r.authors for r in recs if r.authors), [])
    return Paper(
        source=primary.source,
        source_key=primary.source_key,
        title=_first(recs, "title"),
        doi=dois[0] if dois else None,
        pmid=_first(recs, "pmid"),
        pmcid=_first(recs, "pmcid"),
        abstract=with_abstract.abstract,
        abstract_sections=list(with_abstract.abstract_sections),
        authors=list(authors),
        journal=_first(recs, "journal"),
        journal_iso=_first(recs, "journal_iso"),
        issns=_union(recs, "issns"),
        pub_date=earliest_pub.pub_date if earliest_pub else None,
        pub_date_text=earliest_pub.pub_date_text if earliest_pub else _first(recs, "pub_date_text"),
        epub_date=min(epubs) if epubs else None,
        publication_types=list(_first(recs, "publication_types")),
        mesh=list(_first(recs, "mesh")),
        keywords=_union(recs, "keywords", key=str.casefold),
        language=_first(recs, "language"),
        url=_first(feeds_first, "url"),
        notices=notices,
        is_retracted=any(r.is_retracted for r in recs) or any(n.kind == "retraction_in" for n in notices),
        fetched_at=max(fetched) if fetched else None,
        classification=None,
    )


def _merges_to_itself(p: Paper) -> bool:
    """Whether merge_records([p]) == p: nothing for the merge to sort, deduplicate or derive."""
    return (
        p.classification is None
        and len(p.notices) <= 1
        and (p.is_retracted or not any(n.kind == "retraction_in" for n in p.notices))
        and len({k.casefold() for k in p.keywords}) == len(p.keywords)
        and len(set(p.issns)) == len(p.issns)
        and p.doi == normalize_doi(p.doi)
    )


# -- upsert -------------------------------------------------------------------------------


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
    return _upsert_in_workers(engine, every, when)


def _upsert_in_workers(engine: Engine, batches: Iterable[list[Paper]], when: datetime) -> UpsertStats:
    """Run the batches in `_WORKERS` forked processes, each on its own connection.

    Planning a batch is Python work (matching, merging, encoding) about equal to the server's
    work on it. Threads would take turns on the GIL, so a thread whose statement came back
    waits for the other thread's planning while its connection idles; separate processes plan
    and wait independently, which keeps both cores busy (docs/dedupe.md, "Performance").
    Batches meet as any two concurrent writers do (module docstring): locks, then a retry.
    A batch is sent as its JSON (msgspec, the store's own encoding of a Paper).
    """
    total = UpsertStats()
    try:
        with ProcessPoolExecutor(
            max_workers=_WORKERS, mp_context=_FORK, initializer=_worker_start, initargs=(engine,)
        ) as pool:
            # never more in flight than workers, so the input is read as the work goes
            in_flight: deque[Future[UpsertStats]] = deque()
            for batch in batches:
                if len(in_flight) == _WORKERS:
                    total.add(in_flight.popleft().result())
                in_flight.append(pool.submit(_worker_batch, _batch_payload(batch), when))
            while in_flight:
                total.add(in_flight.popleft().result())
    except BrokenProcessPool as e:
        # Killed (out of memory, say): the batches it committed stay, the rest can be redone.
        raise MergeError(f"an upsert worker process died: {e}; rerun the upsert to finish") from e
    return total


_FORK = multiprocessing.get_context("fork") if "fork" in multiprocessing.get_all_start_methods() else None
_worker_engine: Engine | None = None
_BATCH_DECODER = msgspec.json.Decoder(list[Paper])


def _worker_start(engine: Engine) -> None:
    """In a fresh worker: give the engine a pool of its own.

    The caller's pooled connections came with the fork. `close=False` forgets them without
    closing them: closing one here would end the caller's session on the server. Every object
    the caller had also came with it; frozen, the garbage collector never walks them here, which
    would copy nearly every page of the caller's heap into this process (copy-on-write).
    """
    global _worker_engine
    gc.freeze()
    engine.dispose(close=False)
    _worker_engine = engine


def _batch_payload(batch: list[Paper]) -> bytes | list[Paper]:
    try:
        return _JSON_ENCODER.encode(batch)
    except UnicodeEncodeError:
        return batch  # a lone surrogate (encode_paper replaces it): pickled instead


def _worker_batch(payload: bytes | list[Paper], when: datetime) -> UpsertStats:
    assert _worker_engine is not None, "worker started without an engine"
    batch = _BATCH_DECODER.decode(payload) if isinstance(payload, bytes) else payload
    return _upsert_with_retries(_worker_engine.begin, batch, when)


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


class _Checkpointer:
    """Copies the WAL back into an SQLite database in a helper thread while batches commit.

    A checkpoint writes every page the WAL holds back into the database file and fsyncs it:
    about a fifth of an upsert's time when the committing connection does it (its automatic
    checkpoint). SQLite runs a PASSIVE checkpoint beside a writer, and Python's sqlite3
    releases the GIL while SQLite works, so on a second connection it uses a second core.
    The writer's automatic checkpoint is off while this runs and restored after; leaving
    waits for the checkpoint in progress, so no work is left over for later.
    """

    def __init__(self, engine: Engine, writer: Connection) -> None:
        self._engine = engine
        self._writer = writer.connection.dbapi_connection
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-checkpoint")
        self._running: Future[None] | None = None
        self._commits = 0  # batches committed, and how many of them the last checkpoint covers
        self._covered = 0
        # An in-memory database has no WAL, and another thread's connection is another database.
        name = engine.url.database or ""
        self._active = bool(name) and name != ":memory:" and "mode=memory" not in name

    def __enter__(self) -> _Checkpointer:
        if self._active:
            self._writer.execute("PRAGMA wal_autocheckpoint=0")  # type: ignore[union-attr]
        return self

    def kick(self) -> None:
        """After a commit: start a checkpoint unless one is still running."""
        if not self._active:
            return
        self._commits += 1
        if self._running is not None:
            if not self._running.done():
                return
            self._running.result()  # a failed checkpoint is an error like any other
        self._covered = self._commits
        self._running = self._pool.submit(self._checkpoint)

    def _checkpoint(self) -> None:
        with self._engine.connect() as conn:
            # on the DB-API connection: through SQLAlchemy this would begin a transaction
            conn.connection.dbapi_connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()  # type: ignore[union-attr]

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:  # else the batch's error is the one to see
                if self._running is not None:
                    self._running.result()
                if self._commits > self._covered:
                    # batches committed while the last checkpoint ran: copy them back too
                    self._pool.submit(self._checkpoint).result()
        finally:
            self._pool.shutdown(wait=True)
            if self._active:
                self._writer.execute(f"PRAGMA wal_autocheckpoint={store.SQLITE_WAL_AUTOCHECKPOINT}")  # type: ignore[union-attr]


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


def _prepare(batch: Sequence[Paper]) -> list[Paper]:
    """Normalised copies, one per (source, source_key): a later record in the batch wins."""
    out: dict[tuple[str, str], Paper] = {}
    for p in batch:
        pmid = (p.pmid or "").strip() or None
        if pmid is not None and not (pmid.isdigit() and len(pmid) <= _PMID_MAX):
            pmid = None  # not a PMID; keeping it would break the batch on PostgreSQL's column limit
        doi = normalize_doi(p.doi)
        if doi is not None and len(doi) > _DOI_MAX:
            doi = None
        if doi != p.doi or pmid != p.pmid or p.classification is not None:
            p = dataclasses.replace(p, doi=doi, pmid=pmid, classification=None)
        out[(p.source, p.source_key)] = p
    return list(out.values())


@dataclass
class _Encoded:
    """A batch's normalised records with their stored forms (JSON text, hash)."""

    recs: list[Paper]
    texts: list[str]
    hashes: list[str]


def _encode_batch(batch: Sequence[Paper]) -> _Encoded:
    recs = _prepare(batch)
    texts, hashes = [], []
    for r in recs:
        text, digest = encode_paper(r)
        texts.append(text)
        hashes.append(digest)
    return _Encoded(recs, texts, hashes)


def _comparable(record: dict[str, Any]) -> dict[str, Any]:
    out = dict(record)
    for k in _IGNORED_IN_COMPARISON:
        out.pop(k, None)
    return out


# msgspec writes a dataclass as JSON directly, dates in ISO form, keys sorted: the same object
# as Paper.to_dict() (tested), an order of magnitude faster than building the dict and
# json-encoding it, and every record of every batch is encoded.
_JSON_ENCODER = msgspec.json.Encoder(order="sorted")
_PAPER_DECODER = msgspec.json.Decoder(Paper)
_SURROGATE = re.compile("[\ud800-\udfff]")


def encode_paper(p: Paper) -> tuple[str, str]:
    """A record as the store keeps it: (its paper-schema JSON text, its content hash).

    The hash (32 hex chars) covers every field but `fetched_at` and `classification`, the ones
    "changed" ignores, so a stored hash equal to an incoming record's means the record is
    unchanged, without reading or decoding the stored JSON. Keys are sorted and lists kept in
    order, so equal records give equal text. Non-ASCII text is stored as UTF-8.
    """
    try:
        body = _JSON_ENCODER.encode(p)
    except UnicodeEncodeError:
        # A lone surrogate (not Unicode, so not UTF-8: a hand-written JSON "\ud800", say) is
        # stored as U+FFFD, what any decoder would show for it.
        p = _PAPER_DECODER.decode(_SURROGATE.sub("\ufffd", json.dumps(p.to_dict(), ensure_ascii=False)))
        body = _JSON_ENCODER.encode(p)
    hashed = body
    if any(getattr(p, k) is not None for k in _IGNORED_IN_COMPARISON):
        hashed = _JSON_ENCODER.encode(dataclasses.replace(p, **dict.fromkeys(_IGNORED_IN_COMPARISON)))
    return body.decode(), hashlib.blake2b(hashed, digest_size=16).hexdigest()


def decode_paper(stored: str | bytes | dict[str, Any]) -> Paper:
    """A stored record (JSON text, or a dict a driver already decoded) as a Paper.

    Records this module wrote decode straight into the dataclass; anything else (a row written
    by hand or by an older version) goes through the lenient `Paper.from_dict`.
    """
    if isinstance(stored, dict):
        return Paper.from_dict(stored)
    try:
        return _PAPER_DECODER.decode(stored)
    except msgspec.ValidationError:
        return Paper.from_dict(json.loads(stored))


def _same_record(stored_hash: str | None, stored: Any, incoming: Paper, incoming_hash: str) -> bool:
    """Whether a stored record equals an incoming one (ignoring fetch time and classification).

    Both hashes come from `encode_paper`, whose text is equal exactly when the records are, so
    the hashes decide; a row written without a hash (by hand, or by an older version) is
    compared field by field. `stored` is the stored record (a Paper, JSON text or a dict), or a
    callable that loads it, so it is only read when needed.
    """
    if stored_hash is not None:
        return stored_hash == incoming_hash
    record = stored() if callable(stored) else stored
    if not isinstance(record, Paper):
        record = decode_paper(record)
    return _comparable(record.to_dict()) == _comparable(incoming.to_dict())


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


@dataclass
class _Batch:
    """The batch's records with their stored forms, computed once."""

    recs: list[Paper]
    texts: list[str]
    hashes: list[str]
    # per record: the stored source row with its (source, source_key), and whether it is unchanged
    src_rows: dict[tuple[str, str], Any]
    same: list[bool]


def _upsert_batch(conn: Connection, enc: _Encoded, now: datetime) -> UpsertStats:
    P, S = store.papers, store.paper_sources
    uf = _UnionFind()
    recs, texts, hashes = enc.recs, enc.texts, enc.hashes

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

    # 2. Lock and load the matched papers, their sources, and any paper holding a DOI or PMID
    #    those sources mention (so the merged row can take it without a unique violation).
    #    Papers whose every record arrived unchanged are left alone (the fast path below).
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

    # 3. Per group: merge, decide what changed, and collect the writes.
    groups: dict[Any, tuple[list[int], list[int]]] = {}
    for node in list(uf.parent):
        rec_idx, pids = groups.setdefault(uf.find(node), ([], []))
        (rec_idx if node[0] == "r" else pids).append(node[1])

    batch = _Batch(recs, texts, hashes, src_rows, same)
    stats = UpsertStats()
    w = _Writes()
    for rec_idx, pids in groups.values():
        _plan_group(conn, batch, sorted(rec_idx), sorted(pids), papers_by_id, sources_by_paper, now, w, stats)

    _apply(conn, w, now, stats)
    return stats


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


def _plan_group(
    conn: Connection,
    b: _Batch,
    idx: list[int],
    pids: list[int],
    papers_by_id: dict[int, Any],
    sources_by_paper: dict[int, list[_StoredSource]],
    now: datetime,
    w: _Writes,
    stats: UpsertStats,
) -> None:
    keys = [(b.recs[i].source, b.recs[i].source_key) for i in idx]

    # Fast path: one stored paper and every record already stored as it is now. The common
    # case for a daily re-poll of a feed, so it must not pay for a merge.
    if len(pids) == 1:
        pid = pids[0]
        if all(b.same[i] and b.src_rows[k].paper_id == pid for i, k in zip(idx, keys, strict=True)):
            w.source_touches.extend(b.src_rows[k].id for k in keys)
            stats.unchanged += 1
            stats.unchanged_ids.append(pid)
            return

    # Everything the group's papers already had, overridden by what arrived now.
    existing: dict[tuple[str, str], _StoredSource] = {}
    for pid in pids:
        for srow in sources_by_paper.get(pid, []):
            existing[(srow.source, srow.source_key)] = srow
    if not existing and len(idx) == 1 and _merges_to_itself(b.recs[idx[0]]):
        # a brand-new paper from one record (half of every batch): skip the merge, and store the
        # record's JSON as it is for both the paper and its source
        i = idx[0]
        merged, merged_text, merged_hash = b.recs[i], b.texts[i], b.hashes[i]
    else:
        records: dict[tuple[str, str], Paper] = {k: s.paper for k, s in existing.items()}
        records.update((k, b.recs[i]) for i, k in zip(idx, keys, strict=True))
        merged = merge_records(list(records.values()))
        merged_text, merged_hash = encode_paper(merged)
    cols = _columns(merged)
    notice_rows = _notice_rows(merged, now)

    if not pids:
        w.new_papers.append(
            {
                **cols,
                "record": merged_text,
                "record_hash": merged_hash,
                "needs_classification": True,
                "first_seen_at": now,
                "updated_at": now,
            }
        )
        w.new_paper_sources.append(
            [
                {"source": k[0], "source_key": k[1], "record": b.texts[i], "record_hash": b.hashes[i]}
                for i, k in zip(idx, keys, strict=True)
            ]
        )
        w.new_paper_notices.append(notice_rows)
        return

    # The survivor keeps the earliest announcement (a paper is never announced twice), else
    # it is the oldest row.
    rows = [papers_by_id[p] for p in pids]
    announced = sorted((r for r in rows if r.announce_no is not None), key=lambda r: r.announce_no)
    survivor = announced[0] if announced else min(rows, key=lambda r: r.id)
    losers = [r.id for r in rows if r.id != survivor.id]

    for i, k in zip(idx, keys, strict=True):
        srow = existing.get(k)
        if srow is None:
            w.source_inserts.append(
                {
                    "paper_id": survivor.id,
                    "source": k[0],
                    "source_key": k[1],
                    "record": b.texts[i],
                    "record_hash": b.hashes[i],
                }
            )
        elif not _same_record(srow.record_hash, srow.paper, b.recs[i], b.hashes[i]):
            upd = {"id": srow.id, "record": b.texts[i], "record_hash": b.hashes[i], "last_seen_at": now}
            if srow.paper_id != survivor.id:
                upd["paper_id"] = survivor.id
            w.source_updates.append(upd)
        else:
            w.source_touches.append(srow.id)

    stored_cols = {k: getattr(survivor, k) for k in cols}

    def stored_record() -> Any:
        return conn.execute(sa.select(store.papers.c.record).where(store.papers.c.id == survivor.id)).scalar()

    changed = (
        bool(losers)
        or stored_cols != cols
        or not _same_record(survivor.record_hash, stored_record, merged, merged_hash)
    )
    if losers:
        w.merges.append((survivor.id, losers))
        stats.merged += len(losers)
        stats.merged_ids.extend(losers)
    w.notices.extend({**n, "paper_id": survivor.id} for n in notice_rows)
    if changed:
        # Only the columns that change: fewer index entries to rewrite.
        upd = {"id": survivor.id}
        upd.update((k, v) for k, v in cols.items() if stored_cols[k] != v)
        upd.update(record=merged_text, record_hash=merged_hash, updated_at=now)
        if not survivor.needs_classification:
            upd["needs_classification"] = True
        first_seen = min(r.first_seen_at for r in rows)
        if first_seen != survivor.first_seen_at:
            upd["first_seen_at"] = first_seen
        w.paper_updates.append(upd)
        stats.updated += 1
        stats.updated_ids.append(survivor.id)
    else:
        stats.unchanged += 1
        stats.unchanged_ids.append(survivor.id)


# -- bulk writes --------------------------------------------------------------------------
# The batch's rows go to the driver directly, with the JSON already encoded (once, by
# encode_paper) and a handful of statements per batch: through SQLAlchemy's executemany every
# row's every value passes through its type's processor, which cost more than the database's
# own work on a large batch.

_PAGE = 500  # rows per multi-row statement on PostgreSQL


def _driver_rows(
    conn: Connection, table: sa.Table, cols: Sequence[str], rows: list[dict[str, Any]]
) -> list[tuple[Any, ...]]:
    """`rows` as tuples of driver values in `cols` order (JSON columns hold encoded text)."""
    dialect = conn.dialect
    procs = []
    for n, c in enumerate(cols):
        typ = table.c[c].type
        proc = None if isinstance(typ, sa.JSON) else typ.dialect_impl(dialect).bind_processor(dialect)
        if proc is not None:
            procs.append((n, proc))
    # Most timestamps of a batch are one value (its `now`): convert each distinct value once.
    memo: dict[tuple[int, datetime], Any] = {}
    out = []
    for r in rows:
        vals = [r[c] for c in cols]
        for n, proc in procs:
            v = vals[n]
            if v is None:
                continue
            if type(v) is datetime:
                got = memo.get((n, v))
                if got is None:
                    got = memo[(n, v)] = proc(v)
                vals[n] = got
            else:
                vals[n] = proc(v)
        out.append(tuple(vals))
    return out


def _pg_placeholders(conn: Connection, table: sa.Table, cols: Sequence[str]) -> tuple[str, str]:
    """A typed VALUES row ("(CAST(%s AS BIGINT), ...)") and an untyped one ("(%s, ...)").

    One typed row types the whole VALUES list (PostgreSQL resolves each column to a common type),
    so the encoded JSON text lands in its JSON column and NULL-only columns are not taken for text.
    """
    typed = ", ".join(f"CAST(%s AS {table.c[c].type.compile(dialect=conn.dialect)})" for c in cols)
    return f"({typed})", "(" + ", ".join(["%s"] * len(cols)) + ")"


def _insert_rows(conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """INSERT rows (dicts with the same keys) in as few statements as the driver allows."""
    if not rows:
        return
    cols = list(rows[0])
    values = _driver_rows(conn, table, cols, rows)
    head = f"INSERT INTO {table.name} ({', '.join(cols)}) VALUES "
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(head + "(" + ", ".join(["?"] * len(cols)) + ")", values)
        return
    if conn.dialect.driver == "psycopg2":
        _copy_rows(conn, table, cols, values)
        return
    typed, plain = _pg_placeholders(conn, table, cols)
    for start in range(0, len(values), _PAGE):
        page = values[start : start + _PAGE]
        sql = head + ", ".join([typed] + [plain] * (len(page) - 1))
        conn.exec_driver_sql(sql, tuple(v for row in page for v in row))


def _copy_field(v: Any) -> str:
    """One value in PostgreSQL's COPY text format."""
    if v is None:
        return "\\N"
    if v is True or v is False:
        return "t" if v else "f"
    text = v if type(v) is str else str(v)  # dates and naive timestamps print in ISO form
    # str.replace per special character, each only when present: an order of magnitude faster
    # than str.translate on a record's JSON (memchr-speed scans, no per-character mapping).
    # The backslash first, so the escapes added after it are not doubled.
    if "\\" in text:
        text = text.replace("\\", "\\\\")
    if "\t" in text:
        text = text.replace("\t", "\\t")
    if "\n" in text:
        text = text.replace("\n", "\\n")
    if "\r" in text:
        text = text.replace("\r", "\\r")
    return text


def _copy_rows(conn: Connection, table: sa.Table, cols: Sequence[str], values: list[tuple[Any, ...]]) -> None:
    """COPY rows into a table on this connection's transaction (psycopg2).

    PostgreSQL parses and plans a multi-row INSERT's every value expression; COPY only reads
    the values, which halves the server's time for a batch of new rows. Constraints, indexes and
    locks are exactly an INSERT's, so a unique violation is raised (as SQLAlchemy's
    IntegrityError) and the batch is redone as for any other statement.
    """
    data = "".join("\t".join([_copy_field(v) for v in row]) + "\n" for row in values)
    sql = f"COPY {table.name} ({', '.join(cols)}) FROM STDIN"
    cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cur.copy_expert(sql, io.StringIO(data))
    except conn.dialect.loaded_dbapi.Error as e:
        raise DBAPIError.instance(sql, None, e, conn.dialect.loaded_dbapi.Error) from e
    finally:
        cur.close()


def _update_rows(conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """UPDATE rows by "id", each dict holding the columns to set (grouped by column set)."""
    by_cols: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for r in rows:
        by_cols.setdefault(tuple(k for k in r if k != "id"), []).append(r)
    for cols, group in by_cols.items():
        if conn.dialect.name == "sqlite":
            values = _driver_rows(conn, table, [*cols, "id"], group)
            sets = ", ".join(f"{c} = ?" for c in cols)
            conn.exec_driver_sql(f"UPDATE {table.name} SET {sets} WHERE id = ?", values)
            continue
        # psycopg2 runs an executemany UPDATE as one round trip per row; a join with a
        # multi-row VALUES list updates a page of rows per statement.
        allc = ["id", *cols]
        values = _driver_rows(conn, table, allc, group)
        typed, plain = _pg_placeholders(conn, table, allc)
        sets = ", ".join(f"{c} = v.{c}" for c in cols)
        for start in range(0, len(values), _PAGE):
            page = values[start : start + _PAGE]
            sql = (
                f"UPDATE {table.name} AS t SET {sets} FROM (VALUES "
                + ", ".join([typed] + [plain] * (len(page) - 1))
                + f") AS v ({', '.join(allc)}) WHERE t.id = v.id"
            )
            conn.exec_driver_sql(sql, tuple(v for row in page for v in row))


def _new_paper_ids(conn: Connection, n: int) -> list[int]:
    """Ids for n new papers, ascending (the announcement order's tie-break follows them)."""
    P = store.papers
    if conn.dialect.name == "sqlite":
        # We hold the database's write lock (BEGIN IMMEDIATE), so nobody else takes these.
        top = int(conn.execute(sa.select(sa.func.max(P.c.id))).scalar() or 0)
        return list(range(top + 1, top + 1 + n))
    q = sa.select(sa.func.nextval(sa.func.pg_get_serial_sequence("papers", "id"))).select_from(
        sa.func.generate_series(1, n)
    )
    return sorted(int(v) for v in conn.execute(q).scalars())


def _insert_ignore(conn: Connection, table: sa.Table) -> Any:
    """INSERT .. ON CONFLICT DO NOTHING in the connection's dialect."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


def _apply(conn: Connection, w: _Writes, now: datetime, stats: UpsertStats) -> None:
    P, S, T, U = store.papers, store.paper_sources, store.paper_topics, store.paper_updates

    # Joined papers first, so the survivor can take over their DOI/PMID without a conflict.
    for survivor, losers in w.merges:
        conn.execute(sa.update(S).where(S.c.paper_id.in_(losers)).values(paper_id=survivor))
        have = set(conn.execute(sa.select(T.c.label).where(T.c.paper_id == survivor)).scalars())
        for pid, label in conn.execute(
            sa.select(T.c.paper_id, T.c.label).where(T.c.paper_id.in_(losers))
        ).all():
            if label in have:
                conn.execute(sa.delete(T).where(T.c.paper_id == pid, T.c.label == label))
            else:
                conn.execute(
                    sa.update(T).where(T.c.paper_id == pid, T.c.label == label).values(paper_id=survivor)
                )
                have.add(label)
        kept = {
            (r.kind, r.notice_key): r
            for r in conn.execute(
                sa.select(U.c.id, U.c.kind, U.c.notice_key, U.c.update_no).where(U.c.paper_id == survivor)
            )
        }
        for r in conn.execute(
            sa.select(U.c.id, U.c.kind, U.c.notice_key, U.c.update_no).where(U.c.paper_id.in_(losers))
        ).all():
            mine = kept.get((r.kind, r.notice_key))
            if mine is None:
                conn.execute(sa.update(U).where(U.c.id == r.id).values(paper_id=survivor))
                kept[(r.kind, r.notice_key)] = r
                continue
            conn.execute(sa.delete(U).where(U.c.id == r.id))
            if mine.update_no is None and r.update_no is not None:
                # the loser's update was already flagged: keep its number, never flag it twice
                conn.execute(sa.update(U).where(U.c.id == mine.id).values(update_no=r.update_no))
        conn.execute(sa.delete(P).where(P.c.id.in_(losers)))

    if w.new_papers:
        ids = _new_paper_ids(conn, len(w.new_papers))
        _insert_rows(conn, P, [{"id": i, **r} for i, r in zip(ids, w.new_papers, strict=True)])
        for pid, sources, notices in zip(ids, w.new_paper_sources, w.new_paper_notices, strict=True):
            stats.new += 1
            stats.new_ids.append(pid)
            w.source_inserts.extend({**s, "paper_id": pid} for s in sources)
            w.notices.extend({**n, "paper_id": pid} for n in notices)

    if w.paper_updates:
        _update_rows(conn, P, w.paper_updates)
    if w.source_inserts:
        _insert_rows(conn, S, [{**s, "first_seen_at": now, "last_seen_at": now} for s in w.source_inserts])
        stats.sources_new += len(w.source_inserts)
    if w.source_updates:
        _update_rows(conn, S, w.source_updates)
        stats.sources_updated += len(w.source_updates)
    for chunk in _in_chunks(w.source_touches, _LIST_CHUNK):
        conn.execute(sa.update(S).where(_one_of(conn, S.c.id, chunk)).values(last_seen_at=now))
    if w.notices:
        # Only rows actually inserted come back, so this counts notices new to the store.
        inserted = conn.execute(_insert_ignore(conn, U).returning(U.c.id), w.notices).all()
        stats.notices_new += len(inserted)
