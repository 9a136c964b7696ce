"""Processes of one cluster run: found by its marker, their descendants, whether they still run."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from lupus_alerts.cluster.common import (
    RUN_MARKER_ENV,
)

# -- processes ---------------------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    """ppid -> pids, for every process visible in /proc."""
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (children, their children, ...), whatever their process group."""
    tree, found, todo = _children(), set(), [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def processes_of_run(marker: str, sessions: set[int]) -> list[tuple[int, str]]:
    """(pid, command line) of every live process of a run: in one of its components' sessions
    (each component is started with its own session, which its children keep: the task
    supervisor gives a task its own process group, not its own session), or carrying
    RUN_MARKER_ENV=marker in its environment (Airflow renames its processes with setproctitle,
    which can overwrite what /proc shows of the environment, hence the sessions too)."""
    needle = f"{RUN_MARKER_ENV}={marker}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            if fields[0] == "Z":
                continue  # exited, waiting for its parent to reap it
            if int(fields[3]) not in sessions:
                environ = Path(f"/proc/{entry}/environ").read_bytes()
                if needle not in environ.split(b"\0"):
                    continue
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
        found.append((int(entry), cmd.strip()))
    return found


def _running(pid: int) -> bool:
    """The process exists and has not exited (a zombie has exited)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _suppress_lookup() -> contextlib.suppress:
    """Ignore a process that is already gone."""
    return contextlib.suppress(ProcessLookupError, PermissionError)
