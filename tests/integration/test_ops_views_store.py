"""The operator views' data, read from real stores (SQLite and PostgreSQL) holding real rows.

Ingest runs are recorded by `pipeline.record_run` with the summaries the tasks return (a
PubMed summary, `feeds.FeedOutcome`s, the announce step's `pipeline.asset_extra`); digests are
planned and sent by `delivery` through a real SMTP server that answers some recipients with
4xx/5xx. The papers are CONSTRUCTED (tests/factories.py), one with a hostile title and link.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from factories import add_papers, insert_announced, make_settings
from smtp_sink import SmtpSink

from lupus_alerts import delivery, mailer, ops_views, pipeline, store, subscribers, tokens
from lupus_alerts.config import Settings
from lupus_alerts.feeds import FeedOutcome
from lupus_alerts.models import Classification, Paper, TopicLabel

DAY = date(2026, 11, 27)  # a Friday
NOW = datetime(2026, 11, 27, 9, 0, 0)
RUN = "manual__2026-11-27T06:00:00+00:00"
WINDOW = pipeline.RunWindow(datetime(2026, 11, 26, 5), datetime(2026, 11, 27, 5), "data_interval")
HOSTILE_TITLE = '<script>alert("t")</script> Lupus & <b>kidneys</b>'


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(tokens.SECRET_ENV, "ops-views-test-secret-0123456789")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(
        tmp_path,
        mail={"mode": "smtp", "smtp_connection_id": "smtp_test", "max_permanent_failures": 3},
        feeds=[
            {"id": "lupus", "name": "Lupus", "publisher": "SAGE", "url": "https://example.org/l.rss"},
            {"id": "ard", "name": "Annals & <Co>", "publisher": "BMJ", "url": "https://example.org/a.rss"},
            {"id": "new", "name": "Never Polled", "publisher": "X", "url": "https://example.org/n.rss"},
        ],
    )


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as s:
        yield s


def hostile_paper(conn: sa.Connection, announce_no: int) -> None:
    paper = Paper(
        source="feed:lupus",
        source_key="guid-1",
        title=HOSTILE_TITLE,
        url="javascript:alert(1)",  # neither DOI nor PMID: only this link, which must not be used
        journal="Lupus",
        classification=Classification(True, 0.9, topics=[TopicLabel("nephrology", 0.8)]),
    )
    insert_announced(conn, paper, announce_no=announce_no, now=NOW)


def record_ingest(engine: sa.Engine) -> None:
    """An ingest run as the tasks record it: PubMed, two feeds (one failed), then announce."""
    pubmed = {
        "fetched": 12,
        "parsed": 11,
        "new": 4,
        "updated": 2,
        "unchanged": 5,
        "unstored": 0,
        "problems": [],
    }
    pipeline.record_run(engine, RUN, "pubmed", pubmed, window=WINDOW)
    ok = FeedOutcome(
        feed_id="lupus", status="ok", url="u", http_status=200, items=9, kept=7, new=3, updated=1
    )
    pipeline.record_run(engine, RUN, "feed:lupus", ok.to_dict(), window=WINDOW)
    bad = FeedOutcome(feed_id="ard", status="error", url="u", http_status=404, error="HTTP 404 <Not Found>")
    pipeline.record_run(engine, RUN, "feed:ard", bad.to_dict(), window=WINDOW, error=bad.error)
    before = 0
    add_papers(engine, [["nephrology", "therapeutics"], ["nephrology"], []])  # numbers 1..3
    with engine.begin() as conn:
        (no,) = store.next_numbers(conn, "announce", 1)
        hostile_paper(conn, no)  # number 4
    extra = pipeline.asset_extra(engine, RUN, before, 4)
    pipeline.record_run(engine, RUN, pipeline.ANNOUNCE_SOURCE, extra, window=WINDOW)


def test_ingest_run_shows_each_source_counts_and_failure(engine: sa.Engine) -> None:
    record_ingest(engine)
    view = ops_views.ingest_run_view(engine, RUN, feed_names={"lupus": "Lupus", "ard": "Annals"})
    assert view.found and (view.window_start, view.window_end) == (WINDOW.start, WINDOW.end)
    by = {s.source: s for s in view.sources}
    assert [s.source for s in view.sources] == ["pubmed", "feed:ard", "feed:lupus"]  # PubMed, then by name
    p = by["pubmed"]
    assert (p.name, p.fetched, p.kept, p.new, p.known, p.failed) == ("PubMed", 12, 11, 4, 7, False)
    lupus = by["feed:lupus"]
    assert (lupus.fetched, lupus.kept, lupus.new, lupus.known, lupus.http_status) == (9, 7, 3, 4, 200)
    ard = by["feed:ard"]
    assert ard.failed and ard.error == "HTTP 404 <Not Found>" and ard.http_status == 404 and ard.new == 0


def test_ingest_run_lists_its_new_papers_per_topic_with_safe_links(engine: sa.Engine) -> None:
    record_ingest(engine)
    view = ops_views.ingest_run_view(engine, RUN, topic_names={"nephrology": "Lupus nephritis"})
    assert (view.new_papers, view.announce_from, view.announce_to) == (4, 0, 4)
    groups = {g.label: g for g in view.topics}
    assert [g.label for g in view.topics] == [
        "nephrology",
        "therapeutics",
        "",
    ]  # largest first, untopiced last
    assert groups["nephrology"].name == "Lupus nephritis" and groups[""].name == "no topic"
    assert [p.announce_no for p in groups["nephrology"].papers] == [1, 2, 4]
    assert groups["nephrology"].papers[0].url == "https://doi.org/10.9999/constructed.1"
    hostile = groups["nephrology"].papers[2]
    assert hostile.title == HOSTILE_TITLE and hostile.url is None  # javascript: is no link

    html = ops_views.render_ingest_run(view, dag_id="lupus_ingest", base="/lupus-ops")
    assert "<script>alert" not in html and "&lt;script&gt;alert(&#34;t&#34;)&lt;/script&gt;" in html
    assert "javascript:" not in html
    assert 'href="https://doi.org/10.9999/constructed.1"' in html
    assert "HTTP 404 &lt;Not Found&gt;" in html


def test_ingest_run_tolerates_attempt_rows_and_an_unknown_run(engine: sa.Engine) -> None:
    assert not ops_views.ingest_run_view(engine, "manual__nothing").found
    # Rows as a per-attempt record may hand them back: an extra key, one row per attempt.
    rows = [
        {"source": "feed:lupus", "attempt": 2, "stats": {"items": 5, "kept": 5, "new": 0}, "error": None},
        {"source": "feed:lupus", "attempt": 1, "stats": {}, "error": "timed out", "window_start": None},
    ]
    got = sorted((ops_views.source_outcome(r) for r in rows), key=lambda s: s.attempt)
    assert [(s.attempt, s.failed, s.known) for s in got] == [(1, True, None), (2, False, 5)]


def sub(engine: sa.Engine, email: str, **kw: Any) -> subscribers.Subscriber:
    kw.setdefault("topics", None)
    return subscribers.add(engine, email=email, from_beginning=True, **kw)


def test_digest_run_counts_every_outcome_with_reasons_and_unconfirmed_rows(
    engine: sa.Engine, settings: Settings, sink: SmtpSink
) -> None:
    fine = sub(engine, "fine@example.org")
    gone = sub(engine, "gone@example.org")
    busy = sub(engine, "busy@example.org")
    quiet = sub(engine, "quiet@example.org", topics=["dermatology"])  # nothing new in its topic
    weekly_other_day = sub(engine, "weekly@example.org", frequency="weekly", weekday=0)  # not Friday
    with engine.begin() as c:  # bypasses validation, as an old import might have
        c.execute(
            sa.insert(store.subscribers).values(
                email="not an address", all_topics=True, created_at=NOW, updated_at=NOW
            )
        )
    sink.handler.rcpt_codes["gone@example.org"] = [550]
    sink.handler.rcpt_codes["busy@example.org"] = [450]
    add_papers(engine, [["nephrology"], ["nephrology"]])
    # An earlier period's digest whose send was interrupted: unconfirmed, needs the operator.
    with engine.begin() as c:
        c.execute(
            sa.insert(store.deliveries).values(
                subscriber_id=fine.id,
                period="2026-11-20",
                state="unconfirmed",
                message_id="<m@x>",
                announce_from=0,
                announce_to=0,
                update_from=0,
                update_to=0,
                attempts=1,
                last_error="found in `sending` after a crash",
                created_at=NOW,
                updated_at=NOW,
            )
        )
    plan = delivery.plan_period(engine, settings, day=DAY, now=NOW)
    with mailer.SmtpTransport("127.0.0.1", sink.port, timeout=5) as t:
        delivery.send_due(engine, settings, day=DAY, subscriber_ids=plan.due, now=NOW, transport=t)

    view = ops_views.digest_run_view(engine, "asset_triggered__x", DAY)
    assert view.periods == ["2026-11-27", "2026-W48"]
    assert view.counts == {
        "sent": 1,
        "skipped": 1,
        "deferred": 1,
        "bounced": 1,
        "failed": 1,
        "unconfirmed": 0,
    }
    assert view.papers_sent == 2
    by_sub = {r.subscriber_id: r for r in view.rows}
    assert fine.id not in by_sub and weekly_other_day.id not in by_sub
    assert by_sub[gone.id].outcome == "bounced" and "550" in by_sub[gone.id].reason
    assert by_sub[busy.id].outcome == "deferred" and "450" in by_sub[busy.id].reason
    assert by_sub[quiet.id].outcome == "skipped" and by_sub[quiet.id].reason == "nothing new to send"
    (invalid,) = [r for r in view.rows if r.outcome == "failed"]
    assert invalid.reason == "invalid email address"
    (att,) = view.attention
    assert (att.subscriber_id, att.period, att.state) == (fine.id, "2026-11-20", "unconfirmed")

    html = ops_views.render_digest_run(view, dag_id="lupus_digest")
    assert "invalid email address" in html and "2026-11-20" in html
    assert "@example.org" not in html  # addresses stay out of Airflow


def test_weekly_rows_belong_to_the_run_of_the_subscribers_weekday(
    engine: sa.Engine, settings: Settings, sink: SmtpSink
) -> None:
    friday = sub(engine, "friday@example.org", frequency="weekly", weekday=4)
    add_papers(engine, [["nephrology"]])
    plan = delivery.plan_period(engine, settings, day=DAY, now=NOW)
    with mailer.SmtpTransport("127.0.0.1", sink.port, timeout=5) as t:
        delivery.send_due(engine, settings, day=DAY, subscriber_ids=plan.due, now=NOW, transport=t)
    assert ops_views.digest_run_view(engine, "r", DAY).counts["sent"] == 1
    # Thursday of the same ISO week: not that run's digest.
    assert ops_views.digest_run_view(engine, "r", DAY - timedelta(days=1)).counts["sent"] == 0
    assert friday.id


@pytest.mark.parametrize(
    ("state", "code", "outcome"),
    [
        ("sent", 250, "sent"),
        ("empty", None, "skipped"),
        ("cancelled", None, "skipped"),
        ("superseded", None, "skipped"),
        ("queued", None, "deferred"),
        ("sending", None, "deferred"),
        ("failed_transient", 451, "deferred"),
        ("failed_permanent", 550, "bounced"),
        ("failed_permanent", None, "failed"),
        ("unconfirmed", None, "unconfirmed"),
        ("something_new", None, "failed"),
    ],
)
def test_each_ledger_state_reads_as_one_outcome(state: str, code: int | None, outcome: str) -> None:
    assert ops_views.delivery_outcome(state, code) == outcome


# -- dashboard --------------------------------------------------------------------------------


def seed_dashboard(engine: sa.Engine, settings: Settings) -> None:
    """Papers first seen on three days from two sources, deliveries over two days, feed state."""
    ps = store.paper_sources
    with engine.begin() as c:
        for n, (source, day_offset) in enumerate(
            [
                ("pubmed", 0),
                ("pubmed", 0),
                ("feed:lupus", 0),
                ("pubmed", 1),
                ("feed:lupus", 2),
                ("pubmed", 40),
            ]
        ):
            seen = NOW - timedelta(days=day_offset)
            pid = c.execute(
                sa.insert(store.papers)
                .values(title=f"p{n}", record={}, first_seen_at=seen, updated_at=seen)
                .returning(store.papers.c.id)
            ).scalar_one()
            c.execute(
                sa.insert(ps).values(
                    paper_id=pid,
                    source=source,
                    source_key=str(n),
                    record={},
                    first_seen_at=seen,
                    last_seen_at=seen,
                )
            )
        c.execute(
            sa.insert(store.feed_state),
            [
                {
                    "feed_id": "lupus",
                    "url": "u",
                    "last_status": 200,
                    "last_error": None,
                    "last_polled_at": NOW,
                    "last_success_at": NOW - timedelta(hours=3),
                    "consecutive_failures": 0,
                },
                {
                    "feed_id": "ard",
                    "url": "u",
                    "last_status": 404,
                    "last_error": "HTTP 404",
                    "last_polled_at": NOW,
                    "last_success_at": NOW - timedelta(days=5),
                    "consecutive_failures": 2,
                },
            ],
        )
    add_papers(engine, [["nephrology", "therapeutics"], ["nephrology"]])  # announced at factories.NOW


def test_papers_per_day_counts_each_source_within_the_window(engine: sa.Engine, settings: Settings) -> None:
    seed_dashboard(engine, settings)
    days = ops_views.day_range(DAY, 30)
    assert len(days) == 30 and days[-1] == DAY and days[0] == DAY - timedelta(days=29)
    got = ops_views.papers_per_day(engine, days)
    # the constructed announced papers are pubmed sources too (add_papers stores no sources)
    assert got == {
        "pubmed": {DAY: 2, DAY - timedelta(days=1): 1},
        "feed:lupus": {DAY: 1, DAY - timedelta(days=2): 1},
    }


def test_new_papers_per_topic_and_digests_per_day(
    engine: sa.Engine, settings: Settings, sink: SmtpSink
) -> None:
    seed_dashboard(engine, settings)
    days = ops_views.day_range(DAY, 30)
    assert ops_views.new_papers_per_topic(engine, days) == [("nephrology", 2), ("therapeutics", 1)]
    assert ops_views.new_papers_per_topic(engine, ops_views.day_range(DAY - timedelta(days=40), 5)) == []
    sub(engine, "fine@example.org")
    sub(engine, "gone@example.org")
    sink.handler.rcpt_codes["gone@example.org"] = [550]
    plan = delivery.plan_period(engine, settings, day=DAY, now=NOW)
    with mailer.SmtpTransport("127.0.0.1", sink.port, timeout=5) as t:
        delivery.send_due(engine, settings, day=DAY, subscriber_ids=plan.due, now=NOW, transport=t)
    assert ops_views.digests_per_day(engine, days) == {"sent": {DAY: 1}, "failed": {}, "bounced": {DAY: 1}}


def test_feed_freshness_puts_failing_feeds_first(engine: sa.Engine, settings: Settings) -> None:
    seed_dashboard(engine, settings)
    feeds = ops_views.feed_freshness(engine, settings, NOW)
    assert [(f.feed_id, f.status) for f in feeds] == [
        ("ard", "failing"),
        ("new", "never polled"),
        ("lupus", "ok"),
    ]
    ard, new, lupus = feeds
    assert (ard.status, ard.http_status, ard.error, ard.hours_since_success) == (
        "failing",
        404,
        "HTTP 404",
        120,
    )
    assert new.status == "never polled" and new.last_success_at is None and new.hours_since_success is None
    assert lupus.hours_since_success == 3 and lupus.last_item_at == NOW


def test_dashboard_page_draws_its_four_charts_as_inline_svg(engine: sa.Engine, settings: Settings) -> None:
    seed_dashboard(engine, settings)
    view = ops_views.dashboard_view(engine, settings, now=NOW, topic_names={"nephrology": "Lupus nephritis"})
    html = ops_views.render_dashboard(view, base="/lupus-ops")
    assert html.count("<svg ") == 4
    for name, svg in view.charts.items():
        ET.fromstring(svg)  # each chart is well-formed XML
        assert name
    assert "Lupus nephritis" in view.charts["topics"]
    assert "Annals &amp; &lt;Co&gt;" in html and "<Co>" not in html  # feed names are escaped
    assert "<script" not in html and "src=" not in html  # nothing loaded from elsewhere
    assert view.to_dict()["papers_per_source"]["pubmed"] == {
        DAY.isoformat(): 2,
        (DAY - timedelta(days=1)).isoformat(): 1,
    }
