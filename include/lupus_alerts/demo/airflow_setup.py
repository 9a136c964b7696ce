"""Airflow for the demo and for live runs: the environment (demo values never reach a live run),
migrations, and each DAG run once through `dag.test()` in its own process."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from lupus_alerts.demo.common import (
    ALERT_SENDER_VAR_ENV,
    DEMO_OPERATOR_EMAIL,
    DEMO_SECRET_FILE,
    NCBI_POOL_SLOTS,
    REPO,
    DemoError,
    LiveModeRefused,
)

# -- Airflow -----------------------------------------------------------------------------------


def live_env(
    airflow_home: Path,
    config_path: Path,
    *,
    demo_root: Path = REPO / ".demo",
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment for a LIVE run (`make run`): the operator's own secret and operator
    address, the configuration as written, nothing from the demo.

    Raises LiveModeRefused, listing every problem with its fix (`config.live_problems`: the
    link-signing secret missing, a placeholder or the demo's; no operator address, or a
    placeholder; placeholder addresses in the configuration). A ConfigError propagates.
    """
    from lupus_alerts.config import OPERATOR_EMAIL_ENV, OPERATOR_EMAIL_VAR_ENV, live_problems
    from lupus_alerts.pipeline import load_settings

    environ = os.environ if environ is None else environ
    settings = load_settings(config_path)
    demo_file = demo_root / DEMO_SECRET_FILE
    demo = demo_file.read_text(encoding="utf-8").strip() if demo_file.exists() else None
    problems = live_problems(settings, environ, demo_secret=demo)
    if problems:
        raise LiveModeRefused(problems)
    env = _base_env(airflow_home, config_path, environ)
    env.pop("LUPUS_ALERTS_RETRY_DELAY_S", None)  # the DAGs' own back-off, not a demo's
    env[OPERATOR_EMAIL_VAR_ENV] = (environ.get(OPERATOR_EMAIL_VAR_ENV) or environ[OPERATOR_EMAIL_ENV]).strip()
    # Alerts come from the digests' own sender unless one is given (the DAGs' fallback is a
    # placeholder address a relay would refuse).
    env.setdefault(ALERT_SENDER_VAR_ENV, parseaddr(settings.digest.sender)[1])
    return env


