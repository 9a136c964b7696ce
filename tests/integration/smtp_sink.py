"""A real SMTP server on localhost for tests (aiosmtpd), scriptable to misbehave.

It records every accepted message with its envelope, counts connections, and can be told to
answer given recipients with 4xx/5xx codes (a list of codes is used up one per attempt), to drop
the connection at MAIL FROM (an idle connection the server closed), or to drop it right after
receiving a message body without replying (the ambiguous case), or to hold its reply to a
message for given recipients until the test releases it (`hold`: the body has arrived, the
sender waits for the 250; the test can kill the sender meanwhile).
"""

from __future__ import annotations

import asyncio
import email
import socket
import threading
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    session_no: int
    mail_options: list[str] = field(default_factory=list)  # e.g. ["SMTPUTF8"]

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.data, policy=policy.default)


@dataclass
class SinkHandler:
    messages: list[Received] = field(default_factory=list)
    rcpt_codes: dict[str, list[int]] = field(default_factory=dict)
    rcpt_attempts: list[str] = field(default_factory=list)
    drop_at_mail: int = 0
    drop_after_data: int = 0
    refuse_greeting: bool = False  # answer EHLO and HELO with 554 (a server refusing the session)
    # Messages to these recipients get no reply until `release` is set: they are put in `held`,
    # not in `messages` (whether they were delivered is what the sender cannot know).
    hold_rcpts: set[str] = field(default_factory=set)
    held: list[Received] = field(default_factory=list)
    holding: threading.Event = field(default_factory=threading.Event)  # set when one is held
    release: threading.Event = field(default_factory=threading.Event)
    _sessions: list[Any] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def connections(self) -> int:
        return len(self._sessions)

    def _session_no(self, session: Any) -> int:
        with self._lock:
            for i, s in enumerate(self._sessions):
                if s is session:
                    return i + 1
            self._sessions.append(session)
            return len(self._sessions)

    async def handle_HELO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str) -> str:
        self._session_no(session)
        if self.refuse_greeting:
            return "554 5.7.1 Session refused"
        session.host_name = hostname
        return f"250 {server.hostname}"

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        self._session_no(session)
        if self.refuse_greeting:
            return ["554 5.7.1 Session refused"]
        session.host_name = hostname
        return responses

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        self._session_no(session)
        if self.drop_at_mail > 0:
            self.drop_at_mail -= 1
            _hang_up(server)
            return "421 4.4.2 closing idle connection"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        self.rcpt_attempts.append(address)
        codes = self.rcpt_codes.get(address)
        if codes:
            code = codes.pop(0) if len(codes) > 1 else codes[0]
            if code < 400:
                envelope.rcpt_tos.append(address)
                return "250 OK"
            text = {450: "4.2.1 Mailbox busy, try later", 550: "5.1.1 User unknown"}.get(code, "error")
            return f"{code} {text}"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        no = self._session_no(session)
        # aiosmtpd refuses DATA before MAIL FROM, and keeps the body as bytes (decode_data is off)
        assert envelope.mail_from is not None and isinstance(envelope.content, bytes)
        received = Received(
            envelope.mail_from, list(envelope.rcpt_tos), envelope.content, no, list(envelope.mail_options)
        )
        if self.hold_rcpts & set(envelope.rcpt_tos):
            self.held.append(received)
            self.holding.set()
            while not self.release.is_set():
                await asyncio.sleep(0.05)
            return "451 4.3.0 Held by the test; not delivered"
        self.messages.append(received)
        if self.drop_after_data > 0:
            self.drop_after_data -= 1
            _hang_up(server)
        return "250 2.0.0 Message accepted for delivery"


def text_part(msg: EmailMessage, subtype: str) -> str:
    """The content of a received message's text/`subtype` part ("html" or "plain"); a message
    without one fails the test."""
    part = msg.get_body((subtype,))
    assert part is not None, f"the message has no text/{subtype} part"
    content: str = part.get_content()
    return content


def _hang_up(server: SMTP) -> None:
    assert server.transport is not None  # a handler only runs on an open connection
    server.transport.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SmtpSink:
    """`with SmtpSink() as sink:` a server on 127.0.0.1:sink.port; `sink.handler` to script it."""

    def __init__(self, *, smtputf8: bool = False) -> None:
        self.handler = SinkHandler()
        self.port = free_port()
        # smtputf8: offer SMTPUTF8 (RFC 6531), so internationalised addresses can be sent to it.
        self.controller = Controller(
            self.handler, hostname="127.0.0.1", port=self.port, enable_SMTPUTF8=smtputf8
        )

    def __enter__(self) -> SmtpSink:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    def connection_env(self, **extra: Any) -> str:
        """An AIRFLOW_CONN_* JSON value pointing at this sink (plain SMTP, as for Airflow tests)."""
        import json

        ex = {"disable_ssl": True, "disable_tls": True, **extra}
        return json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": self.port, "extra": ex})
