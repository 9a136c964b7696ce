"""The delivery ledger's guarantees, each held against the failure that would break it.

No email twice when two senders meet at the claim, when three sender processes run at once,
when a sender is killed mid-send, when PostgreSQL drops every connection right after the mail
server accepted a message, or when the SMTP connection dies after the body. A cursor only moves
forward, and a delivered digest clears the bounce count. (The mutation table in
docs/testing.md names the test that kills each change to these lines.)
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.smtp import SMTP, Envelope, Session
from factories import add_papers
from smtp_sink import SinkHandler, SmtpSink, text_part
from webapp import DAY, NOW, settings_for

from lupus_alerts import delivery, digest, mailer, store, subscribers
from lupus_alerts.config import Settings

SETTINGS_RAW = {
    "digest": {"public_base_url": "https://alerts.example.org/lupus-alerts"},
    "mail": {"mode": "smtp"},
}


def smtp(sink: SmtpSink) -> mailer.SmtpTransport:
    return mailer.SmtpTransport("127.0.0.1", sink.port, timeout=10)


def ledger(engine: sa.Engine) -> list[sa.Row]:
    with engine.connect() as c:
        return list(c.execute(sa.select(store.deliveries).order_by(store.deliveries.c.id)))


def run(engine: sa.Engine, settings: Settings, sink: SmtpSink, day: date = DAY, now: datetime = NOW) -> Any:
    plan = delivery.plan_period(engine, settings, day=day, now=now)
    with smtp(sink) as t:
        return delivery.send_due(engine, settings, day=day, subscriber_ids=plan.due, now=now, transport=t)


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[sa.Engine]:
    store.upgrade(pg_url)
    engine = store.make_engine(pg_url)
    yield engine
    engine.dispose()


# --- concurrent senders -------------------------------------------------------------------------


def test_two_senders_meeting_at_the_claim_send_one_email(pg_engine: sa.Engine, tmp_path: Path) -> None:
    """Both have read the row as queued and rendered it; they claim at the same moment. The
    claim accepts only queued or failed_transient rows, so exactly one wins."""
    settings = settings_for(tmp_path)
    s = subscribers.add(pg_engine, email="ana@example.org", from_beginning=True)
    add_papers(pg_engine, [["nephrology"]])
    delivery.plan_period(pg_engine, settings, day=DAY, now=NOW)
    barrier = threading.Barrier(2)

    def build_then_meet(*args: Any, **kw: Any) -> Any:
        d = digest.build_digest(*args, **kw)
        barrier.wait(timeout=20)  # both senders hold the rendered digest; now both claim
        return d

    results: list[Any] = []
    errors: list[BaseException] = []
    with SmtpSink() as sink:

        def sender() -> None:
            try:
                with smtp(sink) as t:
                    results.append(
                        delivery.send_due(
                            pg_engine,
                            settings,
                            day=DAY,
                            subscriber_ids=[s.id],
                            now=NOW,
                            transport=t,
                            build=build_then_meet,
                        )
                    )
            except BaseException as e:  # surfaced below
                errors.append(e)

        threads = [threading.Thread(target=sender) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
        assert len(sink.handler.messages) == 1
    assert sorted(r.sent for r in results) == [0, 1]
    [row] = ledger(pg_engine)
    assert (row.state, row.attempts) == ("sent", 1)


_SENDER = """
import sys
from datetime import date, datetime
from lupus_alerts import delivery, mailer, store
from lupus_alerts.config import settings_from_dict
url, port, barrier_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
settings = settings_from_dict({raw!r})
engine = store.make_engine(url)
ids = [int(x) for x in sys.argv[4].split(",")]
import glob, os, time
open(barrier_file + "." + str(os.getpid()), "w").close()
while len(glob.glob(barrier_file + ".*")) < int(sys.argv[5]):  # all senders start together
    time.sleep(0.01)
with mailer.SmtpTransport("127.0.0.1", port, timeout=20) as t:
    stats = delivery.send_due(engine, settings, day=date(2026, 11, 27), subscriber_ids=ids,
                              now=datetime(2026, 11, 27, 9), transport=t)
