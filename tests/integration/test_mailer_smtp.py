"""SmtpTransport against a real SMTP server (aiosmtpd) on localhost."""

from __future__ import annotations

import time
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from smtp_sink import SmtpSink

from lupus_alerts import mailer


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as s:
        yield s


def _msg(to: str, n: int = 0) -> EmailMessage:
    m = EmailMessage()
    m["From"] = "Lupus Alerts <digest@lupus-alerts.example.org>"
    m["To"] = to
    m["Subject"] = f"message {n}"
    m["Message-ID"] = f"<m{n}@lupus-alerts.example.org>"
    m.set_content(f"body {n}")
    return m


def _transport(sink: SmtpSink, **kw: Any) -> mailer.SmtpTransport:
    return mailer.SmtpTransport("127.0.0.1", sink.port, use_ssl=False, use_tls=False, timeout=5, **kw)


def test_many_messages_share_one_connection(sink: SmtpSink) -> None:
    with _transport(sink) as t:
        results = [t.send(_msg(f"reader{i}@example.org", i)) for i in range(25)]
    assert [r.status for r in results] == ["sent"] * 25
    assert all(r.code == 250 for r in results)
    assert len(sink.handler.messages) == 25
    assert sink.handler.connections == 1
    assert {m.session_no for m in sink.handler.messages} == {1}
    assert [m.rcpt_tos for m in sink.handler.messages[:2]] == [
        ["reader0@example.org"],
        ["reader1@example.org"],
    ]


def test_lines_starting_with_a_dot_arrive_unchanged(sink: SmtpSink) -> None:
    # The transport dot-stuffs the body itself (RFC 5321 4.5.2); the server un-stuffs it, so a
    # line "." (which would end DATA) or ".." must reach the recipient exactly as written.
    m = EmailMessage()
    m["From"] = "Lupus Alerts <digest@lupus-alerts.example.org>"
    m["To"] = "reader@example.org"
    m["Subject"] = "dots"
    body = ".leading dot\n.\n..two dots\nmiddle . dot\n.\n"
    m.set_content(body)
    with _transport(sink) as t:
        assert t.send(m).status == "sent"
        assert t.send(_msg("after@example.org", 1)).status == "sent"  # the session is still in step
    assert [r.rcpt_tos for r in sink.handler.messages] == [["reader@example.org"], ["after@example.org"]]
    assert sink.handler.messages[0].message.get_content().replace("\r\n", "\n") == body


def test_server_refusing_the_greeting_is_a_transport_error_not_a_bounce(sink: SmtpSink) -> None:
    # Otherwise every MAIL FROM gets "503 send HELO first", which reads as a permanent failure
    # per recipient and would bounce subscribers for a server-side problem.
    sink.handler.refuse_greeting = True
    t = _transport(sink)
    with pytest.raises(mailer.TransportError, match="554"):
        t.send(_msg("reader@example.org"))
    assert sink.handler.messages == []


def test_550_is_permanent_and_does_not_block_the_next_recipient(sink: SmtpSink) -> None:
    sink.handler.rcpt_codes["gone@example.org"] = [550]
    with _transport(sink) as t:
        bad = t.send(_msg("gone@example.org", 1))
        good = t.send(_msg("here@example.org", 2))
    assert (bad.status, bad.code) == ("permanent", 550)
    assert "User unknown" in bad.message
    assert good.status == "sent"
    assert [m.rcpt_tos for m in sink.handler.messages] == [["here@example.org"]]
    assert sink.handler.connections == 1


def test_450_is_transient_then_succeeds_when_tried_again(sink: SmtpSink) -> None:
    sink.handler.rcpt_codes["busy@example.org"] = [450, 250]
    with _transport(sink) as t:
        first = t.send(_msg("busy@example.org", 1))
        second = t.send(_msg("busy@example.org", 1))
    assert (first.status, first.code) == ("transient", 450)
    assert (second.status, second.code) == ("sent", 250)
    assert len(sink.handler.messages) == 1


def test_connection_dropped_before_mail_is_reopened_once_and_message_sent(sink: SmtpSink) -> None:
    sink.handler.drop_at_mail = 1
    with _transport(sink) as t:
        r = t.send(_msg("reader@example.org"))
        assert t.connections_opened == 2
    assert r.status == "sent"
    assert len(sink.handler.messages) == 1


def test_server_that_keeps_dropping_raises_transport_error(sink: SmtpSink) -> None:
    sink.handler.drop_at_mail = 5
    with _transport(sink) as t, pytest.raises(mailer.TransportError):
        t.send(_msg("reader@example.org"))
    assert sink.handler.messages == []


def test_connection_lost_after_the_body_is_unknown_not_retried(sink: SmtpSink) -> None:
    sink.handler.drop_after_data = 1
    with _transport(sink) as t:
        r = t.send(_msg("reader@example.org"))
    assert r.status == "unknown"
    # The server did receive it: exactly why the ledger must not resend on its own.
    assert len(sink.handler.messages) == 1


def test_rate_limit_spaces_messages() -> None:
    with SmtpSink() as sink, _transport(sink, rate_per_second=20) as t:
        t0 = time.monotonic()
        for i in range(11):
            t.send(_msg(f"r{i}@example.org", i))
        elapsed = time.monotonic() - t0
    # 11 messages at 20/s: 10 gaps of 50 ms at least.
    assert elapsed >= 0.5
    assert len(sink.handler.messages) == 11


def test_unreachable_server_raises_transport_error() -> None:
    from smtp_sink import free_port

    t = mailer.SmtpTransport("127.0.0.1", free_port(), timeout=2)
    with pytest.raises(mailer.TransportError, match="cannot connect"):
        t.open()


def test_from_connection_reads_airflow_smtp_extras(monkeypatch: pytest.MonkeyPatch, sink: SmtpSink) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_TEST", sink.connection_env())
    t = mailer.SmtpTransport.from_connection("smtp_test", rate_per_second=100)
    assert (t.host, t.port, t.use_ssl, t.use_tls) == ("127.0.0.1", sink.port, False, False)
    with t:
        assert t.send(_msg("reader@example.org")).ok
    # Airflow's defaults: implicit TLS unless disable_ssl, STARTTLS unless disable_tls.
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_TLS",
        '{"conn_type": "smtp", "host": "mx.example.org", "port": 587, "extra": {"disable_ssl": true}}',
    )
    t2 = mailer.SmtpTransport.from_connection("smtp_tls")
    assert (t2.use_ssl, t2.use_tls, t2.port) == (False, True, 587)
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_SSL", "smtp://user:pw@mx.example.org:465")
    t3 = mailer.SmtpTransport.from_connection("smtp_ssl")
    assert (t3.use_ssl, t3.login, t3.password) == (True, "user", "pw")


def test_missing_connection_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_SMTP_NOWHERE", raising=False)
    with pytest.raises(mailer.TransportError, match="smtp_nowhere"):
        mailer.SmtpTransport.from_connection("smtp_nowhere")


@pytest.mark.parametrize(
    "code,status",
    [
        (250, "sent"),
        (251, "sent"),
        (421, "transient"),
        (452, "transient"),
        (550, "permanent"),
        (554, "permanent"),
        (None, "unknown"),
    ],
)
def test_reply_codes_are_classified_by_class(code: int | None, status: str) -> None:
    assert mailer.classify_reply(code) == status
