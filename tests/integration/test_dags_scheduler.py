"""A real Airflow: `airflow standalone` (scheduler, dag-processor, api-server, triggerer, local
executor) on PostgreSQL metadata, triggered as in production.

The ingest is triggered through the REST API (a manual run: no data interval, so the window
comes from the store's watermark), the `lupus_alerts://papers` asset event it emits makes the
scheduler start the digest DAG, and the digests arrive at an SMTP server on localhost. The
fixture stops Airflow by process group and checks that nothing is left running.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from lupus_alerts import demo, pipeline

pytestmark = [pytest.mark.airflow, pytest.mark.slow, pytest.mark.postgres]

# Far-off schedules: only the triggered run and the asset event may start runs during the test.
SCHEDULE = {"ingest_cron": "0 5 1 1 *", "digest_fallback_cron": "0 9 1 1 *"}
START_TIMEOUT_S = 240
RUN_TIMEOUT_S = 300


class Api:
    """A logged-in client for the Airflow REST API (SimpleAuthManager's generated password)."""

    def __init__(self, base: str, token: str) -> None:
        self.base = base
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def get(self, path: str) -> requests.Response:
        return self.session.get(self.base + path, timeout=30)

    def post(self, path: str, body: dict[str, Any]) -> requests.Response:
        return self.session.post(self.base + path, json=body, timeout=30)

    def patch(self, path: str, body: dict[str, Any]) -> requests.Response:
        return self.session.patch(self.base + path, json=body, timeout=30)


def _wait(
    what: str, check: Callable[..., Any], timeout: float, proc: subprocess.Popen[Any], log: Path
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"airflow standalone exited ({proc.returncode}) waiting for {what}:\n{_tail(log)}")
        try:
            value = check()
        except (requests.RequestException, OSError, ValueError, KeyError):
            value = None
        if value:
            return value
        time.sleep(2)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}:\n{_tail(log)}")


def _tail(log: Path, n: int = 4000) -> str:
    return log.read_text(encoding="utf-8", errors="replace")[-n:] if log.exists() else ""


# the API logged in, the sample servers, the config file, Airflow's log
Standalone = tuple[Api, demo.DemoServers, Path, Path]


