"""The plugin's "Lupus run" tab and dashboard: registered as the UI expects, behind the login,
and routed to `ops_views` for the project's DAGs (data and rendering are tested in
tests/integration/test_ops_views_store.py; under a real Airflow in test_ops_views_scheduler.py)."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from lupus_alerts import pipeline, store

PLUGIN = Path(__file__).resolve().parents[2] / "plugins" / "lupus_alerts_ops.py"
# What Airflow 3.3's UI accepts (api_fastapi/core_api/datamodels/plugins.py: BaseDestinationLiteral)
# and the placeholders it fills in for a dag_run view (its ExternalView component).
DESTINATIONS = {"nav", "dag", "dag_run", "task", "task_instance", "base"}


@pytest.fixture(scope="module")
def plugin() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lupus_alerts_ops_views_under_test", PLUGIN)
    assert spec is not None and spec.loader is not None  # PLUGIN is a .py file that exists
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def client(plugin: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    cfg = tmp_path / "lupus-alerts.yaml"
    cfg.write_text(
        "feeds:\n  - {id: lupus, name: 'Lupus <i>', publisher: SAGE, url: 'https://example.org/l.rss'}\n"
    )
    monkeypatch.setenv("LUPUS_ALERTS_CONFIG", str(cfg))
    engine = pipeline.open_store(pipeline.load_settings(cfg))
    feed = {"items": 4, "kept": 3, "new": 2, "updated": 0, "http_status": 200}
    pipeline.record_run(engine, "manual__1", "feed:lupus", feed)
    plugin.app.dependency_overrides[plugin.REQUIRE_LOGIN] = lambda: None
    # Airflow's metadata is not here: the digest run's dates as the API server would read them.
    plugin.app.dependency_overrides[plugin.dag_run_dates] = lambda dag_id, run_id: (
        {"logical_date": None, "run_after": datetime(2026, 11, 27, 9, tzinfo=UTC)}
        if run_id != "gone"
        else None
    )
    try:
        yield TestClient(plugin.app)
    finally:
        plugin.app.dependency_overrides.clear()
        store._engines.pop(pipeline.load_settings(cfg).database_url, None)
        engine.dispose()


def test_run_tab_and_dashboard_are_registered_for_the_ui(plugin: ModuleType) -> None:
    views = {v["url_route"]: v for v in plugin.LupusAlertsOpsPlugin.external_views}
    assert all(v["destination"] in DESTINATIONS for v in views.values())
    tab = views["lupus-run"]
    assert tab["destination"] == "dag_run" and tab["name"] == "Lupus run"
    assert tab["href"] == "/lupus-ops/run?dag_id={DAG_ID}&run_id={RUN_ID}"
    board = views["lupus-dashboard"]
    assert board["destination"] == "nav" and board["href"] == "/lupus-ops/dashboard"


@pytest.mark.parametrize(
    "path",
    [
        "/run?dag_id=lupus_ingest&run_id=x",
        "/api/run?dag_id=lupus_ingest&run_id=x",
        "/dashboard",
        "/api/dashboard",
    ],
)
def test_every_new_page_refuses_anonymous_requests(plugin: ModuleType, path: str) -> None:
    assert TestClient(plugin.app).get(path).status_code == 401


def test_ingest_run_tab_shows_the_runs_counts(client: TestClient) -> None:
    # The run id as the UI sends it: encodeURIComponent of "manual__1".
    page = client.get("/run?dag_id=lupus_ingest&run_id=" + quote("manual__1", safe=""))
    assert page.status_code == 200 and "Lupus &lt;i&gt;" in page.text
    data = client.get("/api/run", params={"dag_id": "lupus_ingest", "run_id": "manual__1"}).json()
    (src,) = data["sources"]
    assert data["kind"] == "ingest" and (src["fetched"], src["kept"], src["new"], src["known"]) == (
        4,
        3,
        2,
        1,
    )


def test_digest_run_tab_reads_the_ledger_of_the_runs_day(client: TestClient) -> None:
    data = client.get("/api/run", params={"dag_id": "lupus_digest", "run_id": "asset_triggered__x"}).json()
    assert data["kind"] == "digest" and data["day"] == "2026-11-27" and data["counts"]["sent"] == 0
    assert client.get("/run", params={"dag_id": "lupus_digest", "run_id": "x"}).status_code == 200
    assert client.get("/api/run", params={"dag_id": "lupus_digest", "run_id": "gone"}).status_code == 404


def test_other_dags_runs_get_a_plain_message(client: TestClient) -> None:
    page = client.get("/run", params={"dag_id": "<b>other</b>", "run_id": "r"})
    assert page.status_code == 200 and "&lt;b&gt;other&lt;/b&gt; is not a lupus-alerts DAG" in page.text
    assert client.get("/api/run", params={"dag_id": "other", "run_id": "r"}).status_code == 404


def test_dashboard_answers_with_four_inline_charts(client: TestClient) -> None:
    page = client.get("/dashboard")
    assert page.status_code == 200 and page.text.count("<svg ") == 4
    assert client.get("/api/dashboard").json()["feeds"][0]["feed_id"] == "lupus"
