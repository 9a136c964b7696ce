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
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DEMO_DATA = Path(__file__).resolve().parent / "data" / "demo"
DAG_IDS = ("lupus_ingest", "lupus_digest")
NCBI_POOL_SLOTS = 3  # NCBI allows 3 requests/s without an API key: one slot per request stream
DEMO_SECRET_FILE = "link-secret"  # in the demo folder: the demo's own link-signing secret
DEMO_OPERATOR_EMAIL = "operators@demo.example.org"
ALERT_SENDER_VAR_ENV = "AIRFLOW_VAR_LUPUS_ALERTS_ALERT_SENDER"
# Journal feeds served by the demo: (feed id, journal name, publisher, file, all_lupus).
DEMO_FEEDS = (
    ("lupus", "Lupus", "SAGE", "feed_lupus.rss.xml", True),
    ("lupus-science-medicine", "Lupus Science & Medicine", "BMJ", "feed_lsm.rdf.xml", True),
    ("arthritis-rheumatology", "Arthritis & Rheumatology", "Wiley", "feed_ar.rss.xml", False),
)
# `make up` serves the public web app here, as its own process (docker-compose.yaml: the
# lupus-alerts-web service), so the links in the demo's digests work while it runs.
DEMO_WEB_PORT = 8085
DEMO_PUBLIC_BASE_URL = f"http://localhost:{DEMO_WEB_PORT}"
UP_SCHEDULE = {"ingest_cron": "0 5 * * *", "digest_fallback_cron": "59 23 * * *"}
MOVED_FEED = ("annals-rheumatic-diseases", "Annals of the Rheumatic Diseases", "BMJ")
DEMO_SUBSCRIBERS = (
    {"email": "nephrologist@demo.example.org", "name": "Dr Ada Nephro", "topics": ["nephrology"]},
    {"email": "dermatologist@demo.example.org", "name": "Dr Ben Derm", "topics": ["dermatology"]},
    {"email": "rheumatologist@demo.example.org", "name": "Dr Cleo Rheum", "topics": None},
    # weekly, on the demo day's weekday, so the weekly path is shown too
    {"email": "obstetric-med@demo.example.org", "name": "Dr Dev Obs", "topics": ["pregnancy", "pediatrics"]},
)


class DemoError(Exception):
    """The demo could not run (a DAG run failed, Airflow could not start, ...)."""


