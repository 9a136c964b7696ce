"""Shared fixtures: fresh stores on SQLite and PostgreSQL, paths to recorded fixtures."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # for the annotations only: the fixtures import it when they run, as before
    import sqlalchemy as sa

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).parent.parent

# The PostgreSQL server the machine and CI run (trust auth). Each test gets its own database.
PG_ADMIN_URL = os.environ.get("LUPUS_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


def _pg_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


PG_SKIP_REASON = "PostgreSQL is not reachable at 127.0.0.1:5432 (start it to run the PostgreSQL tests)"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A brand-new PostgreSQL database for one test, dropped afterwards."""
    if not _pg_reachable():
        pytest.skip(PG_SKIP_REASON)
    import sqlalchemy as sa

    name = f"lupus_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:
        from lupus_alerts import store

        eng = store._engines.pop(url, None)
        if eng is not None:
            eng.dispose()
        with admin.connect() as c:
            c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """An empty store URL, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("pg_url")


@pytest.fixture
def store_url(db_url: str) -> str:
    """A migrated, empty store on each database."""
    from lupus_alerts import store

    store.upgrade(db_url)
    return db_url


@pytest.fixture
def engine(store_url: str) -> Iterator[sa.Engine]:
    from lupus_alerts import store

    eng = store.make_engine(store_url)
    yield eng
    eng.dispose()
