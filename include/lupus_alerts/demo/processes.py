"""The processes `make up` starts and stops: every one in its own group, stopped on any signal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lupus_alerts.demo.common import (
    DemoError,
)


class StopRequested(Exception):
    """A stop signal (SIGTERM, SIGHUP) arrived: unwind so that every `finally` stops its processes."""


@contextmanager
def stop_on_signals(*signals: signal.Signals) -> Iterator[None]:
    """Turn `signals` into `StopRequested` while the block runs.

    Python's default SIGTERM and SIGHUP end the process at once, skipping `finally`, which
    left `airflow standalone` (its own process group) listening on :8080 after `make up` was
    stopped by anything but Ctrl-C.
    """

    def _raise(signum: int, _frame: Any) -> None:
        raise StopRequested(f"{signal.Signals(signum).name} received")

    previous = {sig: signal.signal(sig, _raise) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def start_web(
    env: dict[str, str], log_path: Path, port: int, started: list[subprocess.Popen[Any]] | None = None
) -> subprocess.Popen[Any]:
    """Start `lupus-alerts web serve` on localhost:`port` in its own process group (log in
    `log_path`); appended to `started` as soon as it exists."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w", encoding="utf-8") as log:
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("lupus-alerts")), "web", "serve", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    if started is not None:
        started.append(proc)
    return proc


def start_standalone(
    env: dict[str, str], log_path: Path, started: list[subprocess.Popen[Any]] | None = None
) -> subprocess.Popen[Any]:
    """Start `airflow standalone` with its output in `log_path`, in its own process group, so
    `stop_process_group` stops it and everything it started as one (and Ctrl-C reaches us only);
    appended to `started` as soon as it exists."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w", encoding="utf-8") as log:
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("airflow")), "standalone"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    if started is not None:
        started.append(proc)
    return proc


def stop_process_group(proc: subprocess.Popen[Any], timeout: float = 30) -> None:
    """SIGTERM a process group started with start_new_session, then SIGKILL what is left."""
    if proc.poll() is not None and not group_alive(proc.pid):
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if proc.poll() is not None and not group_alive(proc.pid):
                return
            time.sleep(0.2)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_for_login(airflow_home: Path, proc: subprocess.Popen[Any], port: int, timeout: float = 300) -> str:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    pw_file = airflow_home / "simple_auth_manager_passwords.json.generated"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DemoError("airflow standalone exited while starting")
        try:
            with urllib.request.urlopen(f"http://localhost:{port}/api/v2/version", timeout=2):
                pass
            if pw_file.exists():
                users = json.loads(pw_file.read_text())
                return ", ".join(f"user {u!r}, password {p!r}" for u, p in users.items())
        except (urllib.error.URLError, OSError, ValueError):
            pass
        time.sleep(2)
    raise DemoError(f"Airflow did not answer on port {port} within {timeout:.0f} s")
