"""docker-compose.yaml's CeleryExecutor deployment, as real processes: it runs the pipeline, and
losing a worker mid-send loses nothing and sends nothing twice.

`lupus_alerts.cluster.Cluster` starts, from the compose file's own settings (the environment
parity is checked in tests/unit/test_docker_compose.py): `airflow api-server`, `scheduler`,
`dag-processor`, `triggerer`, two `airflow celery worker`s with their own host names, and the
public web app (`lupus-alerts web serve`), on PostgreSQL (a fresh metadata database and a fresh
store database) and Redis (a queue of the run's own). The DAGs read the replay servers
(`demo.sample_servers`); digests go to a real SMTP server on localhost.

The worker-kill test holds the SMTP reply to one subscriber's digest (the body has arrived; the
sender waits for the 250), SIGKILLs the worker running `send_digests` with every process it
started (a machine lost), and lets Airflow notice the missing heartbeats and retry the task on
the other worker.
"""

from __future__ import annotations

import email
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email import policy
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from smtp_sink import SmtpSink

from lupus_alerts import cluster, demo, store, subscribers
from lupus_alerts.testing.feeds_replay import serve_feed

# The cluster starts once for the module (about 20 s here, more on a busy machine): the first
# test carries that start, hence a longer limit than the suite's 300 s.
pytestmark = [pytest.mark.airflow, pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(900)]

# Far-off schedules: besides the runs the tests trigger, unpausing starts only the fallback
# digest of 1 January (nothing due then: it plans and sends nothing new).
SCHEDULE = {"ingest_cron": "0 5 1 1 *", "digest_fallback_cron": "0 9 1 1 *"}
RUN_TIMEOUT_S = 300
# Subscribers the worker-kill test adds; the digest of the middle one is held and its sender killed.
KILL_SUBSCRIBERS = tuple(f"kill-{n}@cluster.example.org" for n in range(1, 6))
TRAP = KILL_SUBSCRIBERS[2]
NEW_ITEM_DOI = "10.5555/lup.2026.9001"


@dataclass
class World:
    cluster: cluster.Cluster
    api: cluster.Api
    servers: demo.DemoServers
    sink: SmtpSink
    engine: sa.Engine
    today: date

    def wait_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            run = self.api.dag_run(dag_id, run_id)
            return run if run["state"] in ("success", "failed") else None

        return self.cluster.wait_for(f"{dag_id} run {run_id}", done, RUN_TIMEOUT_S)

    def wait_asset_digest(self, after: set[str]) -> dict[str, Any]:
        """The next asset-triggered digest run (not one of `after`), once finished."""

        def done() -> dict[str, Any] | None:
            runs = [
                r
                for r in self.api.dag_runs("lupus_digest")
                if r["run_type"] == "asset_triggered" and r["dag_run_id"] not in after
            ]
            return runs[0] if runs and runs[0]["state"] in ("success", "failed") else None

        return self.cluster.wait_for("the asset-triggered digest run", done, RUN_TIMEOUT_S)

    def asset_runs(self) -> set[str]:
        return {
            r["dag_run_id"] for r in self.api.dag_runs("lupus_digest") if r["run_type"] == "asset_triggered"
        }

    def digests(self) -> list[Any]:
        """Digests the SMTP server accepted (operator alerts have no List-Unsubscribe)."""
        return [m for m in self.sink.handler.messages if b"List-Unsubscribe" in m.data]

    def ledger(self) -> dict[str, str]:
        """Subscriber email -> the state of its ledger row for today (its day, or its week)."""
        d, s = store.deliveries, store.subscribers
        year, week, _ = self.today.isocalendar()
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(s.c.email, d.c.state)
                .join(s, s.c.id == d.c.subscriber_id)
                .where(d.c.period.in_((self.today.isoformat(), f"{year}-W{week:02d}")))
            ).all()
        return {email_: state for email_, state in rows}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    reason = cluster.unavailable_reason()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("celery-cluster")
    today = datetime.now(UTC).date()
    with demo.sample_servers(today) as servers, SmtpSink() as sink:
        cfg_dir = root / "config"
        c = cluster.Cluster(root, config_path=cfg_dir / "lupus-alerts.yaml", smtp_port=sink.port)
        demo.write_demo_config(
            cfg_dir,
            servers,
            mail_mode="smtp",
            schedule=SCHEDULE,
            public_base_url=c.web_url,
            store_url=c.store_url,
        )
        with c:
            assert c.api is not None
            engine = store.make_engine(c.store_url)
            try:
                demo.add_demo_subscribers(cfg_dir / "lupus-alerts.yaml", today)
                for dag_id in demo.DAG_IDS:
                    c.wait_for(f"{dag_id} parsed", lambda d=dag_id: c.api.get(f"/api/v2/dags/{d}").ok, 120)
                    assert c.api.patch(f"/api/v2/dags/{dag_id}", {"is_paused": False}).ok
                yield World(c, c.api, servers, sink, engine, today)
            finally:
                engine.dispose()
        # Leaving the block stopped every component and looked for any process of the run.
        assert c.forced_at_stop == [], f"did not stop on SIGTERM: {c.forced_at_stop}"
        assert c.leftovers_at_stop == [], f"processes outlived the cluster: {c.leftovers_at_stop}"
        assert c.leftovers() == []
        for comp in c.components.values():
            assert comp.proc is not None and comp.proc.poll() is not None, f"{comp.name} still running"


