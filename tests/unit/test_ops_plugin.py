"""The operator plugin: feed health page behind Airflow login, registered for the UI."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from lupus_alerts import store

PLUGIN = Path(__file__).resolve().parents[2] / "plugins" / "lupus_alerts_ops.py"


@pytest.fixture(scope="module")
def plugin() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lupus_alerts_ops_under_test", PLUGIN)
    assert spec is not None and spec.loader is not None  # PLUGIN is a .py file that exists
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    cfg = tmp_path / "lupus-alerts.yaml"
    cfg.write_text(
        "feeds:\n"
        "  - {id: lupus, name: Lupus, publisher: SAGE, url: 'https://example.org/lupus.rss'}\n"
        "  - {id: lsm, name: 'Lupus Science & Medicine', publisher: BMJ, url: 'https://example.org/lsm.rss'}\n"
    )
    monkeypatch.setenv("LUPUS_ALERTS_CONFIG", str(cfg))
    url = f"sqlite:///{tmp_path / 'data' / 'lupus-alerts.db'}"
    store.upgrade(url)
    eng = store.make_engine(url)
    now = store.utcnow()
    with eng.begin() as c:
        c.execute(
            sa.insert(store.feed_state).values(
                feed_id="lsm",
                url="https://example.org/lsm.rss",
                last_status=503,
                last_error="HTTP 503 <script>",
                last_polled_at=now,
                consecutive_failures=4,
            )
        )
        c.execute(
            sa.insert(store.ingest_runs).values(
                run_id="manual__x", source="feed:lsm", stats={}, error="HTTP 503", finished_at=now
            )
        )
    eng.dispose()
    return url


def test_pages_refuse_anonymous_requests(plugin: ModuleType) -> None:
    client = TestClient(plugin.app)
    assert client.get("/").status_code == 401
    assert client.get("/api/health").status_code == 401


def test_logged_in_user_sees_each_feed_its_failures_and_failed_runs(
    plugin: ModuleType, configured: str
) -> None:
    plugin.app.dependency_overrides[plugin.REQUIRE_LOGIN] = lambda: None
    try:
        client = TestClient(plugin.app)
        page = client.get("/")
        data = client.get("/api/health").json()
    finally:
        plugin.app.dependency_overrides.clear()
    assert page.status_code == 200
    assert "Lupus Science &amp; Medicine" in page.text and "never polled" in page.text
    assert "<script>" not in page.text  # errors are escaped
    by_id = {f["feed_id"]: f for f in data["feeds"]}
    assert by_id["lsm"]["status"] == "failing" and by_id["lsm"]["failed_runs_in_a_row"] == 1
    assert by_id["lupus"]["status"] == "never polled"
    assert data["runs"] == [
        {
            "run_id": "manual__x",
            "finished_at": data["runs"][0]["finished_at"],
            "new_papers": [],
            "failed": ["feed:lsm"],
        }
    ]


def test_plugin_mounts_the_app_and_links_it_in_the_ui(plugin: ModuleType) -> None:
    p = plugin.LupusAlertsOpsPlugin
    (mount,) = p.fastapi_apps
    assert mount["app"] is plugin.app and mount["url_prefix"] == "/lupus-ops"
    assert not mount["url_prefix"].startswith(("/api/v2", "/ui", "/execution", "/auth"))
    (view,) = [v for v in p.external_views if v["url_route"] == "lupus-feed-health"]
    assert view["href"] == "/lupus-ops/" and view["destination"] == "nav"
