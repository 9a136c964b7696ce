"""The project's own database: tables, engine, and migrations.

Separate from Airflow's metadata DB (Airflow 3 forbids tasks to use its ORM). SQLAlchemy Core
on SQLite (default) or PostgreSQL; the schema is owned by Alembic migrations in
`lupus_alerts/migrations`, so an upgrade never loses data. The tables below mirror the latest
migration and are what the code queries; `tests/unit/test_store_schema.py` checks they agree.

Tables
- papers: one row per paper after merging (the merged record as JSON plus indexed keys).
- paper_sources: each source's view of a paper (provenance; the inputs to the merge).
- paper_topics: the classifier's labels, one row per (paper, label), for selection by topic.
- paper_updates: retractions, errata and concerns found for papers already stored.
- feed_state: per-feed polling state (conditional-GET validators, last outcome).
- watermarks: named high-water marks (e.g. the end of the last PubMed window).
- counters: named monotonic counters (announcement and update numbers).
- subscribers, subscriber_topics: who gets what.
- deliveries: the delivery ledger, one row per (subscriber, digest period).
- ingest_runs: one row per pipeline run and source, what it fetched and what failed.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

# Timestamps are stored as naive UTC: SQLite has no time zones and PostgreSQL must agree.
Timestamp = sa.DateTime(timezone=False)
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
# A whole record, written and read whole: plain json on PostgreSQL (text kept as sent, no
# binary conversion either way; migration 0002), text on SQLite.
RecordJson = sa.JSON()

papers = sa.Table(
    "papers",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("doi", sa.String(512), unique=True),
    sa.Column("pmid", sa.String(16), unique=True),
    sa.Column("pmcid", sa.String(24)),
    # normalised title + journal + year: merges DOI-less feed items with their later PubMed record
    sa.Column("title_key", sa.String(64), index=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("journal", sa.String(512)),
    sa.Column("pub_date", sa.Date),
    sa.Column("record", RecordJson, nullable=False),  # the merged Paper (paper schema)
    # hash of the record's content (dedupe.encode_paper): "unchanged" without decoding the JSON
    sa.Column("record_hash", sa.String(64)),
    sa.Column("is_lupus", sa.Boolean),  # None until classified
    sa.Column("relevance_score", sa.Float),
    sa.Column("classification", Json),  # the Classification (with evidence), as JSON
    sa.Column("needs_classification", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("is_retracted", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("announce_no", sa.BigInteger, unique=True),  # None until announced
    sa.Column("announced_at", Timestamp),
    sa.Column("first_seen_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
)
# Only the papers waiting for the classifier (a few thousand at most), keyed by id for
# announce's "pending, id > last, ORDER BY id" walk. A full index on the flag held an entry for
# every paper, and each upsert that set the flag moved one entry in a 1,000,000-entry index (a
# random page dirtied per paper on SQLite). The predicate is spelt exactly as announce's query
# spells it (`IS 1` on SQLite, `IS true` on PostgreSQL): SQLite only uses a partial index whose
# WHERE term appears verbatim in the query.
_pending = papers.c.needs_classification.is_(True)
# Title keys of the papers stored without a DOI (a small share of them): the only papers a
# record that carries a DOI but found none by it can be (dedupe.match._link_by_title). Spelt as the
# query spells it, for SQLite's planner.
DOI_LESS = papers.c.doi.is_(None)
sa.Index("ix_papers_title_key_doi_less", papers.c.title_key, sqlite_where=DOI_LESS, postgresql_where=DOI_LESS)
sa.Index("ix_papers_needs_classification", papers.c.id, sqlite_where=_pending, postgresql_where=_pending)

paper_sources = sa.Table(
    "paper_sources",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("paper_id", sa.BigInteger, sa.ForeignKey("papers.id", ondelete="CASCADE"), nullable=False),
    sa.Column("source", sa.String(128), nullable=False),  # "pubmed" or "feed:<id>"
    sa.Column("source_key", sa.String(1024), nullable=False),  # PMID, or item guid/link
    sa.Column("record", RecordJson, nullable=False),  # that source's Paper, as it last said it
    sa.Column("record_hash", sa.String(64)),  # as papers.record_hash: skips unchanged re-polls
    sa.Column("first_seen_at", Timestamp, nullable=False),
    sa.Column("last_seen_at", Timestamp, nullable=False),
    sa.UniqueConstraint("source", "source_key"),
)
sa.Index("ix_paper_sources_paper_id", paper_sources.c.paper_id)

paper_topics = sa.Table(
    "paper_topics",
    metadata,
    sa.Column("paper_id", sa.BigInteger, sa.ForeignKey("papers.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("label", sa.String(64), primary_key=True),
    sa.Column("score", sa.Float, nullable=False),
)
sa.Index("ix_paper_topics_label", paper_topics.c.label, paper_topics.c.paper_id)

paper_updates = sa.Table(
    "paper_updates",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("paper_id", sa.BigInteger, sa.ForeignKey("papers.id", ondelete="CASCADE"), nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),  # a models.NOTICE_KINDS value
    sa.Column("notice_key", sa.String(512), nullable=False),  # PMID/DOI/citation of the notice
    sa.Column("notice", Json, nullable=False),
    sa.Column("detected_at", Timestamp, nullable=False),
    sa.Column("update_no", sa.BigInteger, unique=True),  # None until flagged for digests
    sa.UniqueConstraint("paper_id", "kind", "notice_key"),
)

feed_state = sa.Table(
    "feed_state",
    metadata,
    sa.Column("feed_id", sa.String(128), primary_key=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("final_url", sa.Text),  # after redirects
    sa.Column("etag", sa.Text),
    sa.Column("last_modified", sa.Text),
    sa.Column("last_status", sa.Integer),
    sa.Column("last_error", sa.Text),
    sa.Column("last_warning", sa.Text),
    sa.Column("last_polled_at", Timestamp),
    sa.Column("last_success_at", Timestamp),
    sa.Column("items_last", sa.Integer),
    sa.Column("dois_last", sa.Integer),
    sa.Column("consecutive_failures", sa.Integer, nullable=False, server_default="0"),
)

watermarks = sa.Table(
    "watermarks",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("value", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
)

counters = sa.Table(
    "counters",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)

subscribers = sa.Table(
    "subscribers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("email", sa.String(320), nullable=False, unique=True),  # stored lower-cased
    sa.Column("name", sa.String(256)),
    sa.Column("all_topics", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("frequency", sa.String(16), nullable=False, server_default="daily"),  # daily|weekly
    sa.Column("weekday", sa.Integer),  # 0=Monday..6=Sunday, for weekly
    sa.Column("max_papers", sa.Integer, nullable=False, server_default="50"),
    sa.Column("send_when_empty", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("status", sa.String(16), nullable=False, server_default="active"),
    sa.Column("cursor", sa.BigInteger, nullable=False, server_default="0"),  # last announce_no sent
    sa.Column("update_cursor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("permanent_failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    # The subscriber's own random key, in every link and Message-ID instead of the id, which
    # SQLite hands out again after a delete (migration 0004). A new key revokes the old links.
    # (A client-side default, so every insert through this table gets one; tokens.new_link_key.)
    sa.Column("link_key", sa.String(32), nullable=False, default=lambda: secrets.token_urlsafe(16)),
    # Existed before link keys: unsubscribe links of the first format still work for them.
    sa.Column("legacy_links", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("links_sent_at", Timestamp),  # last "here is a fresh link" mail (throttle)
)
sa.Index("ix_subscribers_link_key", subscribers.c.link_key, unique=True)

subscriber_topics = sa.Table(
    "subscriber_topics",
    metadata,
    sa.Column(
        "subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("label", sa.String(64), primary_key=True),
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column(
        "subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("period", sa.String(32), nullable=False),  # "2026-11-27" daily, "2026-W48" weekly
    # queued -> sending -> sent | failed_transient | failed_permanent
    sa.Column("state", sa.String(24), nullable=False),
    sa.Column("message_id", sa.String(256), nullable=False),
    sa.Column("announce_from", sa.BigInteger, nullable=False),  # exclusive
    sa.Column("announce_to", sa.BigInteger, nullable=False),  # inclusive
    sa.Column("update_from", sa.BigInteger, nullable=False),
    sa.Column("update_to", sa.BigInteger, nullable=False),
    sa.Column("paper_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("smtp_code", sa.Integer),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.Column("sent_at", Timestamp),
    sa.UniqueConstraint("subscriber_id", "period"),
)
sa.Index("ix_deliveries_period_state", deliveries.c.period, deliveries.c.state)

ingest_runs = sa.Table(
    "ingest_runs",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("run_id", sa.String(256), nullable=False),
    sa.Column("source", sa.String(128), nullable=False),
    sa.Column("window_start", Timestamp),
    sa.Column("window_end", Timestamp),
    sa.Column("stats", Json, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("finished_at", Timestamp, nullable=False),
    # a retry or a cleared rerun adds a row (attempt 2, 3, ...): a run's record is never overwritten
    sa.Column("attempt", sa.Integer, nullable=False, server_default="1"),
    sa.UniqueConstraint("run_id", "source", "attempt"),
)


def utcnow() -> datetime:
    """Naive UTC now, the form every timestamp column stores. Not for choosing data windows."""
    return datetime.now(UTC).replace(tzinfo=None)


_engines: dict[str, Engine] = {}


SQLITE_WAL_AUTOCHECKPOINT = 10000  # pages (~40 MB of WAL); see make_engine
SQLITE_BUSY_TIMEOUT_MS = 30000  # how long a writer waits for the lock (the web app waits less)
# Execution option: this connection's transactions only read. On SQLite they then begin
# DEFERRED, so (with WAL) they never wait for a writer; writers begin IMMEDIATE.
READ_ONLY = "lupus_read_only"


def make_engine(url: str) -> Engine:
    """An engine for the store, with SQLite set up for concurrent writers (WAL, busy timeout)."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            # Let SQLAlchemy's BEGIN below start the transaction, so writers take the lock
            # up front (BEGIN IMMEDIATE) instead of failing on lock upgrade.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA synchronous=NORMAL")
            # A 16 MiB page cache per connection (default 2 MiB), so a batch upsert into a large
            # store keeps the index pages it revisits; bounded whatever the store's size (larger
            # caches measured no faster). Temporary b-trees (IN lists, sorts) in memory.
            cur.execute("PRAGMA cache_size=-16384")
            cur.execute("PRAGMA temp_store=MEMORY")
            # Checkpoint (copy the WAL back and fsync) every ~40 MB of WAL instead of every
            # 4 MB: a page that several batches dirty is written back once, and there are ten
            # times fewer fsyncs, the slowest part of a commit on a busy disk.
            cur.execute(f"PRAGMA wal_autocheckpoint={SQLITE_WAL_AUTOCHECKPOINT}")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Connection) -> None:
            conn.exec_driver_sql(
                "BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE"
            )

        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def get_engine(url: str) -> Engine:
    """A process-wide engine per URL (tasks and CLI commands share one pool)."""
    if url not in _engines:
        _engines[url] = make_engine(url)
    return _engines[url]


