"""The Airflow plugin mounts the app: Airflow's own plugin loader, a real HTTP server, one-click."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest
import requests
from smtp_sink import free_port

from lupus_alerts import store, subscribers, tokens

REPO = Path(__file__).resolve().parents[2]
SERVER = """
import sys, uvicorn
from fastapi import FastAPI
from airflow.api_fastapi.app import init_plugins
app = FastAPI()
init_plugins(app)  # what the Airflow API server does with plugins' fastapi_apps
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


@pytest.mark.airflow
@pytest.mark.slow
def test_plugin_serves_one_click_unsubscribe_under_lupus_alerts_prefix(tmp_path: Path) -> None:
    secret = "plugin-test-secret-0123456789abcdef"
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store.upgrade(url)
    engine = store.make_engine(url)
    s = subscribers.add(engine, email="ana@example.org")
    cfg = tmp_path / "lupus-alerts.yaml"
    cfg.write_text(f"store_url: {url}\n")
    port = free_port()
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "LUPUS_ALERTS_CONFIG": str(cfg),
        "LUPUS_ALERTS_SECRET": secret,
    }
    env.pop("LUPUS_ALERTS_STORE_URL", None)
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], env=env, cwd=tmp_path)
    try:
        base = f"http://127.0.0.1:{port}/lupus-alerts"
        deadline = time.monotonic() + 90
        while True:
            try:
                requests.get(f"{base}/healthz", timeout=2).raise_for_status()
                break
            except requests.RequestException:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.5)
        token = tokens.make_token(s.link_key, "unsubscribe", issued=date.today(), secret=secret)
        page = requests.get(f"{base}/unsubscribe?token={token}", timeout=10)
        assert page.status_code == 200 and "Unsubscribe" in page.text
        assert subscribers.get(engine, s.id).status == "active"
        r = requests.post(
            f"{base}/unsubscribe?token={token}", data={"List-Unsubscribe": "One-Click"}, timeout=10
        )
        assert r.status_code == 200
        assert subscribers.get(engine, s.id).status == "unsubscribed"
        tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
        assert requests.post(f"{base}/unsubscribe?token={tampered}", timeout=10).status_code == 400
    finally:
        proc.terminate()
        proc.wait(10)
        engine.dispose()
