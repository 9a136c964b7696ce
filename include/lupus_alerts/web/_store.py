"""The store as the web app uses it: opened on first request, every transaction with a lock
timeout and a statement timeout."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lupus_alerts import store as db

if TYPE_CHECKING:
    from lupus_alerts.config import Settings


# How long a request waits for a row lock (PostgreSQL) or the write lock (SQLite), and how long
# one statement may run, before the request gets a 503 page instead of holding a worker.
LOCK_TIMEOUT_S = 5.0


STATEMENT_TIMEOUT_S = 10.0


# Database trouble the visitor can do nothing about but come back: 503, not 500.
_UNAVAILABLE_ERRORS = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError)


class _Store:
    """The settings and the engine, opened on first use from the configuration (or factories, in
    tests), and the transactions of one request, each with its lock and statement timeouts."""

    def __init__(
        self,
        engine_factory: Callable[[], Engine] | None,
        settings_factory: Callable[[], Settings] | None,
        *,
        lock_timeout_s: float,
        statement_timeout_s: float,
    ) -> None:
        self._engine_factory = engine_factory
        self._settings_factory = settings_factory
        self._engine: Engine | None = None
        self._settings: Settings | None = None
        self._lock = threading.Lock()
        self.lock_timeout_s = lock_timeout_s
        self.statement_timeout_s = statement_timeout_s

    def settings(self) -> Settings:
        if self._settings is None:
            with self._lock:
                if self._settings is None:
                    if self._settings_factory is not None:
                        self._settings = self._settings_factory()
                    else:
                        from lupus_alerts.config import load_config

                        self._settings = load_config()
        return self._settings

    def engine(self) -> Engine:
        if self._engine is None:
            settings = None if self._engine_factory is not None else self.settings()
            with self._lock:
                if self._engine is None:
                    if self._engine_factory is not None:
                        self._engine = self._engine_factory()
                    else:
                        assert settings is not None
                        self._engine = db.get_engine(settings.database_url)
        return self._engine

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction (on SQLite it never waits for a writer)."""
        with self._transaction(read_only=True) as conn:
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction, committed on success."""
        with self._transaction(read_only=False) as conn:
            yield conn

    @contextmanager
    def _transaction(self, *, read_only: bool) -> Iterator[Connection]:
        with self.engine().connect() as conn:
            if conn.dialect.name == "sqlite":
                with self._sqlite_limits(conn):
                    conn.execution_options(**{db.READ_ONLY: read_only})
                    with conn.begin():
                        yield conn
                return
            with conn.begin():
                if conn.dialect.name == "postgresql":
                    # SET LOCAL: for this transaction only, so the pooled connection (shared with
                    # nothing else in the web app, but maybe in tests) keeps its settings.
                    conn.exec_driver_sql(f"SET LOCAL lock_timeout = {int(self.lock_timeout_s * 1000)}")
                    conn.exec_driver_sql(
                        f"SET LOCAL statement_timeout = {int(self.statement_timeout_s * 1000)}"
                    )
                yield conn

    @contextmanager
    def _sqlite_limits(self, conn: Connection) -> Iterator[None]:
        # SQLite has no lock or statement timeout: the busy timeout bounds the wait for the
        # write lock (set before BEGIN IMMEDIATE, which is what waits), and a progress handler
        # interrupts a statement that runs past its deadline. Both are restored after, for the
        # pooled connection's next user.
        raw = conn.connection.driver_connection
        deadline = time.monotonic() + self.statement_timeout_s
        raw.execute(f"PRAGMA busy_timeout={int(self.lock_timeout_s * 1000)}")
        raw.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
        try:
            yield
        finally:
            raw.set_progress_handler(None, 0)
            raw.execute(f"PRAGMA busy_timeout={db.SQLITE_BUSY_TIMEOUT_MS}")
