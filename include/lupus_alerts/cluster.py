"""The docker-compose.yaml deployment, run as local processes: the same settings, on this machine.

docker-compose.yaml is the production system (CeleryExecutor, PostgreSQL, Redis, the public web
app). Docker does not run on the development machines or in CI, but every part of that system
does, so the tests (tests/integration/test_celery_cluster.py) and the scale benchmark
(bench/bench_executors.py) start the same components as processes, configured from the file:

- `ComposeFile` reads the services, the Airflow services' common environment, the mounts and
  what `airflow-init` does.
- `local_environment` turns that environment into this machine's. `${VAR}` references are
  resolved from what `.env` would hold (`dot_env`); each compose service's address becomes its
  local counterpart (`LocalAddresses`: PostgreSQL and Redis on 127.0.0.1 with fresh databases,
  free ports); container paths become the repository's. Only the settings in
  `LOCAL_DIFFERENCES` are replaced, and only those in `LOCAL_ADDITIONS` added, each with its
  reason; tests/unit/test_docker_compose.py checks that nothing else differs.
- `Cluster` runs it: what airflow-init does, then the api-server, scheduler, dag-processor,
  triggerer, N `airflow celery worker`s (or the LocalExecutor and no worker, for comparison)
  and the web app, each in its own process group with its own log. `kill_worker` SIGKILLs a
  worker with every process it started (a lost machine); `stop` ends the rest and `leftovers`
  finds any process of the run still alive (every one carries the run's marker variable).

Nothing heavy is imported at module level: Airflow imports `node_name` in every task process.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yaml"
# The compose services that run Airflow components (their `command` is an `airflow` subcommand).
AIRFLOW_SERVICES = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer")
WORKER_SERVICE = "airflow-worker"
WEB_SERVICE = "lupus-alerts-web"
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
NODE_NAME_ENV = "LUPUS_ALERTS_NODE_NAME"
RUN_MARKER_ENV = "LUPUS_ALERTS_CLUSTER_RUN"
REDIS_ADDRESS = ("127.0.0.1", 6379)
POSTGRES_ADMIN_URL = os.environ.get("LUPUS_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")

# Settings compose has that the local cluster must set otherwise; the value is the reason.
LOCAL_DIFFERENCES = {
    "AIRFLOW__CORE__AUTH_MANAGER": "the FAB auth manager comes with the Airflow image, not with the "
    "project's pins; Airflow's SimpleAuthManager logs the harness in",
    "LUPUS_ALERTS_CONFIG": "the run's own configuration, pointing at the local replay servers "
    "instead of NCBI and the journals",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "a lost worker's task is retried after "
    "seconds, not minutes, so the worker-kill test is quick (heartbeats still come every 5 s)",
    "AIRFLOW__CORE__EXECUTOR": "the LocalExecutor, for the benchmark's comparison run only",
}
# Settings the local cluster adds; the value is the reason.
LOCAL_ADDITIONS = {
    "AIRFLOW_HOME": "one folder per run (logs, pid files, the generated login)",
    "AIRFLOW__API__PORT": "a free port: other runs share this machine",
    "AIRFLOW__API__WORKERS": "one API server process on 2 cores (compose: Airflow's default)",
    "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": "a free port per worker (each container has its own)",
    "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": "a free port (the triggerer's container has its own)",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": "a free port for the scheduler's "
    "health check (compose: 8974 in its container)",
    "AIRFLOW__OPERATORS__DEFAULT_QUEUE": "a Celery queue of the run's own, on the Redis other runs share",
    "AIRFLOW__CELERY__WORKER_CONCURRENCY": "task slots per worker sized for 2 cores (compose: 16)",
    "AIRFLOW__CORE__PARALLELISM": "the same total task slots for either executor (benchmarks)",
    "AIRFLOW__CORE__HOSTNAME_CALLABLE": "every worker is a host of its own (in compose each "
    "container has its own hostname)",
    NODE_NAME_ENV: "the worker's host name (read by `node_name`)",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "look for a lost "
    "worker's tasks every 2 s (default 10 s)",
    "LUPUS_ALERTS_RETRY_DELAY_S": "retries wait 1 s, not 2 minutes",
    RUN_MARKER_ENV: "marks every process of the run, so none can outlive it unnoticed",
    "PATH": "this virtualenv's `airflow` first",
    "PYTHONUNBUFFERED": "logs as they happen",
}
# Variables from the developer's shell that would silently change the cluster: never passed on.
_NOT_INHERITED = re.compile(r"^(AIRFLOW__|AIRFLOW_CONN_|AIRFLOW_VAR_|LUPUS_ALERTS_|AIRFLOW_HOME$)")


class ClusterError(Exception):
    """The cluster could not be started, or did not do what was waited for (with log tails)."""


def node_name() -> str:
    """Airflow's `[core] hostname_callable` for the local cluster: the worker's name, else the FQDN."""
    return os.environ.get(NODE_NAME_ENV) or socket.getfqdn()


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


# -- processes ---------------------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    """ppid -> pids, for every process visible in /proc."""
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (children, their children, ...), whatever their process group."""
    tree, found, todo = _children(), set(), [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def processes_of_run(marker: str, sessions: set[int]) -> list[tuple[int, str]]:
    """(pid, command line) of every live process of a run: in one of its components' sessions
    (each component is started with its own session, which its children keep: the task
    supervisor gives a task its own process group, not its own session), or carrying
    RUN_MARKER_ENV=marker in its environment (Airflow renames its processes with setproctitle,
    which can overwrite what /proc shows of the environment, hence the sessions too)."""
    needle = f"{RUN_MARKER_ENV}={marker}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            if fields[0] == "Z":
                continue  # exited, waiting for its parent to reap it
            if int(fields[3]) not in sessions:
                environ = Path(f"/proc/{entry}/environ").read_bytes()
                if needle not in environ.split(b"\0"):
                    continue
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
        found.append((int(entry), cmd.strip()))
    return found


@dataclass
class Component:
    """One started process (group) of the cluster."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def tail(self, n: int = 3000) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""
        return text[-n:]


@dataclass
class Api:
    """A logged-in client for Airflow's REST API."""

    base: str
    token: str
    session: Any = field(init=False)

    def __post_init__(self) -> None:
        import requests

        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {self.token}"

    def get(self, path: str) -> Any:
        return self.session.get(self.base + path, timeout=30)

    def post(self, path: str, body: Mapping[str, Any]) -> Any:
        return self.session.post(self.base + path, json=body, timeout=30)

    def patch(self, path: str, body: Mapping[str, Any]) -> Any:
        return self.session.patch(self.base + path, json=body, timeout=30)

    def json(self, path: str) -> Any:
        resp = self.get(path)
        resp.raise_for_status()
        return resp.json()

    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None) -> str:
        resp = self.post(f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": dict(conf or {})})
        if not resp.ok:
            raise ClusterError(f"triggering {dag_id}: {resp.status_code} {resp.text}")
        return str(resp.json()["dag_run_id"])

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.json(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        return list(self.json(f"/api/v2/dags/{dag_id}/dagRuns?limit=100")["dag_runs"])

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return list(
            self.json(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=1000")["task_instances"]
        )

    def tries(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> list[dict[str, Any]]:
        """Every try of one task instance (the earlier ones and the current), oldest first."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}/tries"
        return sorted(self.json(path)["task_instances"], key=lambda t: t["try_number"])


class Cluster:
    """docker-compose.yaml's Airflow deployment as local processes, for one run.

    `with Cluster(root, config_path=..., smtp_port=...) as c:` creates the run's databases, runs
    what airflow-init does, starts every component and waits until the API answers, the
    scheduler, triggerer and dag-processor report healthy and every worker answers a Celery
    ping. Leaving the block stops everything, checks nothing is left (`leftovers_at_stop`), drops
    the databases and removes the run's Redis keys.
    """

    def __init__(
        self,
        root: Path,
        *,
        config_path: Path,
        smtp_port: int,
        workers: Sequence[str] = ("worker-a", "worker-b"),
        executor: str = "CeleryExecutor",
        slots_per_worker: int = 4,
        web_workers: int = 2,
        web: bool = True,
        heartbeat_timeout_s: int = 20,
        compose: ComposeFile | None = None,
        start_timeout_s: float = 240,
    ) -> None:
        self.root = root
        self.compose = compose or ComposeFile.load()
        self.run_id = uuid.uuid4().hex[:10]
        self.executor = executor
        self.worker_names = [f"{w}-{self.run_id}" for w in workers] if executor == "CeleryExecutor" else []
        self.slots_per_worker = slots_per_worker
        self.web_workers = web_workers
        self.web = web
        self.start_timeout_s = start_timeout_s
        self.home = root / "airflow_home"
        self.queue = f"lupus-{self.run_id}"
        self.databases = {"airflow": f"lupus_af_{self.run_id}", "lupus_alerts": f"lupus_store_{self.run_id}"}
        self.api_port, self.web_port = free_port(), free_port()
        self.addresses = LocalAddresses(
            postgres=(*_pg_host_port(), urlsplit(POSTGRES_ADMIN_URL).username or "postgres"),
            databases=self.databases,
            redis=(*REDIS_ADDRESS, 1 + int(self.run_id, 16) % 15),
            api_port=self.api_port,
            smtp_port=smtp_port,
        )
        self.variables = dot_env(api_port=self.api_port)
        self.differences = {
            "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
            "LUPUS_ALERTS_CONFIG": str(config_path.resolve()),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(heartbeat_timeout_s),
        }
        if executor != "CeleryExecutor":
            self.differences["AIRFLOW__CORE__EXECUTOR"] = executor
        self.components: dict[str, Component] = {}
        self.killed: list[str] = []
        self.leftovers_at_stop: list[tuple[int, str]] = []
        self.forced_at_stop: list[str] = []
        self.api: Api | None = None
        self._created: list[str] = []
        self._ports: dict[str, int] = {}

    # -- environment ---------------------------------------------------------------------------

    @property
    def store_url(self) -> str:
        return self.environment(WORKER_SERVICE)["LUPUS_ALERTS_STORE_URL"]

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def base_url(self) -> str:
        return f"http://localhost:{self.api_port}"

    def additions(self, service: str, node: str | None = None) -> dict[str, str]:
        """What the local run adds to a service's compose environment (see LOCAL_ADDITIONS)."""
        add = {
            RUN_MARKER_ENV: self.run_id,
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
            "PYTHONUNBUFFERED": "1",
        }
        if service == WEB_SERVICE:
            return add
        add |= {
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": self.queue,
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.slots_per_worker),
            "AIRFLOW__CORE__PARALLELISM": str(self.slots_per_worker * max(1, len(self.worker_names) or 2)),
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": f"{__name__}.node_name",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(self._port("scheduler-health")),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self._port("trigger-log")),
            "LUPUS_ALERTS_RETRY_DELAY_S": "1",
        }
        if node is not None:
            add[NODE_NAME_ENV] = node
            add["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] = str(self._port(f"log-{node}"))
        return add

    def environment(self, service: str, node: str | None = None) -> dict[str, str]:
        """The service's environment from docker-compose.yaml, made local (no inherited variables)."""
        differences = {k: v for k, v in self.differences.items() if k in self.compose.environment(service)}
        return local_environment(
            self.compose,
            service,
            self.addresses,
            self.variables,
            differences=differences,
            additions=self.additions(service, node),
        )

    def _port(self, what: str) -> int:
        """A free port for `what`, the same one every time it is asked for in this run."""
        if what not in self._ports:
            self._ports[what] = free_port()
        return self._ports[what]

    def process_env(self, service: str, node: str | None = None) -> dict[str, str]:
        inherited = {k: v for k, v in os.environ.items() if not _NOT_INHERITED.match(k)}
        return inherited | self.environment(service, node)

    # -- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> Cluster:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "logs").mkdir(exist_ok=True)
        self.home.mkdir(parents=True, exist_ok=True)
        for name in self.databases.values():
            create_database(name)
            self._created.append(name)
        self.init()
        airflow = str(Path(sys.executable).with_name("airflow"))
        for service in AIRFLOW_SERVICES:
            self._start(service.removeprefix("airflow-"), [airflow, *self.compose.command(service)], service)
        for node in self.worker_names:
            argv = [airflow, *self.compose.command(WORKER_SERVICE), "--celery-hostname", node]
            argv += ["--pid", str(self.home / f"{node}.pid")]
            self._start(node, argv, WORKER_SERVICE, node=node)
        if self.web:
            self._start("web", self.web_command(), WEB_SERVICE)
        self.wait_ready()

    def init(self) -> None:
        """What airflow-init does: migrate Airflow's database, create the `ncbi` pool, migrate the store."""
        env = self.process_env("airflow-init")
        airflow = str(Path(sys.executable).with_name("airflow"))
        self._run([airflow, "db", "migrate"], env, "db-migrate")
        slots = str(self.compose.ncbi_pool_slots())
        self._run([airflow, "pools", "set", "ncbi", slots, "NCBI E-utilities"], env, "pools")
        self._run(
            [str(Path(sys.executable).with_name("lupus-alerts")), "db", "upgrade"], env, "store-upgrade"
        )

    def web_command(self) -> list[str]:
        """compose's lupus-alerts-web command, on this run's port, loopback and worker count."""
        argv = self.compose.command(WEB_SERVICE)
        argv = [str(Path(sys.executable).with_name(argv[0])), *argv[1:]]
        for opt, value in (
            ("--host", "127.0.0.1"),
            ("--port", str(self.web_port)),
            ("--workers", str(self.web_workers)),
        ):
            argv[argv.index(opt) + 1] = value
        return argv

    def _run(self, argv: list[str], env: Mapping[str, str], name: str) -> None:
        log = self.root / "logs" / f"{name}.log"
        with log.open("w", encoding="utf-8") as out:
            rc = subprocess.call(argv, env=dict(env), stdout=out, stderr=subprocess.STDOUT, timeout=600)
        if rc:
            raise ClusterError(f"`{' '.join(argv[-4:])}` failed ({rc}):\n{log.read_text()[-3000:]}")

    def _start(self, name: str, argv: list[str], service: str, node: str | None = None) -> Component:
        comp = Component(name, argv, self.process_env(service, node), self.root / "logs" / f"{name}.log")
        with comp.log.open("w", encoding="utf-8") as out:
            comp.proc = subprocess.Popen(
                argv,
                env=comp.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.root,
            )
        self.components[name] = comp
        return comp

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float, interval: float = 1.0) -> Any:
        """Poll `check` until it returns something true; ClusterError (with log tails) on timeout
        or when a component (other than a killed worker) exits."""
        deadline = time.monotonic() + timeout
        while True:
            for comp in self.components.values():
                if comp.name not in self.killed and comp.proc is not None and comp.proc.poll() is not None:
                    raise ClusterError(
                        f"{comp.name} exited ({comp.proc.returncode}) waiting for {what}:\n{comp.tail()}"
                    )
            try:
                value = check()
            except Exception:
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise ClusterError(f"timed out after {timeout:.0f} s waiting for {what}\n{self.tails()}")
            time.sleep(interval)

    def tails(self, n: int = 1500) -> str:
        return "\n".join(f"--- {c.name} ({c.log})\n{c.tail(n)}" for c in self.components.values())

    def wait_ready(self) -> None:
        import requests

        t = self.start_timeout_s
        self.wait_for(
            "the API server", lambda: requests.get(self.base_url + "/api/v2/version", timeout=5).ok, t
        )
        pw_file = self.home / "simple_auth_manager_passwords.json.generated"
        users = self.wait_for("the generated login", lambda: json.loads(pw_file.read_text()), t)
        user, password = next(iter(users.items()))
        resp = requests.post(
            self.base_url + "/auth/token", json={"username": user, "password": password}, timeout=30
        )
        if resp.status_code not in (200, 201):
            raise ClusterError(f"login failed: {resp.status_code} {resp.text}")
        self.api = Api(self.base_url, resp.json()["access_token"])

        def healthy() -> bool:
            health = requests.get(self.base_url + "/api/v2/monitor/health", timeout=5).json()
            parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
            return all((health.get(p) or {}).get("status") == "healthy" for p in parts)

        self.wait_for("scheduler, triggerer and dag-processor to report healthy", healthy, t)
        for node in self.worker_names:
            self.wait_for(f"Celery worker {node} to answer a ping", lambda n=node: self.ping(n), t)
        if self.web:
            self.wait_for("the web app", lambda: requests.get(self.web_url + "/livez", timeout=5).ok, t)

    def ping(self, node: str, timeout: float = 2.0) -> bool:
        """A Celery ping to one worker over the broker (what compose's health check does)."""
        from celery import Celery

        app = Celery(broker=self.environment(WORKER_SERVICE)["AIRFLOW__CELERY__BROKER_URL"])
        try:
            return bool(app.control.ping(destination=[f"celery@{node}"], timeout=timeout))
        finally:
            app.close()

    # -- failures --------------------------------------------------------------------------------

    def kill_worker(self, node: str) -> list[int]:
        """SIGKILL a worker and every process it started, task processes in their own process
        groups included, as if its machine had died. Returns the pids killed."""
        comp = self.components[node]
        assert comp.proc is not None
        pids = {comp.proc.pid}
        # Freeze first, so nothing forks or finishes a send between the listing and the kill.
        while True:
            for pid in pids:
                with _suppress_lookup():
                    os.kill(pid, signal.SIGSTOP)
            more = set().union(*(descendants(p) for p in pids)) - pids
            if not more:
                break
            pids |= more
        for pid in pids:
            with _suppress_lookup():
                os.kill(pid, signal.SIGKILL)
        self.killed.append(node)
        comp.proc.wait(10)
        # SIGKILL is delivered asynchronously: wait until every one is gone (or a zombie).
        deadline = time.monotonic() + 10
        while any(_running(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        return sorted(pids)

    # -- stop ------------------------------------------------------------------------------------

    def stop(self, timeout: float = 45) -> list[str]:
        """SIGTERM every component's process group (workers first: a warm shutdown), SIGKILL what
        is left after `timeout`; returns the components that needed SIGKILL."""
        order = [n for n in self.components if n in self.worker_names] + [
            n for n in self.components if n not in self.worker_names
        ]
        for name in order:
            comp = self.components[name]
            if comp.proc is not None and comp.proc.poll() is None:
                with _suppress_lookup():
                    os.killpg(comp.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        forced = []
        for name in order:
            comp = self.components[name]
            if comp.proc is None:
                continue
            try:
                comp.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                forced.append(name)
                with _suppress_lookup():
                    os.killpg(comp.proc.pid, signal.SIGKILL)
                comp.proc.wait(10)
        # Children that outlived their component (a task process in its own group, say).
        time.sleep(0.5)
        self.leftovers_at_stop = self.leftovers()
        for pid, _cmd in self.leftovers_at_stop:
            with _suppress_lookup():
                os.kill(pid, signal.SIGKILL)
        self.forced_at_stop = forced
        return forced

    def leftovers(self) -> list[tuple[int, str]]:
        """Every process of the run still alive (see `processes_of_run`)."""
        sessions = {c.proc.pid for c in self.components.values() if c.proc is not None}
        return processes_of_run(self.run_id, sessions)

    def close(self) -> None:
        """Stop the processes, remove the run's Redis keys and drop its databases."""
        try:
            self.stop()
        finally:
            try:
                self._clean_redis()
            finally:
                for name in self._created:
                    drop_database(name)
                self._created.clear()

    def _clean_redis(self) -> None:
        """Delete the run's queue and the unacknowledged messages it left (a killed worker's):
        other runs use the same Redis database numbers."""
        if self.executor != "CeleryExecutor" or not reachable(*REDIS_ADDRESS):
            return
        import redis

        r = redis.Redis(host=REDIS_ADDRESS[0], port=REDIS_ADDRESS[1], db=self.addresses.redis[2])
        try:
            r.delete(self.queue, f"_kombu.binding.{self.queue}")
            for tag, raw in r.hscan_iter("unacked"):
                try:
                    message = json.loads(raw)[0]
                    routing_key = message["properties"]["delivery_info"]["routing_key"]
                except (ValueError, KeyError, IndexError, TypeError):
                    continue
                if routing_key == self.queue:
                    r.hdel("unacked", tag)
                    r.zrem("unacked_index", tag)
        finally:
            r.close()


def _running(pid: int) -> bool:
    """The process exists and has not exited (a zombie has exited)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _pg_host_port() -> tuple[str, int]:
    parts = urlsplit(POSTGRES_ADMIN_URL)
    return parts.hostname or "127.0.0.1", parts.port or 5432


def _suppress_lookup() -> contextlib.suppress:
    """Ignore a process that is already gone."""
    return contextlib.suppress(ProcessLookupError, PermissionError)