def test_the_pipeline_runs_on_two_celery_workers_and_each_digest_goes_out_once(world: World) -> None:
    api, c = world.api, world.cluster
    run_id = api.trigger("lupus_ingest")
    ingest = world.wait_run("lupus_ingest", run_id)
    assert ingest["state"] == "success", c.tails()
    digest = world.wait_asset_digest(after=set())
    assert digest["state"] == "success", c.tails()

    tis = api.task_instances("lupus_ingest", run_id) + api.task_instances(
        "lupus_digest", digest["dag_run_id"]
    )
    hosts = Counter(ti["hostname"] for ti in tis)
    # Every task ran on one of the two Celery workers, and both took a share.
    assert set(hosts) == set(c.worker_names), hosts
    failed = sorted(ti["rendered_map_index"] for ti in tis if ti["state"] == "failed")
    # the journal whose feed moved, labelled with its outcome; everything else green
    assert failed == [f"{demo.MOVED_FEED[1]} · HTTP 404"]
    assert all(ti["state"] == "success" for ti in tis if ti["task_id"] != "poll_feed")

    # Every due subscriber's digest: exactly once at the SMTP server, and `sent` in the ledger.
    received = Counter(m.rcpt_tos[0] for m in world.digests())
    ledger = world.ledger()
    assert received == Counter({e: 1 for e, state in ledger.items() if state == "sent"})
    assert sorted(received) == sorted(s["email"] for s in demo.DEMO_SUBSCRIBERS)
    assert world.sink.handler.held == []

    # The digest's links go to the web app, its own process (not Airflow's API server).
    msg = email.message_from_bytes(world.digests()[0].data, policy=policy.default)
    link = str(msg["List-Unsubscribe"]).split("<")[1].split(">")[0]
    assert link.startswith(c.web_url + "/unsubscribe?token=")
    assert requests.get(link, timeout=30).status_code == 200
    one_click = requests.post(link, data={"List-Unsubscribe": "One-Click"}, timeout=30)
    assert one_click.status_code == 200
    assert subscribers.get(world.engine, msg["To"].addresses[0].addr_spec).status == "unsubscribed"
    # Nothing public is mounted on the API server any more (GETs of unknown paths get the UI's
    # single page, which has no unsubscribe form; a one-click POST is refused).
    on_airflow = c.base_url + "/lupus-alerts" + link.removeprefix(c.web_url)
    assert "<form" not in requests.get(on_airflow, timeout=30).text
    assert requests.post(on_airflow, data={"List-Unsubscribe": "One-Click"}, timeout=30).status_code in (
        404,
        405,
    )
    # Airflow keeps only the operator views, behind its login.
    assert (
        api.get("/lupus-ops/").ok and requests.get(c.base_url + "/lupus-ops/", timeout=30).status_code == 401
    )


