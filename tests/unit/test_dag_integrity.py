"""Every DAG file imports fast and cleanly, and every DAG carries what an operator needs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # Airflow is imported once the fixture has set its environment
    from airflow.dag_processing.dagbag import DagBag

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
DAG_FILES = sorted(p for p in DAGS.glob("*.py") if not p.name.startswith("_"))
IMPORT_BUDGET_S = 2.0


def _airflow_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        AIRFLOW_HOME=str(tmp_path / "airflow_home"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(DAGS),
        # A config that does not exist: parsing must fall back to defaults, never fail.
        LUPUS_ALERTS_CONFIG=str(tmp_path / "missing.yaml"),
    )
    env.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)
    return env


# The probe pre-imports Airflow and the SDK (paid once per parser process in production) and then
# times only the DAG file's own import, which is what the dag-processor pays per parse.
_PROBE = """
import importlib.util, sys, time
import airflow.sdk, airflow.providers.smtp.notifications.smtp  # noqa: F401
path = sys.argv[1]
t0 = time.perf_counter()
spec = importlib.util.spec_from_file_location("dag_under_test", path)
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
print(f"{time.perf_counter() - t0:.4f}")
"""


@pytest.mark.parametrize("path", DAG_FILES, ids=[p.name for p in DAG_FILES])
def test_dag_file_imports_in_a_fresh_process_within_budget(path: Path, tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(path)],
        env=_airflow_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    seconds = float(out.stdout.strip().splitlines()[-1])
    assert seconds < IMPORT_BUDGET_S, f"{path.name} took {seconds:.2f} s to import"


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DagBag]:
    env = _airflow_env(tmp_path_factory.mktemp("dagbag"))
    old = dict(os.environ)
    os.environ.update({k: v for k, v in env.items() if k.startswith(("AIRFLOW", "LUPUS"))})
    try:
        from airflow.dag_processing.dagbag import DagBag

        t0 = time.perf_counter()
        bag = DagBag(dag_folder=str(DAGS))
        bag.load_seconds = time.perf_counter() - t0  # type: ignore[attr-defined]
        yield bag
    finally:
        os.environ.clear()
        os.environ.update(old)


def test_dagbag_has_no_import_errors_and_both_dags(dagbag: DagBag) -> None:
    assert dagbag.import_errors == {}
    assert {"lupus_ingest", "lupus_digest"} <= set(dagbag.dags)


def test_every_dag_has_tags_owner_doc_and_retries(dagbag: DagBag) -> None:
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.doc_md and "When it fails" in dag.doc_md, f"{dag_id} has no runbook in doc_md"
        for t in dag.tasks:
            assert t.owner and t.owner != "airflow", f"{dag_id}.{t.task_id} has no owner"
            assert t.retries is not None and t.retries >= 2, f"{dag_id}.{t.task_id} retries {t.retries}"
            assert t.retry_exponential_backoff, f"{dag_id}.{t.task_id} has no back-off"
            assert t.execution_timeout is not None, f"{dag_id}.{t.task_id} has no execution_timeout"
            assert t.doc_md, f"{dag_id}.{t.task_id} has no docstring"
            assert t.on_failure_callback, f"{dag_id}.{t.task_id} notifies nobody on failure"


def test_ingest_has_a_real_data_interval_and_runs_one_at_a_time(dagbag: DagBag) -> None:
    from airflow.sdk import CronDataIntervalTimetable

    dag = dagbag.dags["lupus_ingest"]
    assert isinstance(dag.timetable, CronDataIntervalTimetable)
    assert dag.max_active_runs == 1
    assert dag.catchup is False
    assert dag.get_task("search_pubmed").pool == dag.get_task("fetch_pubmed").pool == "ncbi"
    assert dag.get_task("fetch_pubmed").upstream_task_ids == {"resolve_window", "search_pubmed"}
    outlets = dag.get_task("classify_and_announce").outlets
    assert [a.uri for a in outlets] == ["lupus_alerts://papers"]


def test_digest_runs_on_the_papers_asset_with_a_time_fallback(dagbag: DagBag) -> None:
    from airflow.sdk import AssetOrTimeSchedule

    dag = dagbag.dags["lupus_digest"]
    assert isinstance(dag.timetable, AssetOrTimeSchedule)
    assert "lupus_alerts://papers" in repr(dag.timetable.asset_condition)
    assert "0 9 * * *" in repr(dag.timetable.timetable)


def test_schedule_comes_from_the_config_file(tmp_path: Path) -> None:
    cfg = tmp_path / "lupus-alerts.yaml"
    cfg.write_text('schedule:\n  ingest_cron: "30 6 * * *"\n  digest_fallback_cron: "15 10 * * *"\n')
    probe = (
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"b = DagBag(dag_folder={str(DAGS)!r})\n"
        "print(repr(b.dags['lupus_ingest'].timetable), '|', repr(b.dags['lupus_digest'].timetable))\n"
    )
    env = _airflow_env(tmp_path) | {"LUPUS_ALERTS_CONFIG": str(cfg)}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "30 6 * * *" in out.stdout and "15 10 * * *" in out.stdout


def test_every_task_pushes_one_xcom_not_one_per_key(dagbag: DagBag) -> None:
    # A task annotated `-> dict[...]` gets multiple_outputs inferred, so each key of its summary
    # became an XCom of its own (19 for one poll_feed): docs/operations.md promises one.
    for dag_id, dag in dagbag.dags.items():
        for t in dag.tasks:
            assert getattr(t, "multiple_outputs", False) is False, (
                f"{dag_id}.{t.task_id} pushes one XCom per key"
            )
