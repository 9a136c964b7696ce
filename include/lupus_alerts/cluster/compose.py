"""docker-compose.yaml read, and its environment turned into this machine's."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from lupus_alerts.cluster.common import (
    COMPOSE_FILE,
    LOCAL_ADDITIONS,
    LOCAL_DIFFERENCES,
    ClusterError,
)

# -- docker-compose.yaml ---------------------------------------------------------------------


def interpolate(value: str, variables: Mapping[str, str]) -> str:
    """Compose's variable interpolation: `${X}`, `${X:-default}`, `${X-default}`, `${X:?error}`,
    `${X?error}`, `$X` and `$$`. Defaults may hold braces (`${C:-{"a":1}}`)."""
    out: list[str] = []
    i = 0
    while i < len(value):
        ch = value[i]
        if ch != "$":
            out.append(ch)
            i += 1
            continue
        nxt = value[i + 1 : i + 2]
        if nxt == "$":
            out.append("$")
            i += 2
            continue
        if nxt != "{":
            m = re.match(r"[A-Za-z_][A-Za-z0-9_]*", value[i + 1 :])
            if not m:
                out.append("$")
                i += 1
                continue
            out.append(variables.get(m.group(0), ""))
            i += 1 + m.end(0)
            continue
        depth, j = 0, i + 1
        while j < len(value):
            depth += {"{": 1, "}": -1}.get(value[j], 0)
            if depth == 0:
                break
            j += 1
        if depth:
            raise ValueError(f"unclosed ${{ in {value!r}")
        body = value[i + 2 : j]
        m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])(.*))?", body, re.S)
        if not m:
            raise ValueError(f"bad variable reference ${{{body}}}")
        name, op, arg = m.group(1), m.group(2), m.group(3) or ""
        val = variables.get(name)
        unset_or_empty = not val
        if op in (":-", "-"):
            use_default = unset_or_empty if op == ":-" else val is None
            out.append(interpolate(arg, variables) if use_default else str(val))
        elif op in (":?", "?"):
            if unset_or_empty if op == ":?" else val is None:
                raise ValueError(f"required variable {name} is not set: {arg}")
            out.append(str(val))
        else:
            out.append(val or "")
        i = j + 1
    return "".join(out)


@dataclass
class ComposeFile:
    """docker-compose.yaml, read as data."""

    data: dict[str, Any]
    path: Path = COMPOSE_FILE

    @classmethod
    def load(cls, path: Path = COMPOSE_FILE) -> ComposeFile:
        import yaml

        return cls(yaml.safe_load(path.read_text(encoding="utf-8")), path)

    def service(self, name: str) -> dict[str, Any]:
        return self.data["services"][name]

    def environment(self, service: str) -> dict[str, str]:
        """A service's environment as written (`${...}` unresolved; YAML merges applied)."""
        env = self.service(service).get("environment") or {}
        return {str(k): str(v) for k, v in env.items()}

    def command(self, service: str) -> list[str]:
        """The service's entrypoint override plus its command, as an argument list."""
        svc = self.service(service)
        parts: list[str] = []
        for key in ("entrypoint", "command"):
            value = svc.get(key)
            if value is None:
                continue
            parts += shlex.split(value) if isinstance(value, str) else [str(v) for v in value]
        return parts

    def mounts(self, service: str) -> dict[str, Path]:
        """Container path -> the repository path mounted there (bind mounts of `./...` only)."""
        out = {}
        for spec in self.service(service).get("volumes") or []:
            src, _, rest = str(spec).partition(":")
            if src.startswith("./"):
                out[rest.split(":")[0]] = (self.path.parent / src).resolve()
        return out

    def init_script(self) -> str:
        return "\n".join(str(c) for c in self.service("airflow-init").get("command") or [])

    def ncbi_pool_slots(self) -> int:
        m = re.search(r"airflow pools set ncbi (\d+)", self.init_script())
        if not m:
            raise ClusterError("airflow-init does not create the `ncbi` pool")
        return int(m.group(1))

    def service_ports(self) -> dict[str, int]:
        """The port each infrastructure service listens on inside the compose network."""
        return {"postgres": 5432, "redis": 6379, "airflow-apiserver": 8080, "mailpit": 1025}


