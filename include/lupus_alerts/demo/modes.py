"""The three ways to run it: `make demo`, `make run` (live) and `make up`."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lupus_alerts.demo.airflow_setup import (
    airflow_env,
    init_airflow,
    live_env,
    run_dags,
)
from lupus_alerts.demo.common import (
    DEMO_WEB_PORT,
    REPO,
    UP_SCHEDULE,
    LiveModeRefused,
)
from lupus_alerts.demo.processes import (
    StopRequested,
    _wait_for_login,
    start_standalone,
    start_web,
    stop_on_signals,
    stop_process_group,
)
from lupus_alerts.demo.samples import (
    add_demo_subscribers,
    sample_servers,
    write_demo_config,
)
from lupus_alerts.demo.summary import summarize

# -- modes -------------------------------------------------------------------------------------


def run_demo(root: Path, airflow_home: Path, *, today: datetime | None = None) -> int:
    """`make demo`: both DAGs once with dag.test() on the sample servers; prints the summary."""
    import shutil

    now = today or datetime.now(UTC)
    for sub in ("data", "outbox", "logs", "operator-mail"):
        shutil.rmtree(root / sub, ignore_errors=True)  # each demo starts from an empty store
    print(f"lupus-alerts demo: sample servers on localhost, store and outbox in {root}/", flush=True)
    with sample_servers(now.date()) as servers:
        config_path = write_demo_config(root, servers)
        env = airflow_env(airflow_home, config_path, operator_smtp_port=servers.operator_smtp_port)
        print(
            f"Airflow metadata DB in {airflow_home}/ (migrated on first use; this can take a minute)",
            flush=True,
        )
        init_airflow(env)
        from lupus_alerts.pipeline import load_settings, open_store

        open_store(load_settings(config_path))
        add_demo_subscribers(config_path, now.date())
        t0 = time.monotonic()
        print("running lupus_ingest, then lupus_digest, with dag.test() ...", flush=True)
        ingest, digest = run_dags(
            [("lupus_ingest", now), ("lupus_digest", now)], env, log_path=root / "logs" / "dag_test.log"
        )
        elapsed = time.monotonic() - t0
        (root / "operator-mail").mkdir(parents=True, exist_ok=True)
        for n, msg in enumerate(servers.mail, 1):
            (root / "operator-mail" / f"alert-{n}.eml").write_bytes(msg.content)
        print()
        print(summarize(config_path, ingest, digest))
        print(
            f"operator alerts (SmtpNotifier on failed tasks): {len(servers.mail)} email(s) "
            f"in {root / 'operator-mail'}"
        )
        print(f"Airflow log of both runs: {root / 'logs' / 'dag_test.log'}  ({elapsed:.0f} s)")
    if ingest["state"] != "success" or digest["state"] != "success":
        print("a DAG run did not succeed; see the logs above", file=sys.stderr)
        return 1
    return 0


def run_live(airflow_home: Path, config: Path, *, demo_root: Path = REPO / ".demo") -> int:
    """`make run`: both DAGs once with dag.test() on the real configuration (live endpoints, SMTP).

    Refuses (exit 2, before anything starts) when a demo or placeholder value would be used.
    """
    from lupus_alerts.pipeline import load_settings, open_store

    try:
        env = live_env(airflow_home, config, demo_root=demo_root)  # a config error stops here too
    except LiveModeRefused as e:
        print("refusing to run live:", file=sys.stderr)
        for problem in e.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    open_store(load_settings(config))
    init_airflow(env)
    log_path = REPO / "data" / "logs" / "dag_test.log"
    now = datetime.now(UTC)
    print(f"running lupus_ingest, then lupus_digest, on {config} (log: {log_path}) ...", flush=True)
    ingest, digest = run_dags([("lupus_ingest", now), ("lupus_digest", now)], env, log_path=log_path)
    print(summarize(config, ingest, digest))
    return 0 if ingest["state"] == "success" and digest["state"] == "success" else 1


def run_up(root: Path, airflow_home: Path, *, port: int = 8080, web_port: int = DEMO_WEB_PORT) -> int:
    """`make up`: airflow standalone on localhost:`port` with the DAGs pointed at the sample servers,
    and the subscribers' web app on localhost:`web_port` (its own process, as in compose), which
    the digests' links point at."""
    import shutil

    now = datetime.now(UTC)
    alerts = root / "operator-mail"
    shutil.rmtree(alerts, ignore_errors=True)  # this session's alerts only
    with (
        stop_on_signals(signal.SIGTERM, signal.SIGHUP),
        sample_servers(now.date(), alerts_dir=alerts) as servers,
    ):
        # With catchup off, unpausing runs each DAG's most recent past schedule at once. The
        # fallback digest time is put late in the day so that run is for yesterday's period
        # (nothing to send) and today's digests wait for the ingest's asset event.
        config_path = write_demo_config(
            root, servers, schedule=UP_SCHEDULE, public_base_url=f"http://localhost:{web_port}"
        )
        env = airflow_env(
            airflow_home,
            config_path,
            operator_smtp_port=servers.operator_smtp_port,
            extra={
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__API__PORT": str(port),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{port}/execution/",
            },
        )
        init_airflow(env)
        from lupus_alerts.pipeline import load_settings, open_store

        open_store(load_settings(config_path))
        add_demo_subscribers(config_path, now.date())
        log_path = root / "logs" / "standalone.log"
        started: list[subprocess.Popen[Any]] = []
        try:
            # inside the try: a stop signal right after a start still stops what was started
            web = start_web(env, root / "logs" / "web.log", web_port, started)
            proc = start_standalone(env, log_path, started)
            login = _wait_for_login(airflow_home, proc, port)
            print(f"Airflow UI: http://localhost:{port}  (log in as {login})")
            print("DAGs lupus_ingest and lupus_digest are unpaused; the ingest's first run starts now,")
            print("and its asset event starts the digest. Feed health: Browse > Lupus feed health.")
            print(f"Sample servers: E-utilities {servers.eutils_url}, feeds {servers.feed_urls['lupus']}")
            print(
                f"Subscribers' web app (the digests' unsubscribe and preferences links): http://localhost:{web_port}"
            )
            print(f"Operators' failure alerts (each failed task emails one): {alerts}/alert-<n>.eml")
            print(f"Digests: {root / 'outbox'}; Airflow log: {log_path}.")
            print("Ctrl-C (or SIGTERM, SIGHUP) stops everything.")
            while proc.poll() is None and web.poll() is None:
                time.sleep(1)
            which, code = (
                ("airflow standalone", proc.returncode)
                if proc.poll() is not None
                else ("web app", web.returncode)
            )
            print(f"{which} exited ({code}); see {root / 'logs'}", file=sys.stderr)
            return 1
        except (KeyboardInterrupt, StopRequested) as e:
            print(f"\n{e or 'Ctrl-C'}: stopping Airflow and the web app ...", flush=True)
            return 0
        finally:
            for p in reversed(started):
                stop_process_group(p)
