"""SQLite only: WAL checkpoints in a helper thread while the batches commit (docs/dedupe.md)."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

from sqlalchemy.engine import Connection, Engine

from lupus_alerts import store


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
