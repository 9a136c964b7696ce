"""Writing a plan: multi-row INSERT/UPDATE statements (COPY on PostgreSQL for new source rows),
for the speed the daily batch needs (docs/dedupe.md, "Performance")."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from lupus_alerts import store
from lupus_alerts.dedupe.match import _LIST_CHUNK, _in_chunks, _one_of
from lupus_alerts.dedupe.plan import _Writes
from lupus_alerts.dedupe.stats import UpsertStats

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
