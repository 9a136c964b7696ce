"""The public web app is its own service: `lupus-alerts web serve` (uvicorn, several worker
processes) serves one-click unsubscribe over a real socket, and Airflow's API server mounts only
the operator views (Airflow's own plugin loader; nothing public under the API server)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest
import requests
from smtp_sink import free_port

from lupus_alerts import cluster, store, subscribers, tokens

REPO = Path(__file__).resolve().parents[2]
AIRFLOW_API_SERVER = """
import sys, uvicorn
from fastapi import FastAPI
from airflow.api_fastapi.app import init_plugins
app = FastAPI()
init_plugins(app)  # what the Airflow API server does with plugins' fastapi_apps
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


def _wait_ok(url: str, proc: subprocess.Popen[bytes], timeout: float = 90) -> requests.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            resp = requests.get(url, timeout=2)
            if resp.status_code < 500:
                return resp
        except requests.RequestException:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            raise AssertionError(f"{url} did not answer (exit {proc.poll()})")
        time.sleep(0.3)


@pytest.mark.slow
def test_web_serve_runs_several_workers_and_serves_one_click_unsubscribe(tmp_path: Path) -> None:
    secret = "web-serve-test-secret-0123456789abcdef"
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store.upgrade(url)
    engine = store.make_engine(url)
    s = subscribers.add(engine, email="ana@example.org")
    cfg = tmp_path / "lupus-alerts.yaml"
    cfg.write_text(f"store_url: {url}\n")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUPUS_ALERTS_")}
    env |= {"LUPUS_ALERTS_CONFIG": str(cfg), "LUPUS_ALERTS_SECRET": secret}
    argv = [str(Path(sys.executable).with_name("lupus-alerts")), "web", "serve", "--port", str(port)]
    log = (tmp_path / "web.log").open("wb")
    proc = subprocess.Popen(
        [*argv, "--workers", "2"], env=env, cwd=tmp_path, start_new_session=True, stdout=log, stderr=log
    )
    try:
        base = f"http://127.0.0.1:{port}"
        assert _wait_ok(f"{base}/healthz", proc).status_code == 200
        # uvicorn's supervisor and its two workers (multiprocessing spawns one more helper).
        workers = [p for p in cluster.descendants(proc.pid) if b"spawn_main" in _cmdline(p)]
        assert len(workers) == 2, [_cmdline(p) for p in cluster.descendants(proc.pid)]
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
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        log.close()
        engine.dispose()
    time.sleep(0.5)
    assert not cluster.descendants(proc.pid)
    # Each worker process keeps the tokens out of uvicorn's access log.
    access = (tmp_path / "web.log").read_text(encoding="utf-8", errors="replace")
    assert "/unsubscribe?token=[redacted]" in access and token not in access


def test_web_serve_refuses_zero_workers(tmp_path: Path) -> None:
    cfg = tmp_path / "lupus-alerts.yaml"
    cfg.write_text(f"store_url: sqlite:///{tmp_path / 'store.db'}\n")
    out = subprocess.run(
        [
            str(Path(sys.executable).with_name("lupus-alerts")),
            "--config",
            str(cfg),
            "web",
            "serve",
            "--workers",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "--workers must be at least 1" in out.stderr


@pytest.mark.airflow
@pytest.mark.slow
def test_airflow_mounts_only_the_operator_views(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    proc = subprocess.Popen([sys.executable, "-c", AIRFLOW_API_SERVER, str(port)], env=env, cwd=tmp_path)
    try:
        base = f"http://127.0.0.1:{port}"
        # The operator page is mounted (and wants a login); no public page is.
        assert _wait_ok(f"{base}/lupus-ops/", proc).status_code == 401
        for path in ("/lupus-alerts/healthz", "/lupus-alerts/unsubscribe?token=x", "/unsubscribe?token=x"):
            assert requests.get(base + path, timeout=10).status_code == 404, path
    finally:
        proc.terminate()
        proc.wait(10)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""