def _base_env(airflow_home: Path, config_path: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """What every run's Airflow needs (a copy of `environ` plus the project's paths); no demo value."""
    env = dict(environ)
    env.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)
    env.update(
        AIRFLOW_HOME=str(airflow_home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(REPO / "plugins"),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{airflow_home.resolve() / 'airflow.db'}",
        LUPUS_ALERTS_CONFIG=str(config_path.resolve()),
        PYTHONUNBUFFERED="1",
        # `airflow standalone` starts its components as `airflow ...` from PATH: use this venv's.
        PATH=os.pathsep.join([str(Path(sys.executable).parent), environ.get("PATH", "")]),
    )
    return env


def demo_secret(root: Path) -> str:
    """The demo's link-signing secret: random, made once per demo folder (`root/link-secret`,
    readable by its owner only), so links in the demo's outbox keep working across runs and no
    secret that can sign a link is ever in the repository."""
    path = root / DEMO_SECRET_FILE
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    root.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(value + "\n")
    return value


def airflow_env(
    airflow_home: Path,
    config_path: Path,
    *,
    operator_smtp_port: int | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment Airflow and the tasks run in for the DEMO (`make demo`, `make up`, the
    end-to-end tests): a copy of os.environ plus the demo's settings, its own secret (made in
    the config's folder), its operator address and short retry delays. Never for a live run:
    that is `live_env`."""
    env = _base_env(airflow_home, config_path, os.environ)
    env.update(
        LUPUS_ALERTS_SECRET=demo_secret(config_path.resolve().parent),
        # Retries stay at 2+ but wait seconds, not minutes, in a demo.
        LUPUS_ALERTS_RETRY_DELAY_S="1",
        AIRFLOW_VAR_LUPUS_ALERTS_OPERATOR_EMAIL=DEMO_OPERATOR_EMAIL,  # the local catcher
    )
    if operator_smtp_port is not None:
        env["AIRFLOW_CONN_SMTP_DEFAULT"] = json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": operator_smtp_port,
                "extra": {"disable_ssl": True, "disable_tls": True, "from_email": "airflow@demo.example.org"},
            }
        )
    env.update(extra or {})
    return env


def _airflow(env: Mapping[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    cmd = [str(Path(sys.executable).with_name("airflow")), *args]
    out = subprocess.run(cmd, env=dict(env), capture_output=True, text=True, timeout=timeout, check=False)
    if out.returncode != 0:
        raise DemoError(f"`airflow {' '.join(args)}` failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return out


def init_airflow(env: Mapping[str, str]) -> None:
    """Migrate Airflow's metadata DB (once: a stamp file remembers) and set the `ncbi` pool."""
    home = Path(env["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    stamp = home / ".lupus-alerts-initialised"
    if not stamp.exists() or not (home / "airflow.db").exists():
        _airflow(env, "db", "migrate")
        _airflow(env, "pools", "set", "ncbi", str(NCBI_POOL_SLOTS), "NCBI E-utilities (rate-limited)")
        stamp.write_text(datetime.now(UTC).isoformat(), encoding="utf-8")


def run_dag(
    dag_id: str, env: Mapping[str, str], *, logical_date: datetime | None, log_path: Path
) -> dict[str, Any]:
    """Run one DAG with `dag.test()` in a fresh process; returns its run id, state and task states."""
    return run_dags([(dag_id, logical_date)], env, log_path=log_path)[0]


def run_dags(
    runs: Sequence[tuple[str, datetime | None]], env: Mapping[str, str], *, log_path: Path
) -> list[dict[str, Any]]:
    """Run DAGs one after the other with `dag.test()` in one fresh process, logging to `log_path`.

    A separate process keeps Airflow's global settings (AIRFLOW_HOME, the ORM) out of the
    caller, and its log out of the console; several runs share one process because Airflow's
    start-up, not the runs, is most of the time. Returns one result per run: dag_id, run_id,
    state and the states of each task's instances. Raises DemoError if a run could not be made.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "lupus_alerts.demo", "_dagtest"]
    args += [f"{dag_id}@{when.isoformat() if when else ''}" for dag_id, when in runs]
    with log_path.open("w", encoding="utf-8") as log:
        proc = subprocess.run(
            args, env=dict(env), stdout=log, stderr=subprocess.STDOUT, check=False, timeout=900
        )
    text = log_path.read_text(encoding="utf-8", errors="replace")
    marker = "LUPUS_DAGTEST_RESULT "
    results = [json.loads(ln.removeprefix(marker)) for ln in text.splitlines() if ln.startswith(marker)]
    if proc.returncode != 0 or len(results) != len(runs):
        raise DemoError(f"dag.test failed (exit {proc.returncode}); see {log_path}:\n{text[-3000:]}")
    return results


def _dagtest_main(specs: Sequence[str]) -> int:
    """Child process of `run_dags`: dag.test() each "dag_id@logical_date" and print its result."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        print(f"import errors: {bag.import_errors}", file=sys.stderr)
        return 1
    for spec in specs:
        dag_id, _, when = spec.partition("@")
        dr = bag.dags[dag_id].test(logical_date=datetime.fromisoformat(when) if when else None)
        tasks: dict[str, list[str]] = {}
        for ti in sorted(dr.get_task_instances(), key=lambda t: (t.task_id, t.map_index)):
            tasks.setdefault(ti.task_id, []).append(str(ti.state))
        result = {"dag_id": dag_id, "run_id": dr.run_id, "state": str(dr.state), "tasks": tasks}
        print("LUPUS_DAGTEST_RESULT " + json.dumps(result), flush=True)
    return 0
