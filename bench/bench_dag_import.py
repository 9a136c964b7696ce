"""DAG import time per file: what the dag-processor pays each time it parses a DAG file.

Each file is imported in a fresh interpreter that has already imported Airflow's task SDK and the
SMTP notifier (a parser process pays those once), `REPEATS` times; the median and the worst are
reported. The budget is 1 s per file (the integrity test fails at 2 s).

    .venv/bin/python -m bench.bench_dag_import
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.report import write_section

REPO = Path(__file__).resolve().parent.parent
DAGS = REPO / "dags"
REPEATS = 5
BUDGET_S = 1.0
COMMAND = ".venv/bin/python -m bench.bench_dag_import"

_PROBE = """
import importlib.util, sys, time
t0 = time.perf_counter()
import airflow.sdk, airflow.providers.smtp.notifications.smtp  # noqa: F401
t1 = time.perf_counter()
spec = importlib.util.spec_from_file_location("dag_under_test", sys.argv[1])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
print(f"{t1 - t0:.4f} {time.perf_counter() - t1:.4f}")
"""


def measure(path: Path, home: Path) -> tuple[list[float], list[float]]:
    """(Airflow SDK import seconds, DAG file import seconds) over REPEATS fresh processes."""
    env = dict(os.environ)
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(DAGS),
        LUPUS_ALERTS_CONFIG=str(REPO / "lupus-alerts.yaml"),
    )
    sdk, dag = [], []
    for _ in range(REPEATS):
        out = subprocess.run(
            [sys.executable, "-c", _PROBE, str(path)], env=env, capture_output=True, text=True, check=True
        )
        a, b = out.stdout.split()[-2:]
        sdk.append(float(a))
        dag.append(float(b))
    return sdk, dag


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as home:
        for path in sorted(DAGS.glob("*.py")):
            sdk, dag = measure(path, Path(home))
            med, worst = statistics.median(dag), max(dag)
            verdict = "ok" if worst < BUDGET_S else "OVER BUDGET"
            print(
                f"{path.name}: median {med * 1000:.0f} ms, worst {worst * 1000:.0f} ms ({verdict}); "
                f"Airflow SDK import (once per parser) median {statistics.median(sdk) * 1000:.0f} ms"
            )
            rows.append(
                f"| `dags/{path.name}` | {med * 1000:.0f} ms | {worst * 1000:.0f} ms | "
                f"{statistics.median(sdk) * 1000:.0f} ms | {verdict} |"
            )
    body = (
        f"Each DAG file imported {REPEATS} times, each in a fresh interpreter after Airflow's task SDK "
        f"and the SMTP notifier (paid once per parser process, shown separately). Budget: "
        f"{BUDGET_S:.0f} s per file.\n\n"
        "| file | median | worst | SDK import (separate) | budget |\n|---|---|---|---|---|\n"
        + "\n".join(rows)
    )
    write_section("dag_import", "DAG import time per file", body, COMMAND)


if __name__ == "__main__":
    main()
