"""The operator views under a real Airflow (`airflow standalone`, as in test_dags_scheduler.py).

An ingest run is triggered through the REST API; its asset event starts the digest run. Then:
the "Lupus run" tab's URL answers with each run's counts (the ingest's per source and its new
papers; the digest's sent count, which matches the mail the SMTP server received); the
dashboard answers 401 without a login and 200 with one; and headless Chromium, logged in with
the same JWT, opens the tab and the dashboard inside Airflow's UI and takes the screenshots
that docs/operations.md shows (copied to docs/img/ when LUPUS_SAVE_SCREENSHOTS=1).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from test_dags_scheduler import Api, Standalone, _ProcGuard, _tail, standalone  # noqa: F401  (standalone: the fixture)
from webdriver import CHROMEDRIVER, CHROMIUM, Browser

from lupus_alerts import demo

pytestmark = [pytest.mark.airflow, pytest.mark.slow, pytest.mark.postgres]

REPO = Path(__file__).resolve().parents[2]
DOCS_IMG = REPO / "docs" / "img"


def run_tab(api: Api, dag_id: str, run_id: str, *, json: bool) -> requests.Response:
    # As the UI builds the tab's URL: {DAG_ID} and {RUN_ID} URL-encoded into the plugin's href.
    path = "/lupus-ops/api/run" if json else "/lupus-ops/run"
    return api.get(f"{path}?dag_id={quote(dag_id, safe='')}&run_id={quote(run_id, safe='')}")


def test_run_tab_and_dashboard_under_a_real_scheduler(standalone: Standalone, tmp_path: Path) -> None:  # noqa: F811
    api, servers, _config, log = standalone
    guard = _ProcGuard(log)
    for dag_id in ("lupus_ingest", "lupus_digest"):
        guard.wait(f"{dag_id} parsed", lambda d=dag_id: api.get(f"/api/v2/dags/{d}").ok)
        assert api.patch(f"/api/v2/dags/{dag_id}", {"is_paused": False}).ok
    resp = api.post("/api/v2/dags/lupus_ingest/dagRuns", {"logical_date": None})
    assert resp.ok, resp.text
    ingest_id = resp.json()["dag_run_id"]

    def finished(dag_id: str, rid: str) -> dict[str, Any] | None:
        run = api.get(f"/api/v2/dags/{dag_id}/dagRuns/{rid}").json()
        return run if run["state"] in ("success", "failed") else None

    assert guard.wait("the ingest run", lambda: finished("lupus_ingest", ingest_id))["state"] == "success"

    def digest_run() -> dict[str, Any] | None:
        runs = api.get("/api/v2/dags/lupus_digest/dagRuns").json()["dag_runs"]
        done = [r for r in runs if r["run_type"] == "asset_triggered" and r["state"] in ("success", "failed")]
        return done[0] if done else None

    digest = guard.wait("the asset-triggered digest run", digest_run)
    assert digest["state"] == "success", _tail(log)
    digest_id = digest["dag_run_id"]
    extra = api.get(f"/api/v2/dags/lupus_digest/dagRuns/{digest_id}/upstreamAssetEvents").json()[
        "asset_events"
    ][0]["extra"]

    # -- the ingest run's tab: per source, and its new papers per topic
    data = run_tab(api, "lupus_ingest", ingest_id, json=True).json()
    assert data["kind"] == "ingest" and data["run_id"] == ingest_id
    sources = {s["source"]: s for s in data["sources"]}
    moved = sources[f"feed:{demo.MOVED_FEED[0]}"]
    assert moved["failed"] and "404" in moved["error"]
    assert sources["pubmed"]["fetched"] > 0 and not sources["pubmed"]["failed"]
    for fid, *_ in demo.DEMO_FEEDS:
        assert not sources[f"feed:{fid}"]["failed"] and sources[f"feed:{fid}"]["fetched"] > 0
    assert data["new_papers"] == extra["new_papers"] > 0
    per_topic = {g["label"]: len(g["papers"]) for g in data["topics"]}
    # the asset event's extra is flat: "new in <topic>" per topic
    topics_in_event = {k.removeprefix("new in "): v for k, v in extra.items() if k.startswith("new in ")}
    assert {k: v for k, v in per_topic.items() if k} == topics_in_event
    page = run_tab(api, "lupus_ingest", ingest_id, json=False)
    assert page.status_code == 200
    assert f"<span>new lupus papers</span><b>{extra['new_papers']}</b>" in page.text
    assert demo.MOVED_FEED[1] in page.text and "https://doi.org/" in page.text

    # -- the digest run's tab: what the ledger says was sent is what the SMTP server received
    digests = [m for m in servers.mail if b"List-Unsubscribe" in m.content]
    data = run_tab(api, "lupus_digest", digest_id, json=True).json()
    assert data["kind"] == "digest" and data["counts"]["sent"] == len(digests) > 0
    assert data["counts"]["failed"] == data["counts"]["bounced"] == data["counts"]["unconfirmed"] == 0
    page = run_tab(api, "lupus_digest", digest_id, json=False)
    assert page.status_code == 200 and f"<span>sent</span><b>{len(digests)}</b>" in page.text

    # -- the dashboard: Airflow's login, and today's papers and digests in its series
    assert requests.get(api.base + "/lupus-ops/dashboard", timeout=30).status_code == 401
    assert requests.get(api.base + "/lupus-ops/api/dashboard", timeout=30).status_code == 401
    board = api.get("/lupus-ops/dashboard")
    assert board.status_code == 200 and board.text.count("<svg ") == 4
    series = api.get("/lupus-ops/api/dashboard").json()
    today = series["days"][-1]
    assert sum(s.get(today, 0) for s in series["papers_per_source"].values()) > 0
    assert series["digests"]["sent"].get(today) == len(digests)
    assert series["feeds"][0]["feed_id"] == demo.MOVED_FEED[0]  # the failing feed comes first

    # -- in Airflow's UI, as an operator sees them
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("chromium and chromium-driver are not installed (.ci/run installs them)")
    token = api.session.headers["Authorization"].split(" ", 1)[1]
    shots = {
        "ops-run-tab.png": (
            f"/dags/lupus_ingest/runs/{quote(ingest_id, safe='')}/plugin/lupus-run",
            "Per source",
        ),
        "ops-run-tab-digest.png": (
            f"/dags/lupus_digest/runs/{quote(digest_id, safe='')}/plugin/lupus-run",
            "Needs attention",
        ),
        "ops-dashboard.png": ("/plugin/lupus-dashboard", "Journal feeds"),
    }
    with Browser(tmp_path / "chromium-profile", width=1440, height=1200) as browser:
        browser.get(api.base + "/api/v2/version")  # the origin, to set the UI's login cookie on
        browser.add_cookie("_token", token)
        for name, (path, needle) in shots.items():
            # The dashboard is long: tall enough to show the feed freshness chart as well.
            browser.set_size(1440, 2000 if "dashboard" in name else 1200)
            browser.get(api.base + path)
            browser.wait_for_iframe_text(needle)
            png = tmp_path / name
            browser.screenshot(png)
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
            if os.environ.get("LUPUS_SAVE_SCREENSHOTS"):
                DOCS_IMG.mkdir(parents=True, exist_ok=True)
                shutil.copy(png, DOCS_IMG / name)
