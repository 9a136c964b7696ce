"""Secrets and endpoints from Airflow connections, with or without Airflow running.

Airflow's own convention is used everywhere: a connection `ncbi_default` is the environment
variable `AIRFLOW_CONN_NCBI_DEFAULT` holding JSON (`{"conn_type": ..., "host": ..., "extra":
{...}}`) or a URI. Outside a task (the CLI, tests) that variable is read directly, so Airflow is
not imported; inside Airflow, connections defined in the UI or a secrets backend are found
through `BaseHook.get_connection`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit


@dataclass(frozen=True, slots=True)
class Conn:
    """The parts of an Airflow connection the project uses."""

    conn_id: str
    conn_type: str | None = None
    host: str | None = None
    port: int | None = None
    login: str | None = None
    password: str | None = None
    schema: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def get_connection(conn_id: str) -> Conn | None:
    """The connection `conn_id`, or None when it is defined nowhere."""
    raw = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")
    if raw:
        return parse_connection(conn_id, raw)
    if os.environ.get("AIRFLOW_CTX_DAG_ID") or os.environ.get("LUPUS_ALERTS_USE_AIRFLOW_CONNECTIONS"):
        try:
            from airflow.sdk import BaseHook

            c = BaseHook.get_connection(conn_id)
        except Exception:  # not defined in Airflow either
            return None
        return Conn(conn_id, c.conn_type, c.host, c.port, c.login, c.password, c.schema, dict(c.extra_dejson))
    return None


def parse_connection(conn_id: str, raw: str) -> Conn:
    """Parse an `AIRFLOW_CONN_*` value: Airflow's JSON form or its URI form."""
    raw = raw.strip()
    if raw.startswith("{"):
        d = json.loads(raw)
        extra = d.get("extra") or {}
        if isinstance(extra, str):
            extra = json.loads(extra) if extra else {}
        port = d.get("port")
        return Conn(
            conn_id,
            d.get("conn_type"),
            d.get("host"),
            int(port) if port not in (None, "") else None,
            d.get("login"),
            d.get("password"),
            d.get("schema"),
            dict(extra),
        )
    u = urlsplit(raw)
    extra: dict[str, Any] = dict(parse_qsl(u.query))
    if "__extra__" in extra:
        extra = json.loads(extra["__extra__"])
    return Conn(
        conn_id,
        u.scheme.replace("-", "_") or None,
        unquote(u.hostname) if u.hostname else None,
        u.port,
        unquote(u.username) if u.username else None,
        unquote(u.password) if u.password else None,
        unquote(u.path.lstrip("/")) or None,
        extra,
    )


def secret(name: str, *, conn_id: str | None = None, env: str | None = None) -> str | None:
    """A secret value: the environment variable `env` first, else the connection's password."""
    if env and os.environ.get(env):
        return os.environ[env]
    if conn_id:
        c = get_connection(conn_id)
        if c is not None:
            return c.password or c.extra.get(name)
    return None