@contextmanager
def transaction(db: Engine | Connection) -> Iterator[Connection]:
    """One database transaction, committed on success and rolled back on error.

    An Engine: a pooled connection for the block. A Connection outside a transaction: a
    transaction begun on it for the block. A Connection already inside one: the block joins it,
    and the caller, who began it, commits (a subscriber's row and the ledger row that belongs
    with it go in together). The one helper for every module (it was two with opposite rules).
    """
    if isinstance(db, Engine):
        with db.begin() as conn:
            yield conn
    elif db.in_transaction():
        yield db
    else:
        with db.begin():
            yield db


# Key of the PostgreSQL advisory lock that migrations hold: "lupus_mg" as a 64-bit integer.
MIGRATION_LOCK_KEY = int.from_bytes(b"lupus_mg", "big")
MIGRATION_LOCK_TIMEOUT_S = 300.0


class MigrationLockTimeout(RuntimeError):
    """Another process held the store's migration lock for longer than the timeout."""


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the store's schema to `revision` with Alembic (creates the database if new).

    Every task calls this on start, so on a first run many processes meet on an empty store:
    migrations take turns under a lock (`migration_lock`), and whoever comes second finds the
    work done. A store already at the head revision is left alone without taking the lock.
    """
    from alembic import command

    if revision == "head" and current_revision(url) == head_revision():
        return
    with migration_lock(url):
        command.upgrade(alembic_config(url), revision)


@lru_cache(maxsize=1)
def head_revision() -> str | None:
    """The newest revision among the packaged migrations."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


