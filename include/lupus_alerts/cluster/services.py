"""PostgreSQL and Redis, as the cluster uses them: reachable or not, a fresh database, free ports."""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import urlsplit

from lupus_alerts.cluster.common import (
    POSTGRES_ADMIN_URL,
    REDIS_ADDRESS,
)

# -- PostgreSQL and Redis ----------------------------------------------------------------------


def reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def unavailable_reason() -> str | None:
    """Why a local cluster cannot run here (PostgreSQL or Redis unreachable), or None."""
    pg = urlsplit(POSTGRES_ADMIN_URL)
    if not reachable(pg.hostname or "127.0.0.1", pg.port or 5432):
        return f"PostgreSQL is not reachable at {pg.hostname}:{pg.port or 5432} (start it to run the cluster)"
    if not reachable(*REDIS_ADDRESS):
        return (
            f"Redis is not reachable at {REDIS_ADDRESS[0]}:{REDIS_ADDRESS[1]} (start it to run the cluster)"
        )
    return None


def _admin_engine() -> Any:
    import sqlalchemy as sa

    return sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")


def create_database(name: str) -> str:
    """A new, empty PostgreSQL database; returns its URL."""
    admin = _admin_engine()
    try:
        with admin.connect() as c:
            c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        admin.dispose()
    return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def drop_database(name: str) -> None:
    admin = _admin_engine()
    try:
        with admin.connect() as c:
            c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_host_port() -> tuple[str, int]:
    parts = urlsplit(POSTGRES_ADMIN_URL)
    return parts.hostname or "127.0.0.1", parts.port or 5432
