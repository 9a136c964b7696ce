"""`make up` stops everything it started, whatever signal stops it, and keeps operator alerts
where the operator can read them (issue 14, defects 4 and 5)."""

from __future__ import annotations

import signal
import smtplib
import subprocess
import sys
import time
from datetime import date
from email.message import EmailMessage
from pathlib import Path

import pytest

from lupus_alerts import demo

# The shape of `demo.run_up`: child process groups started inside `stop_on_signals`, stopped in
# `finally` (the real run_up starts `airflow standalone` and the web app the same way).
_SUPERVISOR = """
import signal, subprocess, sys, time
from lupus_alerts import demo

with demo.stop_on_signals(signal.SIGTERM, signal.SIGHUP):
    children = []
    try:
        for _ in range(2):
            children.append(subprocess.Popen(["sleep", "600"], start_new_session=True))
        print(" ".join(str(c.pid) for c in children), flush=True)
        while True:
            time.sleep(0.1)
    except demo.StopRequested as e:
        print(e, flush=True)
    finally:
        for c in children:
            demo.stop_process_group(c, timeout=5)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_stop_signal_stops_every_process_group_it_started(sig: signal.Signals) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _SUPERVISOR], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert proc.stdout is not None
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 2 and all(demo.group_alive(p) for p in pids)
        proc.send_signal(sig)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while any(demo.group_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(demo.group_alive(p) for p in pids), f"children outlived {sig.name}"
    finally:
        for p in pids if "pids" in locals() else []:
            if demo.group_alive(p):
                import os

                os.killpg(p, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()


def test_operator_alerts_are_written_where_the_operator_reads_them_as_they_arrive(tmp_path: Path) -> None:
    alerts = tmp_path / "operator-mail"
    with demo.sample_servers(date(2026, 12, 5), alerts_dir=alerts) as servers:
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = "airflow@demo.example.org", "ops@example.org", "task failed"
        msg.set_content("lupus_ingest.poll_feed failed")
        with smtplib.SMTP("127.0.0.1", servers.operator_smtp_port, timeout=10) as smtp:
            smtp.send_message(msg)
        # written while the servers still run, not at the end of a demo
        (eml,) = alerts.glob("alert-*.eml")
        assert b"task failed" in eml.read_bytes()
