"""`python -m lupus_alerts.demo [--up | --live]`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from lupus_alerts.demo.airflow_setup import (
    _dagtest_main,
)
from lupus_alerts.demo.common import (
    DEMO_WEB_PORT,
    REPO,
    DemoError,
)
from lupus_alerts.demo.modes import run_demo, run_live, run_up


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_dagtest"]:
        return _dagtest_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m lupus_alerts.demo", description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--up", action="store_true", help="start Airflow's UI on localhost with the sample servers"
    )
    mode.add_argument("--live", action="store_true", help="run on lupus-alerts.yaml: live endpoints and SMTP")
    parser.add_argument("--port", type=int, default=8080, help="UI port for --up (default 8080)")
    parser.add_argument(
        "--web-port",
        type=int,
        default=DEMO_WEB_PORT,
        help=f"port of the subscribers' web app for --up (default {DEMO_WEB_PORT})",
    )
    parser.add_argument("--root", type=Path, default=REPO / ".demo", help="demo folder (default .demo)")
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="config for --live (default: $LUPUS_ALERTS_CONFIG or ./lupus-alerts.yaml)",
    )
    args = parser.parse_args(argv)
    from lupus_alerts.config import ConfigError

    airflow_home = Path(os.environ.get("AIRFLOW_HOME") or REPO / "airflow_home").resolve()
    try:
        if args.up:
            return run_up(args.root.resolve(), airflow_home, port=args.port, web_port=args.web_port)
        if args.live:
            from lupus_alerts.config import config_path

            return run_live(airflow_home, config_path(args.config).resolve(), demo_root=args.root.resolve())
        return run_demo(args.root.resolve(), airflow_home)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except DemoError as e:
        print(f"demo failed: {e}", file=sys.stderr)
        return 1
