"""The cluster itself: airflow-init's work, then each component in its own process group."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lupus_alerts.cluster.common import (
    _NOT_INHERITED,
    AIRFLOW_SERVICES,
    NODE_NAME_ENV,
    POSTGRES_ADMIN_URL,
    REDIS_ADDRESS,
    RUN_MARKER_ENV,
    SIMPLE_AUTH_MANAGER,
    WEB_SERVICE,
    WORKER_SERVICE,
    ClusterError,
    node_name,
)
from lupus_alerts.cluster.compose import (
    ComposeFile,
    LocalAddresses,
    dot_env,
    local_environment,
)
from lupus_alerts.cluster.processes import (
    _running,
    _suppress_lookup,
    descendants,
    processes_of_run,
)
from lupus_alerts.cluster.services import (
    _pg_host_port,
    create_database,
    drop_database,
    free_port,
    reachable,
)


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
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": f"{node_name.__module__}.node_name",
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