@contextmanager
def migration_lock(url: str, *, timeout_s: float = MIGRATION_LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold the store's migration lock: one migrating process per database at a time.

    PostgreSQL: a session-level advisory lock (`pg_advisory_lock`) on a connection of its own,
    released by `pg_advisory_unlock` or by the server when the process dies. SQLite: an
    exclusive `flock` on `<database file>.migrate.lock` beside the database, released when the
    file is closed or the process dies. An in-memory SQLite database needs none. Raises
    `MigrationLockTimeout` after `timeout_s` of waiting.
    """
    if url.startswith("postgresql"):
        yield from _pg_advisory_lock(url, timeout_s)
        return
    path = url.split("///", 1)[-1] if url.startswith("sqlite") else ""
    if not path or path == ":memory:" or "mode=memory" in url:
        yield
        return
    yield from _file_lock(Path(path.split("?", 1)[0] + ".migrate.lock"), timeout_s)


def _pg_advisory_lock(url: str, timeout_s: float) -> Iterator[None]:
    engine = sa.create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f"SET lock_timeout = '{int(timeout_s * 1000)}ms'")
            try:
                conn.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            except sa.exc.OperationalError as e:
                raise MigrationLockTimeout(
                    f"another process has been migrating the store for over {timeout_s:g} s"
                ) from e
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
    finally:
        engine.dispose()


def _file_lock(path: Path, timeout_s: float) -> Iterator[None]:
    import fcntl
    import time

    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    with open(path, "a+b") as f:
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise MigrationLockTimeout(
                        f"another process has been migrating the store for over {timeout_s:g} s ({path})"
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def current_revision(url: str) -> str | None:
    """The Alembic revision the store is at, or None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def alembic_config(url: str):  # type: ignore[no-untyped-def]
    """An Alembic Config for the packaged migrations, pointed at `url`."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def next_numbers(conn: Connection, name: str, count: int) -> range:
    """Reserve `count` consecutive numbers from the named counter, inside conn's transaction.

    The counter row is updated in place, so concurrent transactions serialise on it (a row lock on
    PostgreSQL, the database write lock on SQLite) and numbers are never handed out twice.
    """
    if count <= 0:
        return range(0)
    row = conn.execute(
        sa.update(counters)
        .where(counters.c.name == name)
        .values(value=counters.c.value + count)
        .returning(counters.c.value)
    ).first()
    if row is None:
        conn.execute(sa.insert(counters).values(name=name, value=count))
        end = count
    else:
        end = int(row[0])
    return range(end - count + 1, end + 1)


def counter_value(conn: Connection, name: str) -> int:
    """The last number handed out by the named counter (0 if none yet)."""
    v = conn.execute(sa.select(counters.c.value).where(counters.c.name == name)).scalar()
    return int(v or 0)


def high_water_marks(conn: Connection) -> tuple[int, int]:
    """The highest announcement and update numbers handed out and committed so far: where
    "everything up to now" ends (a new subscriber's cursors, a digest's range, a run's numbers).

    The counters are what `announce` draws from; the column maxima guard against data written
    without them (fixtures, imports), so a snapshot never stops short of a stored paper.
    """
    a = counter_value(conn, "announce")
    u = counter_value(conn, "update")
    a_max = conn.execute(sa.select(sa.func.max(papers.c.announce_no))).scalar()
    u_max = conn.execute(sa.select(sa.func.max(paper_updates.c.update_no))).scalar()
    return max(a, int(a_max or 0)), max(u, int(u_max or 0))


def read_watermark(engine: Engine, name: str) -> datetime | None:
    """The stored watermark `name` (naive UTC), or None when nothing has set it yet."""
    with engine.connect() as conn:
        return conn.execute(sa.select(watermarks.c.value).where(watermarks.c.name == name)).scalar()


def advance_watermark(engine: Engine, name: str, value: datetime) -> datetime:
    """Move the watermark `name` forward to `value`; return the value now stored.

    Never backwards: a rerun or a late retry of an old window must not make the next run
    re-read, or skip, what a newer one already settled. Aware times are stored as naive UTC.
    """
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    with transaction(engine) as conn:
        current = conn.execute(sa.select(watermarks.c.value).where(watermarks.c.name == name)).scalar()
        if current is None:
            conn.execute(sa.insert(watermarks).values(name=name, value=value, updated_at=utcnow()))
            return value
        if value > current:
            conn.execute(
                sa.update(watermarks)
                .where(watermarks.c.name == name)
                .values(value=value, updated_at=utcnow())
            )
            return value
        return current