print("SENT", stats.sent, flush=True)
"""


def _sender_process(url: str, port: int, ids: list[int], barrier: Path, n: int) -> subprocess.Popen[str]:
    script = _SENDER.replace("{raw!r}", repr(SETTINGS_RAW))
    return subprocess.Popen(
        [sys.executable, "-c", script, url, str(port), str(barrier), ",".join(map(str, ids)), str(n)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )


def test_three_sender_processes_at_once_send_each_digest_once(
    pg_url: str, pg_engine: sa.Engine, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path)
    subs = [
        subscribers.add(pg_engine, email=f"reader{i}@example.org", from_beginning=True) for i in range(30)
    ]
    add_papers(pg_engine, [["nephrology"]])
    delivery.plan_period(pg_engine, settings, day=DAY, now=NOW)
    ids = [s.id for s in subs]
    with SmtpSink() as sink:
        procs = [_sender_process(pg_url, sink.port, ids, tmp_path / "go", 3) for _ in range(3)]
        outs = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0], [o[1][-2000:] for o in outs]
        rcpts = sorted(m.rcpt_tos[0] for m in sink.handler.messages)
    assert rcpts == sorted(f"reader{i}@example.org" for i in range(30))  # each once
    assert sum(int(o[0].split()[-1]) for o in outs) == 30
    assert {r.state for r in ledger(pg_engine)} == {"sent"}


# --- a sender killed, the database dropping, the SMTP connection dying --------------------------


class _HoldReply(SinkHandler):
    """Accepts the message body, then keeps the sender waiting for the reply until released."""

    def __init__(self) -> None:
        super().__init__()
        self.received = threading.Event()
        self.release = threading.Event()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        reply = await super().handle_DATA(server, session, envelope)
        self.received.set()
        while not self.release.is_set():
            await asyncio.sleep(0.05)
        return reply


def test_a_sender_killed_mid_send_never_causes_a_second_email(db_url: str, tmp_path: Path) -> None:
    store.upgrade(db_url)
    engine = store.make_engine(db_url)
    settings = settings_for(tmp_path)
    s = subscribers.add(engine, email="ana@example.org", from_beginning=True)
    add_papers(engine, [["nephrology"]])
    delivery.plan_period(engine, settings, day=DAY, now=NOW)
    with SmtpSink() as sink:
        handler = _HoldReply()
        sink.controller.handler = handler
        sink.handler = handler
        proc = _sender_process(db_url, sink.port, [s.id], tmp_path / "go", 1)
        try:
            assert handler.received.wait(60), "the sender never got to DATA"
            proc.send_signal(signal.SIGKILL)  # the message is with the server; the sender dies
            proc.wait(10)
        finally:
            handler.release.set()
        assert [r.state for r in ledger(engine)] == ["sending"]
        with smtp(sink) as t:  # the rerun (Airflow's retry, or the next run)
            stats = delivery.send_due(engine, settings, day=DAY, subscriber_ids=[s.id], now=NOW, transport=t)
        assert len(sink.handler.messages) == 1
    assert (stats.sent, stats.unconfirmed) == (0, 1)
    [row] = ledger(engine)
    assert row.state == "unconfirmed"
    assert subscribers.get(engine, s.id).cursor == row.announce_to  # its papers are not sent again
    engine.dispose()


class _DropDatabaseAfterAccepting(SinkHandler):
    """On the first message: accepts it, then PostgreSQL drops every connection to the store."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        reply = await super().handle_DATA(server, session, envelope)
        if len(self.messages) == 1:
            admin = sa.create_engine(self.url, isolation_level="AUTOCOMMIT")
            with admin.connect() as c:
                c.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
            admin.dispose()
        return reply


