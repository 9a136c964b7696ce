"""End to end: `dag.test()` of lupus_ingest then lupus_digest, as `make demo` runs them.

The DAGs run against the demo's sample servers (E-utilities replay, journal feeds over HTTP, one
journal whose feed has moved) on a SQLite store, and send their digests over SMTP to an aiosmtpd
server on localhost. Expected figures are computed from the served files, not hard-coded.
Then reruns: the same logical date again, the fallback digest run, and every task body called
again as a cleared task would - no email twice, no paper lost.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from lupus_alerts import demo, pipeline, store

pytestmark = [pytest.mark.airflow, pytest.mark.slow]

LOGICAL = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)  # a Friday; the weekly demo subscriber's day
DOI_RE = re.compile(rb"10\.5555/[a-z]+\.2026\.\d{4}", re.I)
SUCCESS = "success"


class World:
    """The running sample servers, the demo config and the Airflow environment for the module."""

    def __init__(self, root: Path, servers: demo.DemoServers, env: dict[str, str], config: Path) -> None:
        self.root, self.servers, self.env, self.config = root, servers, env, config
        self.settings = pipeline.load_settings(config)
        self.engine = pipeline.open_store(self.settings)
        self.runs: dict[str, dict[str, Any]] = {}

    def run(
        self, tag: str, *runs: tuple[str, datetime], env: dict[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """dag.test() these runs in order, in one Airflow process (as `make demo` does)."""
        results = demo.run_dags(list(runs), env or self.env, log_path=self.root / "logs" / f"{tag}.log")
        for n, r in enumerate(results):
            self.runs[f"{tag}.{n}"] = r
        return results

    def digests(self) -> list[demo.CaughtMail]:
        return [
            m for m in self.servers.mail if b"X-Lupus-Alerts" in m.content or b"List-Unsubscribe" in m.content
        ]

    def alerts(self) -> list[demo.CaughtMail]:
        return [m for m in self.servers.mail if "operators@demo.example.org" in m.rcpt_tos]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("e2e")
    with demo.sample_servers(LOGICAL.date()) as servers:
        config = demo.write_demo_config(root, servers, mail_mode="smtp")
        # Digests and operator alerts both go to the local SMTP catcher (connection smtp_default).
        env = demo.airflow_env(root / "airflow_home", config, operator_smtp_port=servers.operator_smtp_port)
        demo.init_airflow(env)
        w = World(root, servers, env, config)
        with pytest.MonkeyPatch.context() as mp:
            # The in-process calls of task bodies below need what the tasks get.
            for key in ("LUPUS_ALERTS_SECRET", "AIRFLOW_CONN_SMTP_DEFAULT"):
                mp.setenv(key, env[key])
            demo.add_demo_subscribers(config, LOGICAL.date())
            w.run("first", ("lupus_ingest", LOGICAL), ("lupus_digest", LOGICAL))
            yield w


def _served_dois() -> tuple[set[str], dict[str, set[str]]]:
    pubmed = {d.decode().lower() for d in DOI_RE.findall((demo.DEMO_DATA / "pubmed_demo.xml").read_bytes())}
    feeds = {
        fid: {d.decode().lower() for d in DOI_RE.findall((demo.DEMO_DATA / file).read_bytes())}
        for fid, _n, _p, file, _a in demo.DEMO_FEEDS
    }
    return pubmed, feeds


def _snapshot(engine: sa.Engine) -> dict[str, Any]:
    with engine.connect() as c:
        return {
            "papers": c.execute(
                sa.select(
                    store.papers.c.id, store.papers.c.doi, store.papers.c.pmid, store.papers.c.announce_no
                ).order_by(store.papers.c.id)
            ).all(),
            "sources": c.execute(
                sa.select(
                    store.paper_sources.c.paper_id,
                    store.paper_sources.c.source,
                    store.paper_sources.c.source_key,
                ).order_by(store.paper_sources.c.id)
            ).all(),
            "topics": c.execute(sa.select(store.paper_topics).order_by(*store.paper_topics.c)).all(),
            "ledger": c.execute(
                sa.select(
                    store.deliveries.c.subscriber_id, store.deliveries.c.period, store.deliveries.c.state
                ).order_by(store.deliveries.c.id)
            ).all(),
        }


def _topic_titles(engine: sa.Engine, label: str | None) -> set[str]:
    q = sa.select(store.papers.c.title).where(store.papers.c.announce_no.is_not(None))
    if label:
        q = q.join(store.paper_topics, store.paper_topics.c.paper_id == store.papers.c.id).where(
            store.paper_topics.c.label == label
        )
    with engine.connect() as c:
        return {r[0] for r in c.execute(q)}


def _text_of(msg: demo.CaughtMail) -> str:
    m = email.message_from_bytes(msg.content, policy=email.policy.default)
    part = m.get_body(preferencelist=("plain",))
    return part.get_content() if part is not None else ""


def test_ingest_run_fetches_every_source_and_one_moved_feed_fails_visibly(world: World) -> None:
    run = world.runs["first.0"]
    assert run["state"] == SUCCESS
    assert run["tasks"]["search_pubmed"] == run["tasks"]["fetch_pubmed"] == [SUCCESS]
    assert run["tasks"]["classify_and_announce"] == [SUCCESS]
    # One mapped task per journal; only the moved feed's is red.
    assert sorted(run["tasks"]["poll_feed"]) == sorted([SUCCESS] * len(demo.DEMO_FEEDS) + ["failed"])
    rows = {r["source"]: r for r in pipeline.run_records(world.engine, run["run_id"])}
    assert set(rows) == {"pubmed", "announce"} | {f"feed:{f[0]}" for f in demo.DEMO_FEEDS} | {
        f"feed:{demo.MOVED_FEED[0]}"
    }
    assert "404" in rows[f"feed:{demo.MOVED_FEED[0]}"]["error"]
    assert all(r["error"] is None for s, r in rows.items() if s != f"feed:{demo.MOVED_FEED[0]}")
    health = {h["feed_id"]: h for h in pipeline.feed_health(world.engine, world.settings)}
    assert health[demo.MOVED_FEED[0]]["status"] == "failing"
    assert all(health[f[0]]["status"] == "ok" for f in demo.DEMO_FEEDS)


def test_store_holds_each_paper_once_with_every_source(world: World) -> None:
    pubmed_dois, feed_dois = _served_dois()
    all_dois = pubmed_dois.union(*feed_dois.values())
    with world.engine.connect() as c:
        stored = {
            r[0] for r in c.execute(sa.select(store.papers.c.doi)) if r[0] and r[0].startswith("10.5555/")
        }
        sources = c.execute(
            sa.select(store.papers.c.doi, sa.func.count())
            .join(store.paper_sources, store.paper_sources.c.paper_id == store.papers.c.id)
            .group_by(store.papers.c.doi)
        ).all()
        numbers = [
            r[0]
            for r in c.execute(
                sa.select(store.papers.c.announce_no).where(store.papers.c.announce_no.is_not(None))
            )
        ]
    # Differently written DOIs (case, https://doi.org/, doi:, info:doi/) merged into one paper each.
    lupus_feed_dois = {d for d in all_dois if not d.startswith("10.5555/ar.2026.9")}  # minus non-lupus items
    assert stored == lupus_feed_dois
    per_doi = dict(sources)
    for d in pubmed_dois:
        expected = 1 + sum(d in dois for dois in feed_dois.values())
        assert per_doi[d] == expected, d
    # Announcement numbers are 1..n with no gap or repeat.
    assert sorted(numbers) == list(range(1, len(numbers) + 1))
    assert len(numbers) >= len(lupus_feed_dois)


def test_asset_event_carries_the_counts(world: World) -> None:
    db = Path(world.env["AIRFLOW_HOME"]) / "airflow.db"
    with sqlite3.connect(db) as c:
        rows = c.execute(
            "SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id"
            " WHERE a.uri = ? ORDER BY e.id",
            ("lupus_alerts://papers",),
        ).fetchall()
    extra = json.loads(rows[0][0])
    assert extra["run_id"] == world.runs["first.0"]["run_id"]
    with world.engine.connect() as c:
        announced = c.execute(
            sa.select(sa.func.count()).where(store.papers.c.announce_no.is_not(None))
        ).scalar()
    assert extra["new_papers"] == announced
    assert extra["failed_sources"] == f"feed:{demo.MOVED_FEED[0]}"
    assert extra["numbers"] == f"1-{announced}"
    assert extra["papers from pubmed"] > 0 and all(
        f"papers from feed:{f[0]}" in extra for f in demo.DEMO_FEEDS
    )
    assert extra["new in nephrology"] == len(_topic_titles(world.engine, "nephrology"))
    # flat, so that the UI shows every count instead of a folded {…}
    assert not any(isinstance(v, dict | list) for v in extra.values())


def test_digests_arrive_over_smtp_with_each_subscribers_topics(world: World) -> None:
    assert world.runs["first.1"]["state"] == SUCCESS
    digests = world.digests()
    by_rcpt = {m.rcpt_tos[0]: m for m in digests}
    assert len(digests) == len(demo.DEMO_SUBSCRIBERS) == len(by_rcpt)
    neph = _text_of(by_rcpt["nephrologist@demo.example.org"])
    neph_titles = _topic_titles(world.engine, "nephrology")
    derm_titles = _topic_titles(world.engine, "dermatology")
    assert neph_titles and all(t.rstrip(".")[:60] in neph for t in neph_titles)
    assert not any(t.rstrip(".")[:60] in neph for t in derm_titles - neph_titles)
    with world.engine.connect() as c:
        ledger = c.execute(
            sa.select(store.deliveries.c.state, sa.func.count()).group_by(store.deliveries.c.state)
        ).all()
    assert dict(ledger) == {"sent": len(demo.DEMO_SUBSCRIBERS)}


def test_failed_feed_task_emails_the_operators_once(world: World) -> None:
    alerts = world.alerts()
    assert len(alerts) == 1  # on the last try only, not on each retry
    subject = email.message_from_bytes(alerts[0].content, policy=email.policy.default)["Subject"]
    assert "lupus_ingest.poll_feed" in subject
    # and the failed task's log says that it went out, and to whom
    log = (world.root / "logs" / "first.log").read_text(encoding="utf-8", errors="replace")
    assert "operator alert emailed to operators@demo.example.org" in log


def test_rerunning_both_dags_for_the_same_date_changes_nothing_and_sends_nothing(world: World) -> None:
    before, sent_before = _snapshot(world.engine), len(world.digests())
    results = world.run(
        "rerun",
        ("lupus_ingest", LOGICAL),
        ("lupus_digest", LOGICAL),
        ("lupus_digest", LOGICAL + timedelta(hours=3)),  # and the fallback (09:00) digest run
    )
    assert [r["state"] for r in results] == [SUCCESS] * 3
    assert _snapshot(world.engine) == before
    assert len(world.digests()) == sent_before


def test_every_task_body_called_again_as_a_cleared_task_changes_nothing(world: World) -> None:
    before, sent_before = _snapshot(world.engine), len(world.digests())
    run_id = world.runs["first.0"]["run_id"]
    window = pipeline.resolve_window(
        world.config,
        data_interval_start=LOGICAL - timedelta(days=1),
        data_interval_end=LOGICAL,
        run_after=LOGICAL,
        run_id=run_id,
    )
    plan = pipeline.search_pubmed(world.config, window=window)
    fetched = pipeline.fetch_pubmed(world.config, window=window, run_id=run_id)
    assert plan["hits"] == fetched["fetched"] > 0 and plan["batches"] == fetched["batches"]
    for fid, *_ in demo.DEMO_FEEDS:
        pipeline.poll_feed(world.config, feed_id=fid, run_id=run_id, window=window)
    with pytest.raises(pipeline.FeedPollFailed):
        pipeline.poll_feed(world.config, feed_id=demo.MOVED_FEED[0], run_id=run_id, window=window)
    extra = pipeline.classify_and_announce(world.config, run_id=run_id, window=window)
    assert extra["new_papers"] == 0
    plan = pipeline.plan_digests(world.config, day=LOGICAL.date())
    for chunk in plan["chunks"]:
        result = pipeline.send_digest_chunk(world.config, subscriber_ids=chunk, day=plan["day"])
        assert result["sent"] == 0
    assert _snapshot(world.engine) == before
    assert len(world.digests()) == sent_before


def test_a_paper_arriving_later_goes_out_in_the_next_digest(world: World) -> None:
    from lupus_alerts.testing.feeds_replay import serve_feed

    body = (demo.DEMO_DATA / "feed_lupus.rss.xml").read_bytes()
    item = (
        b"<item><title>Constructed test item: anti-CD38 therapy in refractory lupus nephritis</title>"
        b"<link>https://journals.sagepub.com/doi/abs/10.5555/lup.2026.8001?af=R</link>"
        b'<guid isPermaLink="false">10.5555/lup.2026.8001</guid>'
        b"<description>Lupus, Ahead of Print. Daratumumab induced renal responses in lupus nephritis "
        b"with proteinuria refractory to standard therapy.</description>"
        b"<pubDate>Sat, 28 Nov 2026 06:00:00 GMT</pubDate>"
        b"<dc:identifier>doi:10.5555/lup.2026.8001</dc:identifier></item>\n"
    )
    serve_feed(
        world.servers.feed_server,
        "/feeds/feed_lupus.rss.xml",
        body.replace(b"</channel>", item + b"</channel>"),
    )
    before = len(world.digests())
    next_day = LOGICAL + timedelta(days=1)
    results = world.run("next-day", ("lupus_ingest", next_day), ("lupus_digest", next_day))
    assert [r["state"] for r in results] == [SUCCESS, SUCCESS]
    new = world.digests()[before:]
    rcpts = sorted(m.rcpt_tos[0] for m in new)
    # The nephrologist and the all-topics subscriber get it; the dermatologist has nothing new
    # (no empty digests), and the weekly subscriber is not due on a Saturday.
    assert rcpts == ["nephrologist@demo.example.org", "rheumatologist@demo.example.org"]
    for m in new:
        text = _text_of(m)
        assert "anti-CD38 therapy in refractory lupus nephritis" in text
        assert "Voclosporin added to mycophenolate" not in text  # already sent yesterday


def test_failure_alerts_with_the_mail_server_down_do_not_break_the_run(world: World) -> None:
    before = len(world.servers.mail)
    down = dict(world.env)
    down["AIRFLOW_CONN_SMTP_DEFAULT"] = json.dumps(
        {
            "conn_type": "smtp",
            "host": "127.0.0.1",
            "port": demo.free_port(),
            "extra": {"disable_ssl": True, "disable_tls": True, "timeout": 2, "retry_limit": 1},
        }
    )
    (result,) = world.run("smtp-down", ("lupus_ingest", LOGICAL + timedelta(days=2)), env=down)
    assert result["state"] == SUCCESS
    assert "failed" in result["tasks"]["poll_feed"]  # the notifier ran, could not send, and said so
    assert "Failed to run task callback" in (world.root / "logs" / "smtp-down.log").read_text()
    assert len(world.servers.mail) == before