@pytest.fixture
def standalone(pg_url: str, tmp_path: Path) -> Iterator[Standalone]:
    today = datetime.now(UTC).date()
    with demo.sample_servers(today) as servers:
        config = demo.write_demo_config(tmp_path, servers, mail_mode="smtp", schedule=SCHEDULE)
        port = demo.free_port()
        home = tmp_path / "airflow_home"
        env = demo.airflow_env(
            home,
            config,
            operator_smtp_port=servers.operator_smtp_port,
            extra={
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": pg_url,
                "AIRFLOW__API__PORT": str(port),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{port}/execution/",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
                "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            },
        )
        demo.init_airflow(env)
        demo.add_demo_subscribers(config, today)
        log = tmp_path / "standalone.log"
        proc = demo.start_standalone(env, log)
        try:
            base = f"http://localhost:{port}"
            _wait(
                "the API server",
                lambda: requests.get(base + "/api/v2/version", timeout=5).ok,
                START_TIMEOUT_S,
                proc,
                log,
            )
            pw_file = home / "simple_auth_manager_passwords.json.generated"
            passwords = _wait(
                "the login", lambda: json.loads(pw_file.read_text()), START_TIMEOUT_S, proc, log
            )
            user, password = next(iter(passwords.items()))
            resp = requests.post(
                base + "/auth/token", json={"username": user, "password": password}, timeout=30
            )
            assert resp.status_code in (200, 201), resp.text
            yield Api(base, resp.json()["access_token"]), servers, config, log
        finally:
            demo.stop_process_group(proc)
            assert proc.poll() is not None
            assert not demo.group_alive(proc.pid), "processes of airflow standalone outlived it"


def test_triggered_ingest_runs_the_digest_through_its_asset_and_mail_arrives(standalone: Standalone) -> None:
    api, servers, config, log = standalone
    proc_guard = _ProcGuard(log)
    for dag_id in ("lupus_ingest", "lupus_digest"):
        proc_guard.wait(f"{dag_id} parsed", lambda d=dag_id: api.get(f"/api/v2/dags/{d}").ok)
        assert api.patch(f"/api/v2/dags/{dag_id}", {"is_paused": False}).ok

    resp = api.post("/api/v2/dags/lupus_ingest/dagRuns", {"logical_date": None})
    assert resp.ok, resp.text
    run_id = resp.json()["dag_run_id"]

    def finished(dag_id: str, rid: str) -> dict[str, Any] | None:
        run = api.get(f"/api/v2/dags/{dag_id}/dagRuns/{rid}").json()
        return run if run["state"] in ("success", "failed") else None

    ingest = proc_guard.wait("the ingest run", lambda: finished("lupus_ingest", run_id))
    assert ingest["state"] == "success", _tail(log)

    def digest_run() -> dict[str, Any] | None:
        runs = api.get("/api/v2/dags/lupus_digest/dagRuns").json()["dag_runs"]
        done = [r for r in runs if r["run_type"] == "asset_triggered" and r["state"] in ("success", "failed")]
        return done[0] if done else None

    digest = proc_guard.wait("the asset-triggered digest run", digest_run)
    assert digest["state"] == "success", _tail(log)
    events = api.get(f"/api/v2/dags/lupus_digest/dagRuns/{digest['dag_run_id']}/upstreamAssetEvents").json()
    extra = events["asset_events"][0]["extra"]
    assert extra["run_id"] == run_id and extra["new_papers"] > 0

    # The moved feed's mapped task is red; the other journals are green.
    tis = api.get(f"/api/v2/dags/lupus_ingest/dagRuns/{run_id}/taskInstances?task_id=poll_feed").json()
    states = sorted(ti["state"] for ti in tis["task_instances"] if ti["task_id"] == "poll_feed")
    assert states == sorted(["failed"] + ["success"] * len(demo.DEMO_FEEDS))
    # Each journal's grid label says what its poll did (issue 14, defect 9).
    labels = {ti["rendered_map_index"] for ti in tis["task_instances"] if ti["task_id"] == "poll_feed"}
    assert f"{demo.MOVED_FEED[1]} · HTTP 404" in labels, labels
    for _fid, name, *_ in demo.DEMO_FEEDS:
        (label,) = [lb for lb in labels if lb.startswith(f"{name} · ")]
        assert re.fullmatch(rf"{re.escape(name)} · (\d+ items?, \d+ new|not modified)", label), label
    # One XCom per task, not one per key of its summary (defect 1).
    xcoms = api.get(
        f"/api/v2/dags/lupus_ingest/dagRuns/{run_id}/taskInstances/poll_feed/xcomEntries?map_index=0"
    ).json()
    assert [x["key"] for x in xcoms["xcom_entries"]] == ["return_value"], xcoms
    # The digest report reads the mapped results without asking past their end (defect 10).
    report_log = api.get(
        f"/api/v2/dags/lupus_digest/dagRuns/{digest['dag_run_id']}/taskInstances/report_digests/logs/1"
        "?full_content=true"
    )
    assert report_log.ok, report_log.text
    assert "XCom not found" not in report_log.text and "digest report" in report_log.text
    assert "XCom not found" not in log.read_text(encoding="utf-8", errors="replace")  # the scheduler's

    # The operator page is mounted on the API server and needs a login.
    page = api.get("/lupus-ops/")
    assert page.ok and demo.MOVED_FEED[1] in page.text and "failing" in page.text
    assert requests.get(api.base + "/lupus-ops/", timeout=30).status_code == 401

    settings = pipeline.load_settings(config)
    engine = pipeline.open_store(settings)
    digests = [m for m in servers.mail if b"List-Unsubscribe" in m.content]
    assert sorted(m.rcpt_tos[0] for m in digests) == sorted(s["email"] for s in demo.DEMO_SUBSCRIBERS)
    sources = {r["source"] for r in pipeline.run_records(engine, run_id)}
    assert "pubmed" in sources and "announce" in sources


class _ProcGuard:
    """Waits with a timeout, showing Airflow's log when something never happens."""

    def __init__(self, log: Path) -> None:
        self.log = log

    def wait(self, what: str, check: Callable[..., Any]) -> Any:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                value = check()
            except (requests.RequestException, ValueError, KeyError):
                value = None
            if value:
                return value
            time.sleep(2)
        pytest.fail(f"timed out waiting for {what}:\n{_tail(self.log)}")
