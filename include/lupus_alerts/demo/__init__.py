"""`make demo`, `make up` and `make run`: the real DAGs, end to end, on this machine.

    python -m lupus_alerts.demo          # both DAGs once via dag.test() on the sample servers
    python -m lupus_alerts.demo --up     # Airflow's UI (airflow standalone) on localhost:8080,
                                         # the subscribers' web app on localhost:8085
    python -m lupus_alerts.demo --live   # both DAGs once on lupus-alerts.yaml (live NCBI, SMTP)

The demo serves the bundled sample data on localhost: an E-utilities replay
(`lupus_alerts.testing.eutils_replay`) over the constructed demo records plus the real PubMed fixtures,
and three journal feeds (SAGE, BMJ and Wiley formats) plus one journal whose feed has moved (it
answers 404, so the run shows what a failing feed looks like). It writes a demo configuration to
`.demo/lupus-alerts.yaml` (store `.demo/data`, digests to the outbox `.demo/outbox`), adds four
demo subscribers, and runs `lupus_ingest` then `lupus_digest` with `dag.test()` - the same path
as the end-to-end tests - each in its own process with its log in `.demo/logs/`. Failure alerts
to operators go through the real `SmtpNotifier` to a local SMTP catcher (`.demo/operator-mail`).

Airflow's metadata database is SQLite in `airflow_home/` (git-ignored), migrated on first use.

Demo values never reach a live run. The demo signs its links with a secret generated on this
machine (`.demo/link-secret`, git-ignored; nothing in the repository can sign a link), sends its
operator alerts to a local catcher, and shortens retry delays; `--live` uses none of that, and
refuses to start (`live_env`) without a real link-signing secret, without an operator address,
or with a configuration that still points at placeholder addresses.

Modules: `common`, `samples` (sample servers, config, subscribers), `airflow_setup` (environments, DAG
runs), `summary`, `modes` (demo, live, up), `processes` (what `up` starts and stops), `cli`.
"""

from __future__ import annotations

from lupus_alerts.demo.airflow_setup import (
    airflow_env,
    demo_secret,
    init_airflow,
    live_env,
    run_dag,
    run_dags,
)
from lupus_alerts.demo.cli import (
    main,
)
from lupus_alerts.demo.common import (
    ALERT_SENDER_VAR_ENV,
    DAG_IDS,
    DEMO_DATA,
    DEMO_FEEDS,
    DEMO_OPERATOR_EMAIL,
    DEMO_PUBLIC_BASE_URL,
    DEMO_SECRET_FILE,
    DEMO_SUBSCRIBERS,
    DEMO_WEB_PORT,
    MOVED_FEED,
    NCBI_POOL_SLOTS,
    REPO,
    UP_SCHEDULE,
    CaughtMail,
    DemoError,
    DemoServers,
    LiveModeRefused,
)
from lupus_alerts.demo.modes import (
    run_demo,
    run_live,
    run_up,
)
from lupus_alerts.demo.processes import (
    StopRequested,
    group_alive,
    start_standalone,
    start_web,
    stop_on_signals,
    stop_process_group,
)
from lupus_alerts.demo.samples import (
    add_demo_subscribers,
    demo_corpus,
    free_port,
    sample_servers,
    write_demo_config,
)
from lupus_alerts.demo.summary import (
    summarize,
)

__all__ = [
    "ALERT_SENDER_VAR_ENV",
    "DAG_IDS",
    "DEMO_DATA",
    "DEMO_FEEDS",
    "DEMO_OPERATOR_EMAIL",
    "DEMO_PUBLIC_BASE_URL",
    "DEMO_SECRET_FILE",
    "DEMO_SUBSCRIBERS",
    "DEMO_WEB_PORT",
    "MOVED_FEED",
    "NCBI_POOL_SLOTS",
    "REPO",
    "UP_SCHEDULE",
    "CaughtMail",
    "DemoError",
    "DemoServers",
    "LiveModeRefused",
    "StopRequested",
    "add_demo_subscribers",
    "airflow_env",
    "demo_corpus",
    "demo_secret",
    "free_port",
    "group_alive",
    "init_airflow",
    "live_env",
    "main",
    "run_dag",
    "run_dags",
    "run_demo",
    "run_live",
    "run_up",
    "sample_servers",
    "start_standalone",
    "start_web",
    "stop_on_signals",
    "stop_process_group",
    "summarize",
    "write_demo_config",
]
