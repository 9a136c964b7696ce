"""The delivery ledger end to end: real store (SQLite and PostgreSQL), real digests, real SMTP server."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from factories import add_papers, make_settings
from smtp_sink import SmtpSink, text_part

from lupus_alerts import delivery, mailer, store, subscribers, tokens
from lupus_alerts.config import Settings

SECRET = "delivery-test-secret-0123456789"
DAY = date(2026, 11, 27)  # a Friday
NOW = datetime(2026, 11, 27, 9, 0, 0)


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(tokens.SECRET_ENV, SECRET)


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as s:
        yield s


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(
        tmp_path,
        mail={"mode": "smtp", "smtp_connection_id": "smtp_test", "max_permanent_failures": 2},
        digest={"public_base_url": "https://alerts.example.org/lupus-alerts"},
    )


def smtp(sink: SmtpSink) -> mailer.SmtpTransport:
    return mailer.SmtpTransport("127.0.0.1", sink.port, timeout=5)


def run(
    engine: sa.Engine, settings: Settings, transport: mailer.Transport, day: date = DAY, now: datetime = NOW
) -> delivery.DeliveryStats:
    plan = delivery.plan_period(engine, settings, day=day, now=now)
    return delivery.send_due(engine, settings, day=day, subscriber_ids=plan.due, now=now, transport=transport)


def ledger(engine: sa.Engine) -> list[sa.Row]:
    with engine.connect() as c:
        return list(c.execute(sa.select(store.deliveries).order_by(store.deliveries.c.id)))


def sub(engine: sa.Engine, **kw: Any) -> subscribers.Subscriber:
    kw.setdefault("topics", None)
    return subscribers.add(engine, from_beginning=True, **kw)


def claimed_row(engine: sa.Engine, settings: Settings) -> sa.Row:
    """Ana's planned digest, claimed (queued -> sending committed): the row a sender that dies
    before it reaches the mail server leaves behind."""
    sub(engine, email="ana@example.org")
    add_papers(engine, [["nephrology"]])
    delivery.plan_period(engine, settings, day=DAY, now=NOW)
    [row] = ledger(engine)
    assert delivery.ledger._claim(engine, row, NOW)
    return row


# --- the message a subscriber receives ------------------------------------------------------


def test_received_digest_has_both_parts_rfc8058_headers_and_working_links(
    engine: sa.Engine, settings: Settings, sink: SmtpSink
) -> None:
    s = sub(engine, email="ana@example.org", name="Ana Ruiz")
    add_papers(engine, [["nephrology"], ["dermatology", "nephrology"], ["pregnancy"]])
    with smtp(sink) as t:
        stats = run(engine, settings, t)
    assert (stats.sent, stats.failed_transient, stats.failed_permanent) == (1, 0, 0)
    [got] = sink.handler.messages
    assert got.rcpt_tos == ["ana@example.org"]
    assert got.mail_from == "digest@lupus-alerts.example.org"
    msg = got.message
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in parts)
    [row] = ledger(engine)
    assert msg["Message-ID"] == row.message_id
    assert re.fullmatch(r"<digest\.2026-11-27\.[0-9a-f]{24}@lupus-alerts\.example\.org>", msg["Message-ID"])
    assert msg["To"] == "Ana Ruiz <ana@example.org>"
    assert msg["Reply-To"] == "editors@lupus-alerts.example.org"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["List-Id"] == "Lupus Alerts digest <digest.lupus-alerts.example.org>"
    assert msg["Date"] is not None and msg["Date"].datetime.year == 2026
    uris = re.fullmatch(r"<([^>]+)>, <([^>]+)>", msg["List-Unsubscribe"])
    assert uris is not None, msg["List-Unsubscribe"]
    https, mailto = uris.groups()
    u = urlsplit(https)
    assert (u.scheme, u.netloc, u.path) == ("https", "alerts.example.org", "/lupus-alerts/unsubscribe")
    assert tokens.check_token(parse_qs(u.query)["token"][0], "unsubscribe").link_key == s.link_key
    assert mailto == "mailto:unsubscribe@lupus-alerts.example.org?subject=unsubscribe"
    html = parts[1].get_content()
    text = parts[0].get_content()
    # The footer links are the same signed links; papers link to doi.org.
    assert https.replace("&", "&amp;") in html or https in html
    assert "https://doi.org/10.9999/constructed.1" in html
    assert "/preferences?token=" in html and "/preferences?token=" in text
    assert row.state == "sent" and row.paper_count == 3 and row.attempts == 1
    assert subscribers.get(engine, s.id).cursor == 3


def test_rerun_of_plan_and_send_sends_nothing_new(
    engine: sa.Engine, settings: Settings, sink: SmtpSink
) -> None:
    sub(engine, email="ana@example.org")
    add_papers(engine, [["nephrology"]])
    with smtp(sink) as t:
        first = run(engine, settings, t)
        replan = delivery.plan_period(engine, settings, day=DAY, now=NOW)
        second = run(engine, settings, t)
        # Even when told to send to that subscriber (a cleared mapped task), nothing goes out.
        forced = delivery.send_due(engine, settings, day=DAY, subscriber_ids=[1], now=NOW, transport=t)
    assert first.sent == 1
    assert (replan.created, replan.existing, replan.due) == (0, 1, [])
    assert second.sent == 0
    assert (forced.sent, forced.already_sent) == (0, 1)
    assert len(sink.handler.messages) == 1
    assert len(ledger(engine)) == 1


def test_many_digests_share_one_smtp_connection(
    engine: sa.Engine, settings: Settings, sink: SmtpSink
) -> None:
    for i in range(12):
        sub(engine, email=f"reader{i}@example.org")
    add_papers(engine, [["nephrology"]])
    with smtp(sink) as t:
        stats = run(engine, settings, t)
    assert stats.sent == 12
    assert sink.handler.connections == 1
    assert sorted(m.rcpt_tos[0] for m in sink.handler.messages) == sorted(
        f"reader{i}@example.org" for i in range(12)
    )


def test_parallel_connections_send_each_digest_once(
    engine: sa.Engine, settings: Settings, sink: SmtpSink
) -> None:
    for i in range(20):
        sub(engine, email=f"reader{i}@example.org")
    sink.handler.rcpt_codes["reader7@example.org"] = [550]
    add_papers(engine, [["nephrology"]])
    plan = delivery.plan_period(engine, settings, day=DAY, now=NOW)
    stats = delivery.send_due(
        engine,
        settings,
        day=DAY,
        subscriber_ids=plan.due,
        now=NOW,
        transport_factory=lambda: smtp(sink),
        connections=3,
    )
    assert (stats.sent, stats.failed_permanent) == (19, 1)
    got = sorted(m.rcpt_tos[0] for m in sink.handler.messages)
    assert got == sorted(f"reader{i}@example.org" for i in range(20) if i != 7)
    assert sink.handler.connections == 3
    assert {r.state for r in ledger(engine)} == {"sent", "failed_permanent"}


# --- crash and rerun at each ledger state ---------------------------------------------------


class Crash(BaseException):
    """Stands for the process dying (not an Exception: nothing in the library may swallow it)."""


class CrashAfterSend:
    """A real SMTP transport whose process 'dies' right after the server accepted the message."""

    def __init__(self, inner: mailer.SmtpTransport) -> None:
        self.inner = inner

    def was_sent(self, message_id: str) -> bool | None:
        return self.inner.was_sent(message_id)

    def send(self, msg: EmailMessage) -> mailer.SendResult:
        self.inner.send(msg)
        raise Crash


def test_crash_after_planning_queued_row_is_sent_once_on_rerun(
    engine: sa.Engine, settings: Settings, sink: SmtpSink
) -> None:
    sub(engine, email="ana@example.org")
    add_papers(engine, [["nephrology"]])
    delivery.plan_period(engine, settings, day=DAY, now=NOW)  # then the process dies
    assert [r.state for r in ledger(engine)] == ["queued"]
    with smtp(sink) as t:
        stats = run(engine, settings, t)
        again = run(engine, settings, t)
    assert (stats.sent, again.sent) == (1, 0)
    assert len(sink.handler.messages) == 1


def test_crash_after_smtp_accepted_is_never_resent(
    engine: sa.Engine, settings: Settings, sink: SmtpSink
) -> None:
    s = sub(engine, email="ana@example.org")
    add_papers(engine, [["nephrology"]])
    with smtp(sink) as t, pytest.raises(Crash):
        run(engine, settings, CrashAfterSend(t))
    assert [r.state for r in ledger(engine)] == ["sending"]
    with smtp(sink) as t:
        stats = run(engine, settings, t)
    assert len(sink.handler.messages) == 1  # the one from before the crash, no second copy
    assert (stats.sent, stats.unconfirmed) == (0, 1)
    assert stats.errors[0]["state"] == "unconfirmed"
    [row] = ledger(engine)
    assert row.state == "unconfirmed"
    # Its papers are not sent again in the next digest either (at most once).
    assert subscribers.get(engine, s.id).cursor == row.announce_to


def test_crash_after_claim_before_smtp_stays_unconfirmed_until_operator_requeues(
    engine: sa.Engine, settings: Settings, sink: SmtpSink
) -> None:
    claimed_row(engine, settings)  # then the process dies
    with smtp(sink) as t:
        stats = run(engine, settings, t)
    assert stats.unconfirmed == 1 and sink.handler.messages == []
    assert delivery.requeue_unconfirmed(engine, period="2026-11-27") == 1
    with smtp(sink) as t:
        stats = run(engine, settings, t)
    assert stats.sent == 1 and len(sink.handler.messages) == 1
    [row] = ledger(engine)
    assert row.state == "sent" and row.attempts == 2


def test_digest_planned_after_an_unresolved_crash_does_not_repeat_its_papers(
    engine: sa.Engine, settings: Settings, sink: SmtpSink
) -> None:
    sub(engine, email="ana@example.org")
    add_papers(engine, [["nephrology"]])
    with smtp(sink) as t, pytest.raises(Crash):
        run(engine, settings, CrashAfterSend(t))  # day 1: delivered, then the process died
    add_papers(engine, [["dermatology"]])
    with smtp(sink) as t:
        stats = run(engine, settings, t, day=date(2026, 11, 28), now=datetime(2026, 11, 28, 9))
    assert (stats.sent, stats.unconfirmed) == (1, 1)
    first, second = (text_part(m.message, "html") for m in sink.handler.messages)
    assert "constructed.1" in first and "constructed.1" not in second and "constructed.2" in second


def test_outbox_crash_after_writing_is_recognised_as_sent(
    engine: sa.Engine, settings: Settings, tmp_path: Path
) -> None:
    sub(engine, email="ana@example.org")
    add_papers(engine, [["nephrology"]])
    outbox = mailer.OutboxTransport(tmp_path / "outbox")

    class CrashAfterWrite:
        def was_sent(self, mid: str) -> bool:
            return outbox.was_sent(mid)

        def send(self, msg: EmailMessage) -> mailer.SendResult:
            outbox.send(msg)
            raise Crash

    with pytest.raises(Crash):
        run(engine, settings, CrashAfterWrite())
    stats = run(engine, settings, outbox)
    assert (stats.sent, stats.recovered, outbox.written) == (1, 1, 1)
    assert [r.state for r in ledger(engine)] == ["sent"]
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1


def test_outbox_crash_before_writing_is_sent_on_rerun(
    engine: sa.Engine, settings: Settings, tmp_path: Path
) -> None:
    claimed_row(engine, settings)
    with mailer.OutboxTransport(tmp_path / "outbox") as outbox:
        stats = run(engine, settings, outbox)
    assert (stats.sent, stats.unconfirmed, outbox.written) == (1, 0, 1)
    assert (tmp_path / "outbox" / "index.html").exists()


def test_crash_recovery_settles_each_row_on_its_own_and_says_what_it_did(
    engine: sa.Engine, settings: Settings, tmp_path: Path
) -> None:
    # Two rows left `sending` by a dead sender: the outbox proves one went out, the other not.
    ana, bo = sub(engine, email="ana@example.org"), sub(engine, email="bo@example.org")
    cy = sub(engine, email="cy@example.org")  # being sent right now by another, live sender
    add_papers(engine, [["nephrology"]])
    delivery.plan_period(engine, settings, day=DAY, now=NOW)
    rows = {r.subscriber_id: r for r in ledger(engine)}
    assert delivery.ledger._claim(engine, rows[cy.id], NOW)
    outbox = mailer.OutboxTransport(tmp_path / "outbox")

    class CrashAfterWrite:
        def was_sent(self, mid: str) -> bool:
            return outbox.was_sent(mid)

        def send(self, msg: EmailMessage) -> mailer.SendResult:
            outbox.send(msg)
            raise Crash

    with pytest.raises(Crash):  # Ana's digest is written, then the process dies
        delivery.send_due(
            engine, settings, day=DAY, subscriber_ids=[ana.id], now=NOW, transport=CrashAfterWrite()
        )
    assert delivery.ledger._claim(engine, rows[bo.id], NOW)  # Bo's row claimed, then the process dies
    stats = delivery.send_due(
        engine, settings, day=DAY, subscriber_ids=[ana.id, bo.id], now=NOW, transport=outbox
    )
    assert (stats.recovered, stats.sent, stats.unconfirmed) == (1, 2, 0)
    after = {r.subscriber_id: r for r in ledger(engine)}
    assert after[ana.id].state == "sent" and after[ana.id].last_error == "confirmed after a crash"
    assert after[bo.id].state == "sent" and outbox.written == 2
    assert after[cy.id].state == "sending"  # settling Bo's row touched no other row
    # the confirmed digest moved Ana's cursor: its papers are not sent again
    assert subscribers.get(engine, ana.id).cursor == after[ana.id].announce_to


def test_crash_recovery_counts_every_row_it_settles(
    engine: sa.Engine, settings: Settings, sink: SmtpSink, tmp_path: Path
) -> None:
    # Two rows left `sending` by a dead sender, settled by one run: the run's report counts both
    # (operators read these counts in the run tab), whichever way each was settled.
    for email in ("ana@example.org", "bo@example.org"):
        sub(engine, email=email)
    add_papers(engine, [["nephrology"]])
    delivery.plan_period(engine, settings, day=DAY, now=NOW)
    for row in ledger(engine):
        assert delivery.ledger._claim(engine, row, NOW)  # then the process dies

    class ProvesBothWentOut(mailer.OutboxTransport):
        def was_sent(self, message_id: str) -> bool:
            return True  # as an outbox that holds both messages would

    stats = run(engine, settings, ProvesBothWentOut(tmp_path / "outbox"))
    assert (stats.recovered, stats.sent, stats.unconfirmed) == (2, 2, 0)

    # The same crash, but SMTP cannot tell: both are unconfirmed, both reported.
    for row in ledger(engine):
        with engine.begin() as c:
            c.execute(
                sa.update(store.deliveries).where(store.deliveries.c.id == row.id).values(state="sending")
            )
    with smtp(sink) as t:
        stats = run(engine, settings, t)
    assert (stats.recovered, stats.sent, stats.unconfirmed) == (0, 0, 2)
    assert [e["state"] for e in stats.errors] == ["unconfirmed", "unconfirmed"]
    assert sink.handler.messages == []


def test_a_crashed_row_that_another_sender_settles_meanwhile_is_not_sent_again(
    engine: sa.Engine, settings: Settings, tmp_path: Path
) -> None:
    # The outbox says the crashed row's message is not there, but before this sender puts the
    # row back in the queue, another sender sends it: the requeue must not take it back.
    claimed_row(engine, settings)

    class AnotherSenderWinsTheRace(mailer.OutboxTransport):
        def was_sent(self, message_id: str) -> bool:
            answer = super().was_sent(message_id)
            with engine.begin() as c:  # the other sender's finish lands now
                c.execute(sa.update(store.deliveries).values(state="sent", sent_at=NOW))
            return answer

    with AnotherSenderWinsTheRace(tmp_path / "outbox") as outbox:
        stats = run(engine, settings, outbox)
    assert (stats.sent, outbox.written) == (0, 0)
    assert [r.state for r in ledger(engine)] == ["sent"]


def test_a_sent_digest_moves_both_cursors_to_the_end_of_its_range(
    engine: sa.Engine, settings: Settings, sink: SmtpSink
) -> None:
    # Updates (retractions, errata) are numbered on their own counter: a digest that covered
    # updates 1-3 must move the update cursor too, or the next digest repeats them.
    s = sub(engine, email="ana@example.org")
    add_papers(engine, [["nephrology"]])
    with engine.begin() as c:
        store.next_numbers(c, "update", 3)  # three updates announced since Ana subscribed
    with smtp(sink) as t:
        stats = run(engine, settings, t)
    assert stats.sent == 1
    [row] = ledger(engine)
    assert (row.update_from, row.update_to) == (0, 3)
    ana = subscribers.get(engine, s.id)
    assert (ana.cursor, ana.update_cursor) == (row.announce_to, 3)


def test_the_ledger_never_finishes_a_row_that_is_not_in_the_expected_state(
    engine: sa.Engine, settings: Settings
) -> None:
    # Two senders may hold the same row: only the one whose step matches the row's state moves
    # it, and the other learns it did not (so it counts nothing and touches no cursor).
    s = sub(engine, email="ana@example.org")
    add_papers(engine, [["nephrology"]])
    delivery.plan_period(engine, settings, day=DAY, now=NOW)
    [row] = ledger(engine)
    assert not delivery.ledger._finish(engine, row, "sent", NOW, expect=("sending",), advance=True)
    assert [r.state for r in ledger(engine)] == ["queued"]
    assert subscribers.get(engine, s.id).cursor == 0
    later = datetime(2026, 11, 27, 10, 30)
    assert delivery.ledger._claim(engine, row, later)
    [claimed] = ledger(engine)
    # the claim stamps the row: a row stuck in `sending` shows when it was taken
    assert (claimed.state, claimed.attempts, claimed.updated_at) == ("sending", 1, later)


def test_a_digest_that_fails_for_now_leaves_the_subscriber_record_untouched(
    engine: sa.Engine, settings: Settings, sink: SmtpSink
) -> None:
    s = sub(engine, email="busy@example.org")
    with engine.connect() as c:
        before = c.execute(sa.select(store.subscribers).where(store.subscribers.c.id == s.id)).one()
    sink.handler.rcpt_codes["busy@example.org"] = [450]
    add_papers(engine, [["nephrology"]])
    with smtp(sink) as t:
        assert run(engine, settings, t, now=datetime(2026, 11, 27, 11)).failed_transient == 1
    with engine.connect() as c:
        after = c.execute(sa.select(store.subscribers).where(store.subscribers.c.id == s.id)).one()
    assert after == before  # no cursor, no failure count, not even updated_at


def test_an_unconfirmed_row_tells_the_operator_what_happened(
    engine: sa.Engine, settings: Settings, sink: SmtpSink
) -> None:
    s = sub(engine, email="ana@example.org")
    other = sub(engine, email="bo@example.org")
    add_papers(engine, [["nephrology"]])
    with smtp(sink) as t, pytest.raises(Crash):
        delivery.send_due(
            engine,
            settings,
            day=DAY,
            subscriber_ids=delivery.plan_period(engine, settings, day=DAY, now=NOW).due[:1],
            now=NOW,
            transport=CrashAfterSend(t),
        )
    with smtp(sink) as t:
        stats = run(engine, settings, t)
    assert (stats.sent, stats.unconfirmed) == (1, 1)
    (err,) = stats.errors
    crashed = s.id if err["subscriber_id"] == s.id else other.id
    assert err == {
        "subscriber_id": crashed,
        "email": None,
        "code": None,
        "reason": "interrupted mid-send; not resent (requeue after checking the mail log)",
        "state": "unconfirmed",
    }
    (row,) = [r for r in ledger(engine) if r.subscriber_id == crashed]
    assert row.last_error == (
        "found in `sending` after a crash; the mail server may have accepted it (not resent)"
    )


# --- SMTP outcomes --------------------------------------------------------------------------


def test_450_is_retried_on_the_next_run_with_the_same_message(
    engine: sa.Engine, settings: Settings, sink: SmtpSink
) -> None:
    sub(engine, email="busy@example.org")
    sub(engine, email="fine@example.org")
    add_papers(engine, [["nephrology"]])
    sink.handler.rcpt_codes["busy@example.org"] = [450, 250]
    with smtp(sink) as t:
        first = run(engine, settings, t)
    assert (first.sent, first.failed_transient) == (1, 1)
    assert first.errors == [
        {
            "subscriber_id": first.errors[0]["subscriber_id"],
            "email": "busy@example.org",
            "code": 450,
            "reason": "4.2.1 Mailbox busy, try later",
            "state": "failed_transient",
        }
    ]
    add_papers(engine, [["dermatology"]])  # announced after the snapshot: not in the retry
    with smtp(sink) as t:
        second = run(engine, settings, t)
    assert (second.sent, second.failed_transient) == (1, 0)
    busy = [m for m in sink.handler.messages if m.rcpt_tos == ["busy@example.org"]]
    fine = [m for m in sink.handler.messages if m.rcpt_tos == ["fine@example.org"]]
    assert len(busy) == 1 and len(fine) == 1
    assert busy[0].message["Subject"] == fine[0].message["Subject"]  # same snapshot, same digest
    row = next(r for r in ledger(engine) if r.state == "sent" and r.attempts == 2)
    assert row.smtp_code == 250


def test_550_is_permanent_counted_and_bounces_after_the_limit(
    engine: sa.Engine, settings: Settings, sink: SmtpSink
) -> None:
    gone = sub(engine, email="gone@example.org")
    sub(engine, email="fine@example.org")
    sink.handler.rcpt_codes["gone@example.org"] = [550]
    add_papers(engine, [["nephrology"]])
    with smtp(sink) as t:
        day1 = run(engine, settings, t)
    assert (day1.sent, day1.failed_permanent) == (1, 1)
    g = subscribers.get(engine, gone.id)
    assert (g.status, g.permanent_failures) == ("active", 1)
    add_papers(engine, [["nephrology"]])
    with smtp(sink) as t:
        day2 = run(engine, settings, t, day=date(2026, 11, 28), now=datetime(2026, 11, 28, 9))
        day2_again = run(engine, settings, t, day=date(2026, 11, 28), now=datetime(2026, 11, 28, 10))
    g = subscribers.get(engine, gone.id)
    assert (g.status, g.permanent_failures) == ("bounced", 2)  # max_permanent_failures: 2
    assert day2.failed_permanent == 1 and day2_again.failed_permanent == 0  # 5xx is never retried
    assert sink.handler.rcpt_attempts.count("gone@example.org") == 2
    add_papers(engine, [["nephrology"]])
    plan3 = delivery.plan_period(engine, settings, day=date(2026, 11, 29), now=NOW)
    assert gone.id not in plan3.due


def test_a_bounce_for_a_subscriber_who_left_meanwhile_is_counted_but_keeps_them_unsubscribed(
    engine: sa.Engine, settings: Settings, sink: SmtpSink
) -> None:
    # The 550 comes back for a message that was in flight when the one-click unsubscribe landed:
    # the bounce is counted and stamped, but "bounced" must not overwrite the subscriber's choice.
    gone = sub(engine, email="gone@example.org")
    sink.handler.rcpt_codes["gone@example.org"] = [550]
    with engine.begin() as c:  # one bounce already: this one reaches the limit (2)
        c.execute(
            sa.update(store.subscribers).where(store.subscribers.c.id == gone.id).values(permanent_failures=1)
        )
    add_papers(engine, [["nephrology"]])

    class LeavesWhileInFlight(mailer.SmtpTransport):
        def send(self, msg: EmailMessage) -> mailer.SendResult:
            subscribers.set_status(engine, gone.id, "unsubscribed")
            return super().send(msg)

    with LeavesWhileInFlight("127.0.0.1", sink.port, timeout=5) as t:
        stats = run(engine, settings, t)
    assert stats.failed_permanent == 1
    g = subscribers.get(engine, gone.id)
    assert (g.status, g.permanent_failures) == ("unsubscribed", 2)
    with engine.connect() as c:  # stamped by the bounce (the run's time), after the unsubscribe
        stamped = c.execute(
            sa.select(store.subscribers.c.updated_at).where(store.subscribers.c.id == gone.id)
        )
    assert stamped.scalar() == NOW


def test_the_ledger_stamps_sent_at_on_a_sent_digest_only(
    engine: sa.Engine, settings: Settings, sink: SmtpSink
) -> None:
    sub(engine, email="gone@example.org")
    sub(engine, email="fine@example.org")
    sink.handler.rcpt_codes["gone@example.org"] = [550]
    add_papers(engine, [["nephrology"]])
    with smtp(sink) as t:
        run(engine, settings, t)
    rows = {r.subscriber_id: r for r in ledger(engine)}
    by_email = {s.email: s.id for s in subscribers.list_subscribers(engine)}
    sent, failed = rows[by_email["fine@example.org"]], rows[by_email["gone@example.org"]]
    assert (sent.state, sent.sent_at, sent.updated_at) == ("sent", NOW, NOW)
    assert failed.state == "failed_permanent" and failed.sent_at is None and failed.updated_at == NOW
    # the bounce is counted on the subscriber, and stamped
    assert subscribers.get(engine, by_email["gone@example.org"]).permanent_failures == 1


def test_invalid_address_fails_permanently_without_smtp(
    engine: sa.Engine, settings: Settings, sink: SmtpSink
) -> None:
    sub(engine, email="fine@example.org")
    with engine.begin() as c:  # bypasses subscribers' validation, as an old import might have
        c.execute(
            sa.insert(store.subscribers).values(
                email="not an address", all_topics=True, created_at=NOW, updated_at=NOW
            )
        )
    add_papers(engine, [["nephrology"]])
    with smtp(sink) as t:
        stats = run(engine, settings, t)
    assert (stats.sent, stats.failed_permanent) == (1, 1)
    assert sink.handler.rcpt_attempts == ["fine@example.org"]
    assert {r.state for r in ledger(engine)} == {"sent", "failed_permanent"}


def test_unreachable_server_leaves_rows_retryable(engine: sa.Engine, settings: Settings) -> None:
    from smtp_sink import free_port

    sub(engine, email="ana@example.org")
    add_papers(engine, [["nephrology"]])
    with pytest.raises(mailer.TransportError):
        run(engine, settings, mailer.SmtpTransport("127.0.0.1", free_port(), timeout=2))
    assert [r.state for r in ledger(engine)] == ["failed_transient"]


# --- empty digests, leavers, weekly subscribers, planning ----------------------------------


def test_empty_digest_is_skipped_and_cursor_advanced_unless_wanted(
    engine: sa.Engine, settings: Settings, sink: SmtpSink
) -> None:
    quiet = sub(engine, email="quiet@example.org", topics=["pediatrics"])
    keen = sub(engine, email="keen@example.org", topics=["pediatrics"], send_when_empty=True)
    add_papers(engine, [["nephrology"], ["dermatology"]])
    with smtp(sink) as t:
        stats = run(engine, settings, t)
    assert (stats.sent, stats.empty_skipped) == (1, 1)
    assert [m.rcpt_tos for m in sink.handler.messages] == [["keen@example.org"]]
    assert subscribers.get(engine, quiet.id).cursor == 2
    assert subscribers.get(engine, keen.id).cursor == 2
    states = {r.subscriber_id: r.state for r in ledger(engine)}
    assert states == {quiet.id: "empty", keen.id: "sent"}


def test_subscriber_who_leaves_after_planning_gets_nothing(
    engine: sa.Engine, settings: Settings, sink: SmtpSink
) -> None:
    s = sub(engine, email="ana@example.org")
    add_papers(engine, [["nephrology"]])
    plan = delivery.plan_period(engine, settings, day=DAY, now=NOW)
    subscribers.set_status(engine, s.id, "unsubscribed")
    with smtp(sink) as t:
        stats = delivery.send_due(engine, settings, day=DAY, subscriber_ids=plan.due, now=NOW, transport=t)
    assert stats.cancelled == 1 and sink.handler.messages == []


def test_subscriber_who_unsubscribes_during_the_run_is_not_sent_to(
    engine: sa.Engine, settings: Settings, sink: SmtpSink
) -> None:
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite holds its write lock while the digest is read; PostgreSQL shows the race")
    from lupus_alerts import digest

    s = sub(engine, email="ana@example.org")
    sub(engine, email="bo@example.org")  # still active: the claim must look at Ana's own status
    add_papers(engine, [["nephrology"]])

    def build_then_unsubscribe(*args: Any, **kw: Any) -> digest.Digest:
        d = digest.build_digest(*args, **kw)
        if args[2].id == s.id:
            subscribers.set_status(engine, s.id, "unsubscribed")  # the one-click POST lands now
        return d

    plan = delivery.plan_period(engine, settings, day=DAY, now=NOW)
    with smtp(sink) as t:
        stats = delivery.send_due(
            engine,
            settings,
            day=DAY,
            subscriber_ids=plan.due,
            now=NOW,
            transport=t,
            build=build_then_unsubscribe,
        )
    assert stats.cancelled == 1 and stats.sent == 1
    assert [m.rcpt_tos for m in sink.handler.messages] == [["bo@example.org"]]


def test_batch_loaded_subscribers_equal_subscribers_get(engine: sa.Engine) -> None:
    a = sub(engine, email="a@example.org", name="A", topics=["nephrology", "pregnancy"])
    b = sub(engine, email="b@example.org", frequency="weekly", weekday=3, send_when_empty=True)
    with engine.connect() as c:
        loaded = delivery.load_subscribers(c, [a.id, b.id, 999])
    assert loaded == {a.id: subscribers.get(engine, a.id), b.id: subscribers.get(engine, b.id)}


def test_plan_is_idempotent_and_widens_only_rows_nothing_was_sent_from(
    engine: sa.Engine, settings: Settings
) -> None:
    sub(engine, email="a@example.org")
    add_papers(engine, [["nephrology"]] * 2)
    first = delivery.plan_period(engine, settings, day=DAY, now=NOW)
    add_papers(engine, [["nephrology"]])  # announced later the same day
    sub(engine, email="b@example.org")  # joined later the same day
    second = delivery.plan_period(engine, settings, day=DAY, now=NOW)
    assert (first.created, second.created, second.existing, second.widened) == (1, 1, 1, 1)
    # the unsent row now reaches the later paper, and the newcomer's row starts equal
    assert {r.announce_to for r in ledger(engine)} == {3}
    third = delivery.plan_period(engine, settings, day=DAY, now=NOW)
    assert (third.created, third.widened) == (0, 0) and len(ledger(engine)) == 2


def test_fallback_digest_before_the_ingest_still_delivers_that_days_papers_once(
    engine: sa.Engine, settings: Settings, sink: SmtpSink
) -> None:
    """The fallback run plans and finds nothing new; the ingest then announces papers and the
    asset-triggered run of the same day sends them: once, and only to the right people."""
    quiet = sub(engine, email="quiet@example.org", topics=["nephrology"])
    got_mail = sub(engine, email="got@example.org", topics=["dermatology"])
    add_papers(engine, [["dermatology"]])
    with smtp(sink) as t:
        early = run(engine, settings, t)  # fallback run, before the day's ingest
    assert (early.sent, early.empty_skipped) == (1, 1)
    nums = add_papers(engine, [["nephrology"], ["dermatology"]])  # the ingest finishes
    with smtp(sink) as t:
        late = run(engine, settings, t)  # the asset-triggered run, same day
        again = run(engine, settings, t)  # and a rerun of it
    assert (late.sent, late.empty_skipped) == (1, 0)
    assert (again.sent, again.empty_skipped) == (0, 0)
    assert [m.rcpt_tos for m in sink.handler.messages] == [["got@example.org"], ["quiet@example.org"]]
    assert subscribers.get(engine, quiet.id).cursor == nums[-1]
    # got@ already had the day's digest: its new dermatology paper waits for the next one
    assert subscribers.get(engine, got_mail.id).cursor == nums[0] - 1


def test_weekly_subscriber_is_due_on_their_weekday_only(engine: sa.Engine, settings: Settings) -> None:
    w = sub(engine, email="weekly@example.org", frequency="weekly", weekday="friday")
    d = sub(engine, email="daily@example.org")
    assert delivery.due_subscribers(engine, DAY) == [w.id, d.id]
    assert delivery.due_subscribers(engine, date(2026, 11, 26)) == [d.id]
    delivery.plan_period(engine, settings, day=DAY, now=NOW)
    assert sorted(r.period for r in ledger(engine)) == ["2026-11-27", "2026-W48"]


def test_older_unsent_row_is_superseded_and_its_papers_go_in_the_new_digest(
    engine: sa.Engine, settings: Settings, sink: SmtpSink
) -> None:
    sub(engine, email="busy@example.org")
    sink.handler.rcpt_codes["busy@example.org"] = [450, 250]
    add_papers(engine, [["nephrology"]])
    with smtp(sink) as t:
        run(engine, settings, t)
        add_papers(engine, [["dermatology"]])
        stats = run(engine, settings, t, day=date(2026, 11, 28), now=datetime(2026, 11, 28, 9))
    assert stats.sent == 1
    assert [(r.period, r.state) for r in ledger(engine)] == [
        ("2026-11-27", "superseded"),
        ("2026-11-28", "sent"),
    ]
    [got] = sink.handler.messages
    html = text_part(got.message, "html")
    assert "constructed.1" in html and "constructed.2" in html


@pytest.mark.parametrize(
    "frequency,weekday,day,expected",
    [
        ("daily", None, date(2026, 11, 27), "2026-11-27"),
        ("weekly", 4, date(2026, 11, 27), "2026-W48"),
        ("weekly", 0, date(2026, 11, 27), None),
        ("weekly", 3, date(2026, 12, 31), "2026-W53"),
        ("weekly", 4, date(2027, 1, 1), "2026-W53"),  # ISO week-year, not calendar year
    ],
)
def test_period_for(frequency: str, weekday: int | None, day: date, expected: str | None) -> None:
    s = subscribers.Subscriber(id=1, email="x@example.org", frequency=frequency, weekday=weekday)
    assert delivery.period_for(s, day) == expected


def test_a_preview_on_a_weekly_subscribers_off_day_shows_the_week_it_falls_in() -> None:
    # One period function (docs/decisions.md): the preview's period is the one containing the
    # day; the ledger's is the same period, but only on the day it is due.
    s = subscribers.Subscriber(id=1, email="x@example.org", frequency="weekly", weekday=0)
    assert delivery.period_containing(s, date(2026, 11, 27)) == "2026-W48"
    assert delivery.period_for(s, date(2026, 11, 27)) is None
    assert delivery.period_for(s, date(2026, 11, 23)) == delivery.period_containing(s, date(2026, 11, 23))


def test_send_without_secret_fails_before_touching_the_ledger(
    engine: sa.Engine, settings: Settings, sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    sub(engine, email="ana@example.org")
    add_papers(engine, [["nephrology"]])
    delivery.plan_period(engine, settings, day=DAY, now=NOW)
    monkeypatch.delenv(tokens.SECRET_ENV)
    with smtp(sink) as t, pytest.raises(delivery.DeliveryError, match="LUPUS_ALERTS_SECRET"):
        delivery.send_due(engine, settings, day=DAY, now=NOW, transport=t)
    assert [r.state for r in ledger(engine)] == ["queued"]