def test_a_postgresql_outage_right_after_the_server_accepted_never_causes_a_second_email(
    pg_url: str, pg_engine: sa.Engine, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path)
    subs = [subscribers.add(pg_engine, email=f"r{i}@example.org", from_beginning=True) for i in range(3)]
    add_papers(pg_engine, [["nephrology"]])
    with SmtpSink() as sink:
        handler = _DropDatabaseAfterAccepting(pg_url)
        sink.controller.handler = handler
        sink.handler = handler
        first = run(pg_engine, settings, sink)  # the outcome of the first could not be recorded
        second = run(pg_engine, settings, sink)  # the retry
        third = run(pg_engine, settings, sink)
        rcpts = sorted(m.rcpt_tos[0] for m in sink.handler.messages)
    assert rcpts == [s.email for s in subs]  # each exactly once
    assert first.sent == 2 and second.unconfirmed == 1 and (third.sent, third.unconfirmed) == (0, 0)
    assert sorted(r.state for r in ledger(pg_engine)) == ["sent", "sent", "unconfirmed"]


def test_an_smtp_connection_lost_after_the_body_never_causes_a_second_email(
    engine: sa.Engine, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path)
    subscribers.add(engine, email="ana@example.org", from_beginning=True)
    add_papers(engine, [["nephrology"]])
    with SmtpSink() as sink:
        sink.handler.drop_after_data = 1  # the server takes the body and the connection dies
        first = run(engine, settings, sink)
        again = run(engine, settings, sink)
        assert len(sink.handler.messages) == 1
    assert (first.unconfirmed, again.sent, again.unconfirmed) == (1, 0, 0)
    assert [r.state for r in ledger(engine)] == ["unconfirmed"]


# --- the cursor and the bounce count ------------------------------------------------------------


def test_a_digest_confirmed_late_never_moves_the_cursor_back(engine: sa.Engine, tmp_path: Path) -> None:
    """Day 1's digest is left unconfirmed (the connection died after the body); day 2's is sent;
    the operator then requeues day 1's and it is sent. The cursor stays at day 2's end, so day
    3's digest does not repeat day 2's papers."""
    settings = settings_for(tmp_path)
    s = subscribers.add(engine, email="ana@example.org", from_beginning=True)
    add_papers(engine, [["nephrology"]])
    with SmtpSink() as sink:
        sink.handler.drop_after_data = 1
        run(engine, settings, sink)  # day 1: unconfirmed
        day2 = add_papers(engine, [["dermatology"]])
        run(engine, settings, sink, day=date(2026, 11, 28), now=datetime(2026, 11, 28, 9))
        assert subscribers.get(engine, s.id).cursor == day2[-1]
        assert delivery.requeue_unconfirmed(engine, period="2026-11-27") == 1
        late = run(engine, settings, sink, day=date(2026, 11, 28), now=datetime(2026, 11, 28, 10))
        assert late.sent == 1  # day 1's digest, resent on the operator's word
        assert subscribers.get(engine, s.id).cursor == day2[-1]  # not back to day 1's end
        add_papers(engine, [["pregnancy"]])
        run(engine, settings, sink, day=date(2026, 11, 29), now=datetime(2026, 11, 29, 9))
        day3 = text_part(sink.handler.messages[-1].message, "html")
    assert "constructed.3" in day3 and "constructed.2" not in day3 and "constructed.1" not in day3


def test_a_delivered_digest_clears_the_bounce_count(engine: sa.Engine, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, mail={"mode": "smtp", "max_permanent_failures": 2})
    s = subscribers.add(engine, email="flaky@example.org", from_beginning=True)
    add_papers(engine, [["nephrology"]])
    with SmtpSink() as sink:
        sink.handler.rcpt_codes["flaky@example.org"] = [550, 250, 550]
        run(engine, settings, sink)  # day 1: a bounce
        assert subscribers.get(engine, s.id).permanent_failures == 1
        add_papers(engine, [["nephrology"]])
        run(engine, settings, sink, day=date(2026, 11, 28), now=datetime(2026, 11, 28, 9))  # delivered
        assert subscribers.get(engine, s.id).permanent_failures == 0
        add_papers(engine, [["nephrology"]])
        run(engine, settings, sink, day=date(2026, 11, 29), now=datetime(2026, 11, 29, 9))  # a bounce
    s2 = subscribers.get(engine, s.id)
    # Two bounces, but not in a row: still active (the limit is 2 consecutive).
    assert (s2.status, s2.permanent_failures) == ("active", 1)