class LiveModeRefused(DemoError):
    """A live run would have used a demo or placeholder value; `problems` says which, and how to fix it."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


@dataclass(frozen=True)
class CaughtMail:
    """One message the local SMTP catcher accepted."""

    mail_from: str
    rcpt_tos: list[str]
    content: bytes


@dataclass
class DemoServers:
    """The sample servers a demo run points at."""

    eutils_url: str
    feed_urls: dict[str, str]
    operator_smtp_port: int
    mail: list[CaughtMail] = field(default_factory=list)  # everything sent to the SMTP catcher
    eutils: Any = None  # the EutilsReplay
    feed_server: Any = None  # the ReplayServer serving the feeds (tests add items to it)


# -- sample data and servers -------------------------------------------------------------------


def demo_corpus(today: date) -> list[Any]:
    """The E-utilities corpus: constructed demo records plus the real PubMed fixture records.

    Creation dates are spread over the last six days, so today's run window finds them.
    """
    from lupus_alerts.testing.eutils_replay import CorpusRecord, article_records, default_fixture_paths

    records = []
    paths = [DEMO_DATA / "pubmed_demo.xml", *default_fixture_paths()]
    i = 0
    for path in paths:
        if not path.exists():
            continue
        for pmid, xml in article_records(path):
            if pmid:
                records.append(CorpusRecord(pmid, today - timedelta(days=i % 6), xml))
                i += 1
    return records


@contextmanager
def sample_servers(today: date, *, alerts_dir: Path | None = None) -> Iterator[DemoServers]:
    """Start the E-utilities replay, the feed server and the operator-mail catcher; stop them after.

    With `alerts_dir`, each mail the catcher receives is also written there as it arrives
    (`alert-<n>.eml`), so the operator can read failure alerts while `make up` runs.
    """
    from aiosmtpd.controller import Controller

    from lupus_alerts.testing.eutils_replay import EutilsReplay
    from lupus_alerts.testing.feeds_replay import serve_feed
    from lupus_alerts.testing.replay import ReplayServer

    caught: list[CaughtMail] = []

    class _Catcher:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            content = envelope.original_content or envelope.content
            caught.append(CaughtMail(envelope.mail_from, list(envelope.rcpt_tos), content))
            if alerts_dir is not None:
                alerts_dir.mkdir(parents=True, exist_ok=True)
                (alerts_dir / f"alert-{len(caught)}.eml").write_bytes(content)
            return "250 OK"

    with ExitStack() as stack:
        eutils = stack.enter_context(EutilsReplay(demo_corpus(today)))
        feeds = stack.enter_context(ReplayServer())
        urls = {}
        for fid, _name, _pub, file, _all in DEMO_FEEDS:
            urls[fid] = serve_feed(feeds, f"/feeds/{file}", (DEMO_DATA / file).read_bytes())
        # No route: the moved feed answers 404, as a journal's retired feed URL does.
        urls[MOVED_FEED[0]] = feeds.url + "/feeds/ard-current.rss"
        port = free_port()
        smtp = Controller(_Catcher(), hostname="127.0.0.1", port=port)
        smtp.start()
        stack.callback(smtp.stop)
        yield DemoServers(eutils.base_url, urls, port, caught, eutils, feeds)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (aiosmtpd's controller cannot take port 0)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_demo_config(
    root: Path,
    servers: DemoServers,
    *,
    mail_mode: str = "outbox",
    schedule: Mapping[str, str] | None = None,
    public_base_url: str = DEMO_PUBLIC_BASE_URL,
    store_url: str | None = None,
) -> Path:
    """Write `root/lupus-alerts.yaml` pointing at the sample servers; returns its path.

    `public_base_url` is where the digests' links go (the web app `make up` serves);
    `store_url` replaces the SQLite store in `root/data`.
    """
    feeds = [
        {"id": fid, "name": name, "publisher": pub, "url": servers.feed_urls[fid], "all_lupus": all_lupus}
        for fid, name, pub, _file, all_lupus in DEMO_FEEDS
    ]
    fid, name, pub = MOVED_FEED
    feeds.append({"id": fid, "name": name, "publisher": pub, "url": servers.feed_urls[fid]})
    config = {
        "data_dir": "data",
        "pubmed": {"base_url": servers.eutils_url, "max_retries": 2, "timeout_s": 10},
        "feeds": feeds,
        "feed_settings": {"timeout_s": 10},
        "digest": {"public_base_url": public_base_url, "max_papers": 25},
        "mail": {"mode": mail_mode, "outbox_dir": "outbox", "rate_per_second": 100},
    }
    if store_url:
        config["store_url"] = store_url
    if schedule:
        config["schedule"] = dict(schedule)
    root.mkdir(parents=True, exist_ok=True)
    path = root / "lupus-alerts.yaml"
    header = "# Written by `python -m lupus_alerts.demo`: the demo's sample servers on localhost.\n"
    path.write_text(header + yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def add_demo_subscribers(config_path: Path, day: date) -> list[int]:
    """The four demo subscribers (idempotent); the weekly one is due on `day`'s weekday."""
    from lupus_alerts import subscribers
    from lupus_alerts.pipeline import load_settings, open_store

    engine = open_store(load_settings(config_path))
    ids = []
    for n, spec in enumerate(DEMO_SUBSCRIBERS):
        weekly = n == len(DEMO_SUBSCRIBERS) - 1
        try:
            sub = subscribers.add(
                engine,
                email=spec["email"],
                name=spec["name"],
                topics=spec["topics"],
                frequency="weekly" if weekly else "daily",
                weekday=day.weekday() if weekly else None,
                max_papers=25,
                from_beginning=True,
            )
        except subscribers.SubscriberExists:
            sub = subscribers.get(engine, spec["email"])
        ids.append(sub.id)
    return ids


