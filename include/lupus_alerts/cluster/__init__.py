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

Modules: `common`, `compose` (the file and its local environment), `services` (PostgreSQL, Redis,
ports), `processes`, `harness` (`Cluster`).
"""

from __future__ import annotations

from lupus_alerts.cluster.common import (
    AIRFLOW_SERVICES,
    COMPOSE_FILE,
    LOCAL_ADDITIONS,
    LOCAL_DIFFERENCES,
    NODE_NAME_ENV,
    POSTGRES_ADMIN_URL,
    REDIS_ADDRESS,
    REPO,
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
    interpolate,
    local_environment,
    localize,
)
from lupus_alerts.cluster.harness import (
    Api,
    Cluster,
    Component,
)
from lupus_alerts.cluster.processes import (
    descendants,
    processes_of_run,
)
from lupus_alerts.cluster.services import (
    create_database,
    drop_database,
    free_port,
    reachable,
    unavailable_reason,
)

__all__ = [
    "AIRFLOW_SERVICES",
    "COMPOSE_FILE",
    "LOCAL_ADDITIONS",
    "LOCAL_DIFFERENCES",
    "NODE_NAME_ENV",
    "POSTGRES_ADMIN_URL",
    "REDIS_ADDRESS",
    "REPO",
    "RUN_MARKER_ENV",
    "SIMPLE_AUTH_MANAGER",
    "WEB_SERVICE",
    "WORKER_SERVICE",
    "Api",
    "Cluster",
    "ClusterError",
    "Component",
    "ComposeFile",
    "LocalAddresses",
    "create_database",
    "descendants",
    "dot_env",
    "drop_database",
    "free_port",
    "interpolate",
    "local_environment",
    "localize",
    "node_name",
    "processes_of_run",
    "reachable",
    "unavailable_reason",
]