def test_a_worker_killed_mid_send_loses_nothing_and_sends_nothing_twice(world: World) -> None:
    api, c, sink = world.api, world.cluster, world.sink.handler
    for address in KILL_SUBSCRIBERS:
        # From now on: their digest holds what this ingest announces.
        subscribers.add(world.engine, email=address, topics=None)
    # A new paper in the SAGE feed, so this ingest stores something and announces it.
    body = (demo.DEMO_DATA / "feed_lupus.rss.xml").read_bytes()
    item = (
        "<item><title>Constructed test item: a worker lost mid-send in lupus nephritis care</title>"
        f"<link>https://journals.sagepub.com/doi/abs/{NEW_ITEM_DOI}?af=R</link>"
        f'<guid isPermaLink="false">{NEW_ITEM_DOI}</guid>'
        "<description>Lupus, Ahead of Print. Renal flares in systemic lupus erythematosus.</description>"
        "<pubDate>Fri, 04 Dec 2026 06:00:00 GMT</pubDate>"
        f"<dc:identifier>doi:{NEW_ITEM_DOI}</dc:identifier></item>\n"
    ).encode()
    serve_feed(
        world.servers.feed_server,
        "/feeds/feed_lupus.rss.xml",
        body.replace(b"</channel>", item + b"</channel>"),
    )
    sink.hold_rcpts = {TRAP}
    before_runs = world.asset_runs()
    before_digests = len(world.digests())

    run_id = api.trigger("lupus_ingest")
    c.wait_for("the trap's digest to reach the SMTP server", sink.holding.is_set, RUN_TIMEOUT_S, interval=0.2)
    digest_run = c.wait_for("the digest run", lambda: sorted(world.asset_runs() - before_runs), 30)[0]

    def sender() -> dict[str, Any] | None:
        tis = api.task_instances("lupus_digest", digest_run)
        running = [
            t for t in tis if t["task_id"] == "send_digests" and t["state"] == "running" and t["hostname"]
        ]
        return running[0] if running else None

    victim_ti = c.wait_for("the running send_digests", sender, 30, interval=0.2)
    victim = victim_ti["hostname"]
    assert victim in c.worker_names
    killed = c.kill_worker(victim)
    t_kill = time.monotonic()
    sink.release.set()  # the connection died with the worker; nothing more comes of it
    assert len(killed) >= 3  # the worker, its pool process, the task's supervisor and process
    assert not any(pid for pid, _ in c.leftovers() if pid in killed)

    digest = world.wait_asset_digest(after=before_runs)
    retried_after = time.monotonic() - t_kill
    assert digest["state"] == "success", c.tails()
    ingest = api.dag_run("lupus_ingest", run_id)
    assert ingest["state"] == "success"

    # Airflow saw the heartbeats stop and retried the task on the other worker.
    tries = api.tries("lupus_digest", digest["dag_run_id"], "send_digests", victim_ti["map_index"])
    survivor = next(n for n in c.worker_names if n != victim)
    assert [t["hostname"] for t in tries] == [victim, survivor], tries
    assert tries[0]["state"] in ("failed", "up_for_retry") and tries[-1]["state"] == "success"
    events = api.json("/api/v2/eventLogs?event=heartbeat%20timeout&dag_id=lupus_digest")["event_logs"]
    assert any(e["task_id"] == "send_digests" for e in events), events

    # No silent loss, no duplicate: each new subscriber has one digest at the server and `sent`,
    # except the one whose reply was held when its sender died: `unconfirmed`, never resent.
    ledger = world.ledger()
    new = world.digests()[before_digests:]
    received = Counter(m.rcpt_tos[0] for m in new)
    assert {e: ledger[e] for e in KILL_SUBSCRIBERS} == {
        e: ("unconfirmed" if e == TRAP else "sent") for e in KILL_SUBSCRIBERS
    }
    assert received == Counter({e: 1 for e in KILL_SUBSCRIBERS if e != TRAP})
    assert [m.rcpt_tos for m in sink.held] == [[TRAP]]
    # `unconfirmed` only where the message reached the server; over both tests, the server
    # accepted exactly the digests the ledger calls sent, each once.
    unconfirmed = {e for e, s in ledger.items() if s == "unconfirmed"}
    assert unconfirmed == {r for m in sink.held for r in m.rcpt_tos}
    every = Counter(m.rcpt_tos[0] for m in world.digests())
    assert every == Counter({e: 1 for e, s in ledger.items() if s == "sent"})

    # The store holds each paper once: no DOI twice, the new item among them.
    with world.engine.connect() as conn:
        dois = [
            r[0] for r in conn.execute(sa.select(store.papers.c.doi).where(store.papers.c.doi.is_not(None)))
        ]
    assert len(dois) == len(set(dois)) and NEW_ITEM_DOI in dois
    assert all("a worker lost mid-send" in _text(m.data) for m in new)
    print(
        f"killed {victim} ({len(killed)} processes) mid-send; retried on {survivor}, digest run done "
        f"{retried_after:.0f} s after the kill (heartbeat timeout "
        f"{c.differences['AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT']} s)"
    )


def _text(data: bytes) -> str:
    msg = email.message_from_bytes(data, policy=policy.default)
    return " ".join(str(p.get_content()) for p in msg.walk() if p.get_content_maintype() == "text")