# -- Airflow -----------------------------------------------------------------------------------


def live_env(
    airflow_home: Path,
    config_path: Path,
    *,
    demo_root: Path = REPO / ".demo",
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment for a LIVE run (`make run`): the operator's own secret and operator
    address, the configuration as written, nothing from the demo.

    Raises LiveModeRefused, listing every problem with its fix (`config.live_problems`: the
    link-signing secret missing, a placeholder or the demo's; no operator address, or a
    placeholder; placeholder addresses in the configuration). A ConfigError propagates.
    """
    from lupus_alerts.config import OPERATOR_EMAIL_ENV, OPERATOR_EMAIL_VAR_ENV, live_problems
    from lupus_alerts.pipeline import load_settings

    environ = os.environ if environ is None else environ
    settings = load_settings(config_path)
    demo_file = demo_root / DEMO_SECRET_FILE
    demo = demo_file.read_text(encoding="utf-8").strip() if demo_file.exists() else None
    problems = live_problems(settings, environ, demo_secret=demo)
    if problems:
        raise LiveModeRefused(problems)
    env = _base_env(airflow_home, config_path, environ)
    env.pop("LUPUS_ALERTS_RETRY_DELAY_S", None)  # the DAGs' own back-off, not a demo's
    env[OPERATOR_EMAIL_VAR_ENV] = (environ.get(OPERATOR_EMAIL_VAR_ENV) or environ[OPERATOR_EMAIL_ENV]).strip()
    # Alerts come from the digests' own sender unless one is given (the DAGs' fallback is a
    # placeholder address a relay would refuse).
    env.setdefault(ALERT_SENDER_VAR_ENV, parseaddr(settings.digest.sender)[1])
    return env


def _base_env(airflow_home: Path, config_path: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """What every run's Airflow needs (a copy of `environ` plus the project's paths); no demo value."""
    env = dict(environ)
    env.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)
    env.update(
        AIRFLOW_HOME=str(airflow_home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(REPO / "plugins"),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{airflow_home.resolve() / 'airflow.db'}",
        LUPUS_ALERTS_CONFIG=str(config_path.resolve()),
        PYTHONUNBUFFERED="1",
        # `airflow standalone` starts its components as `airflow ...` from PATH: use this venv's.
        PATH=os.pathsep.join([str(Path(sys.executable).parent), environ.get("PATH", "")]),
    )
    return env


def demo_secret(root: Path) -> str:
    """The demo's link-signing secret: random, made once per demo folder (`root/link-secret`,
    readable by its owner only), so links in the demo's outbox keep working across runs and no
    secret that can sign a link is ever in the repository."""
    path = root / DEMO_SECRET_FILE
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    root.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(value + "\n")
    return value


def airflow_env(
    airflow_home: Path,
    config_path: Path,
    *,
    operator_smtp_port: int | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment Airflow and the tasks run in for the DEMO (`make demo`, `make up`, the
    end-to-end tests): a copy of os.environ plus the demo's settings, its own secret (made in
    the config's folder), its operator address and short retry delays. Never for a live run:
    that is `live_env`."""
    env = _base_env(airflow_home, config_path, os.environ)
    env.update(
        LUPUS_ALERTS_SECRET=demo_secret(config_path.resolve().parent),
        # Retries stay at 2+ but wait seconds, not minutes, in a demo.
        LUPUS_ALERTS_RETRY_DELAY_S="1",
        AIRFLOW_VAR_LUPUS_ALERTS_OPERATOR_EMAIL=DEMO_OPERATOR_EMAIL,  # the local catcher
    )
    if operator_smtp_port is not None:
        env["AIRFLOW_CONN_SMTP_DEFAULT"] = json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": operator_smtp_port,
                "extra": {"disable_ssl": True, "disable_tls": True, "from_email": "airflow@demo.example.org"},
            }
        )
    env.update(extra or {})
    return env