@dataclass(frozen=True)
class LocalAddresses:
    """Where each compose service is on this machine, for one run."""

    postgres: tuple[str, int, str]  # host, port, user (trust authentication)
    databases: Mapping[str, str]  # compose database name -> this run's database
    redis: tuple[str, int, int]  # host, port, database number
    api_port: int
    smtp_port: int  # compose's `mailpit`: the run's SMTP server

    def service(self, name: str) -> tuple[str, int] | None:
        return {
            "postgres": self.postgres[:2],
            "redis": self.redis[:2],
            "airflow-apiserver": ("localhost", self.api_port),
            "mailpit": ("127.0.0.1", self.smtp_port),
        }.get(name)


def dot_env(*, api_port: int, operator_email: str = "operators@cluster.example.org") -> dict[str, str]:
    """What `.env` holds for a run: fresh secrets (never a placeholder) and the operator address."""
    import secrets

    from cryptography.fernet import Fernet

    return {
        "AIRFLOW_FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW_JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW_API_SECRET_KEY": secrets.token_urlsafe(32),
        "LUPUS_ALERTS_SECRET": secrets.token_urlsafe(32),
        "LUPUS_ALERTS_OPERATOR_EMAIL": operator_email,
        "AIRFLOW_BASE_URL": f"http://localhost:{api_port}",
    }


def localize(value: str, addresses: LocalAddresses, mounts: Mapping[str, Path]) -> str:
    """One resolved compose value, made local: service addresses in URLs and connection JSON,
    compose database names, container paths. Anything else is returned as it is."""
    if value in mounts:
        return str(mounts[value])
    if value.startswith("{"):
        try:
            conn = json.loads(value)
        except ValueError:
            return value
        if isinstance(conn, dict) and (local := addresses.service(str(conn.get("host")))):
            conn["host"], conn["port"] = local
            return json.dumps(conn, separators=(",", ":"))
        return value
    if "://" not in value:
        return value
    parts = urlsplit(value)
    local = addresses.service(parts.hostname or "")
    if local is None:
        return value
    host, port = local
    path = parts.path
    netloc = f"{host}:{port}"
    if parts.hostname == "postgres":
        netloc = f"{addresses.postgres[2]}@{netloc}"
        db = path.lstrip("/")
        path = "/" + addresses.databases.get(db, db)
    elif parts.hostname == "redis":
        path = f"/{addresses.redis[2]}"
    elif parts.username is not None or parts.password is not None:
        netloc = parts.netloc.rpartition("@")[0] + "@" + netloc
    return urlunsplit((parts.scheme, netloc, path, parts.query, parts.fragment))


def local_environment(
    compose: ComposeFile,
    service: str,
    addresses: LocalAddresses,
    variables: Mapping[str, str],
    *,
    differences: Mapping[str, str],
    additions: Mapping[str, str],
) -> dict[str, str]:
    """A compose service's environment on this machine (without the inherited process environment).

    Raises ClusterError if `differences` or `additions` name a setting their tables do not list,
    so every departure from docker-compose.yaml carries its reason.
    """
    unknown = (set(differences) - set(LOCAL_DIFFERENCES)) | (set(additions) - set(LOCAL_ADDITIONS))
    if unknown:
        raise ClusterError(
            f"settings without a reason in LOCAL_DIFFERENCES/LOCAL_ADDITIONS: {sorted(unknown)}"
        )
    mounts = compose.mounts(service)
    env = {
        key: localize(interpolate(raw, variables), addresses, mounts)
        for key, raw in compose.environment(service).items()
    }
    for key, value in differences.items():
        if key in env:
            env[key] = value
    clash = set(additions) & set(compose.environment(service))
    if clash:
        raise ClusterError(f"{sorted(clash)} are in docker-compose.yaml: list them in LOCAL_DIFFERENCES")
    env.update(additions)
    return env
