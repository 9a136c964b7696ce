"""What every part of the local cluster shares: where the compose file is, the services, names."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

# include/lupus_alerts/cluster/common.py -> the repository
REPO = Path(__file__).resolve().parents[3]
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