def _airflow(env: Mapping[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    cmd = [str(Path(sys.executable).with_name("airflow")), *args]
    out = subprocess.run(cmd, env=dict(env), capture_output=True, text=True, timeout=timeout, check=False)
    if out.returncode != 0:
        raise DemoError(f"`airflow {' '.join(args)}` failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return out


def init_airflow(env: Mapping[str, str]) -> None:
    """Migrate Airflow's metadata DB (once: a stamp file remembers) and set the `ncbi` pool."""
    home = Path(env["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    stamp = home / ".lupus-alerts-initialised"
    if not stamp.exists() or not (home / "airflow.db").exists():
        _airflow(env, "db", "migrate")
        _airflow(env, "pools", "set", "ncbi", str(NCBI_POOL_SLOTS), "NCBI E-utilities (rate-limited)")
        stamp.write_text(datetime.now(UTC).isoformat(), encoding="utf-8")


def run_dag(
    dag_id: str, env: Mapping[str, str], *, logical_date: datetime | None, log_path: Path
) -> dict[str, Any]:
    """Run one DAG with `dag.test()` in a fresh process; returns its run id, state and task states."""
    return run_dags([(dag_id, logical_date)], env, log_path=log_path)[0]


def run_dags(
    runs: Sequence[tuple[str, datetime | None]], env: Mapping[str, str], *, log_path: Path
) -> list[dict[str, Any]]:
    """Run DAGs one after the other with `dag.test()` in one fresh process, logging to `log_path`.

    A separate process keeps Airflow's global settings (AIRFLOW_HOME, the ORM) out of the
    caller, and its log out of the console; several runs share one process because Airflow's
    start-up, not the runs, is most of the time. Returns one result per run: dag_id, run_id,
    state and the states of each task's instances. Raises DemoError if a run could not be made.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "lupus_alerts.demo", "_dagtest"]
    args += [f"{dag_id}@{when.isoformat() if when else ''}" for dag_id, when in runs]
    with log_path.open("w", encoding="utf-8") as log:
        proc = subprocess.run(
            args, env=dict(env), stdout=log, stderr=subprocess.STDOUT, check=False, timeout=900
        )
    text = log_path.read_text(encoding="utf-8", errors="replace")
    marker = "LUPUS_DAGTEST_RESULT "
    results = [json.loads(ln.removeprefix(marker)) for ln in text.splitlines() if ln.startswith(marker)]
    if proc.returncode != 0 or len(results) != len(runs):
        raise DemoError(f"dag.test failed (exit {proc.returncode}); see {log_path}:\n{text[-3000:]}")
    return results


def _dagtest_main(specs: Sequence[str]) -> int:
    """Child process of `run_dags`: dag.test() each "dag_id@logical_date" and print its result."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        print(f"import errors: {bag.import_errors}", file=sys.stderr)
        return 1
    for spec in specs:
        dag_id, _, when = spec.partition("@")
        dr = bag.dags[dag_id].test(logical_date=datetime.fromisoformat(when) if when else None)
        tasks: dict[str, list[str]] = {}
        for ti in sorted(dr.get_task_instances(), key=lambda t: (t.task_id, t.map_index)):
            tasks.setdefault(ti.task_id, []).append(str(ti.state))
        result = {"dag_id": dag_id, "run_id": dr.run_id, "state": str(dr.state), "tasks": tasks}
        print("LUPUS_DAGTEST_RESULT " + json.dumps(result), flush=True)
    return 0


# -- summary -----------------------------------------------------------------------------------


def summarize(config_path: Path, ingest: Mapping[str, Any], digest: Mapping[str, Any]) -> str:
    """What the two runs did, from the store: per source, new, per topic, digests, failures."""
    import sqlalchemy as sa

    from lupus_alerts import pipeline, store

    settings = pipeline.load_settings(config_path)
    engine = pipeline.open_store(settings)
    records = pipeline.run_records(engine, ingest["run_id"])
    announce = next((r["stats"] for r in records if r["source"] == pipeline.ANNOUNCE_SOURCE), {}) or {}
    lines = [f"lupus_ingest {ingest['run_id']}: {ingest['state']}"]
    for r in records:
        if r["source"] == pipeline.ANNOUNCE_SOURCE:
            continue
        s = r["stats"] or {}
        if r["error"]:
            lines.append(f"  {r['source']:<34} FAILED: {r['error']}")
        elif r["source"] == pipeline.PUBMED_SOURCE:
            lines.append(
                f"  {r['source']:<34} fetched {s.get('fetched', 0):>4}, new {s.get('new', 0)}, "
                f"already known from a feed {s.get('updated', 0)}"
            )
        else:
            lines.append(
                f"  {r['source']:<34} items {s.get('items', 0):>4}, kept {s.get('kept', 0)}, "
                f"new {s.get('new', 0)}, already known from another source {s.get('updated', 0)}"
            )
    with engine.connect() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(store.papers)).scalar()
        lupus = conn.execute(
            sa.select(sa.func.count()).select_from(store.papers).where(store.papers.c.is_lupus.is_(True))
        ).scalar()
        multi = conn.execute(
            sa.select(sa.func.count()).select_from(
                sa.select(store.paper_sources.c.paper_id)
                .group_by(store.paper_sources.c.paper_id)
                .having(sa.func.count() > 1)
                .subquery()
            )
        ).scalar()
        ledger = conn.execute(
            sa.select(store.deliveries.c.state, sa.func.count()).group_by(store.deliveries.c.state)
        ).all()
    lines.append(
        f"  papers in store {total}; about lupus {lupus}; found in more than one source "
        f"(deduplicated) {multi}"
    )
    lines.append(f"  new lupus papers announced {announce.get('new_papers', 0)}")
    for label, n in sorted((announce.get("per_topic") or {}).items(), key=lambda kv: -kv[1]):
        lines.append(f"    {label:<20} {n}")
    lines.append(f"lupus_digest {digest['run_id']}: {digest['state']}")
    lines.append("  ledger: " + (", ".join(f"{state} {n}" for state, n in sorted(ledger)) or "empty"))
    failing = [r for r in pipeline.feed_health(engine, settings) if r["status"] == "failing"]
    failed_tasks = {t: s for run in (ingest, digest) for t, s in run["tasks"].items() if "failed" in s}
    lines.append("failures:")
    for r in failing:
        lines.append(
            f"  feed {r['feed_id']}: {r['last_error']} ({r['failed_runs_in_a_row']} failed runs in a row)"
        )
    for task_id, states in failed_tasks.items():
        lines.append(f"  task {task_id}: {states.count('failed')} of {len(states)} failed (red in the UI)")
    if not failing and not failed_tasks:
        lines.append("  none")
    outbox = settings.mail.outbox_dir
    if settings.mail.mode == "outbox":
        n = len(list(Path(outbox).glob("*.eml"))) if Path(outbox).exists() else 0
        lines.append(f"digests written: {n} message(s) in {outbox}")
        lines.append(f"  open {Path(outbox) / 'index.html'} for the HTML previews")
    return "\n".join(lines)


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
    if proc.poll() is not None and not _group_alive(proc.pid):
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if proc.poll() is not None and not _group_alive(proc.pid):
                return
            time.sleep(0.2)


def _group_alive(pgid: int) -> bool:
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


if __name__ == "__main__":
    sys.exit(main())
