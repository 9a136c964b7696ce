"""Delivery over SMTP: one connection for many messages, paced, replies classified."""

from __future__ import annotations

import smtplib
import socket
import ssl
import time
from email.message import EmailMessage
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from lupus_alerts import connections

if TYPE_CHECKING:
    pass

from lupus_alerts.mailer.message import envelope_sender, recipients, wire_bytes
from lupus_alerts.mailer.transport import SendResult, SendStatus, TransportError


def classify_reply(code: int | None) -> SendStatus:
    """2xx sent, 4xx transient (try again later), 5xx permanent (do not retry)."""
    if code is None:
        return "unknown"
    if 200 <= code < 300:
        return "sent"
    if 400 <= code < 500:
        return "transient"
    if 500 <= code < 600:
        return "permanent"
    return "unknown"


def _text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


class _RateLimiter:
    """Spaces calls at least 1/rate seconds apart (no bursts: SMTP relays count per second)."""

    def __init__(self, rate_per_second: float | None) -> None:
        self.interval = 1.0 / rate_per_second if rate_per_second else 0.0
        self._next = 0.0

    def wait(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        if now < self._next:
            time.sleep(self._next - now)
            now = self._next
        self._next = max(now, self._next) + self.interval


class SmtpTransport:
    """One SMTP connection for many messages, rate-limited; `with SmtpTransport(...) as t: t.send(m)`.

    `use_ssl` = implicit TLS (SMTPS, usually port 465); otherwise plain SMTP, upgraded with
    STARTTLS when `use_tls`. Credentials, when given, are sent after TLS is up.
    """

    def __init__(
        self,
        host: str,
        port: int | None = None,
        *,
        login: str | None = None,
        password: str | None = None,
        use_ssl: bool = False,
        use_tls: bool = False,
        timeout: float = 30.0,
        rate_per_second: float | None = None,
        ssl_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
    ) -> None:
        self.host = host
        self.port = port or (465 if use_ssl else 587 if use_tls else 25)
        self.login = login
        self.password = password
        self.use_ssl = use_ssl
        self.use_tls = use_tls
        self.timeout = timeout
        self.ssl_context = ssl_context
        self.local_hostname = local_hostname
        self._limiter = _RateLimiter(rate_per_second)
        self._smtp: smtplib.SMTP | None = None
        self.connections_opened = 0

    @classmethod
    def from_connection(
        cls, conn_id: str = "smtp_default", *, rate_per_second: float | None = None
    ) -> SmtpTransport:
        """A transport configured from an Airflow connection (or AIRFLOW_CONN_<ID>).

        Extras as Airflow's SMTP provider reads them: `disable_ssl` (default false: implicit TLS)
        and `disable_tls` (default false: STARTTLS when not using implicit TLS), `timeout`,
        `ssl_context` ("default" or "none" to skip certificate checks, for test servers only).
        """
        conn = connections.get_connection(conn_id)
        if conn is None:
            raise TransportError(
                f"SMTP connection {conn_id!r} is not defined: define it in Airflow or set "
                f"AIRFLOW_CONN_{conn_id.upper()} (see docs/delivery.md), or use mail.mode: outbox"
            )
        if not conn.host:
            raise TransportError(f"SMTP connection {conn_id!r} has no host")
        extra = conn.extra
        ctx: ssl.SSLContext | None = None
        if str(extra.get("ssl_context", "default")).lower() == "none":
            ctx = ssl._create_unverified_context()
        return cls(
            conn.host,
            conn.port,
            login=conn.login or None,
            password=conn.password or None,
            use_ssl=not _truthy(extra.get("disable_ssl", False)),
            use_tls=not _truthy(extra.get("disable_tls", False)),
            timeout=float(extra.get("timeout", 30)),
            rate_per_second=rate_per_second,
            ssl_context=ctx,
        )

    # -- connection ---------------------------------------------------------------------------

    def open(self) -> None:
        """Connect (and secure and log in); raise TransportError when that fails."""
        if self._smtp is not None:
            return
        # Only when TLS is used: building the default context (loading the CA store) costs
        # about 20 ms, once per connection, i.e. per mapped send task.
        ctx = (self.ssl_context or ssl.create_default_context()) if (self.use_ssl or self.use_tls) else None
        smtp: smtplib.SMTP
        try:
            if self.use_ssl:
                smtp = smtplib.SMTP_SSL(
                    self.host,
                    self.port,
                    timeout=self.timeout,
                    context=ctx,
                    local_hostname=self.local_hostname,
                )
            else:
                smtp = smtplib.SMTP(
                    self.host, self.port, timeout=self.timeout, local_hostname=self.local_hostname
                )
            try:
                # Without TCP_NODELAY the tail of each message waits for the server's delayed ACK
                # (Nagle), about 40 ms per message: 25 messages/s instead of hundreds.
                if smtp.sock is not None:
                    smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                _greet(smtp)
                if self.use_tls and not self.use_ssl:
                    smtp.starttls(context=ctx)  # type: ignore[arg-type]  # set when use_tls
                    smtp.ehlo()
                if self.login:
                    smtp.login(self.login, self.password or "")
            except BaseException:
                smtp.close()
                raise
        except smtplib.SMTPAuthenticationError as e:
            raise TransportError(
                f"SMTP login to {self.host}:{self.port} refused: {e.smtp_code} {_text(e.smtp_error)}"
            ) from None
        except (OSError, smtplib.SMTPException) as e:
            raise TransportError(f"cannot connect to SMTP server {self.host}:{self.port}: {e}") from e
        self._smtp = smtp
        self.connections_opened += 1

    def close(self) -> None:
        """Say QUIT and close; never raises (the messages already have their results)."""
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            smtp.close()

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- sending ------------------------------------------------------------------------------

    def was_sent(self, message_id: str) -> bool | None:
        """SMTP cannot tell whether a message went out before a crash."""
        return None

    def send(self, msg: EmailMessage) -> SendResult:
        """Send one message to its one recipient and classify the server's answer.

        A connection found dropped before the message body went out is reopened once and the
        message tried again (nothing can have been delivered). Raises TransportError when the
        server cannot be reached at all.
        """
        known = getattr(msg, "envelope", None)
        if (
            isinstance(known, tuple)
            and msg.get_all("To") == [known[2]]
            and "Cc" not in msg
            and "Bcc" not in msg
        ):
            sender, rcpts = known[0], [known[1]]  # build_message's own addresses: no re-parsing
        else:
            sender, rcpts = envelope_sender(msg), recipients(msg)
        if len(rcpts) != 1:
            raise ValueError(f"a digest goes to exactly one recipient, this message has {len(rcpts)}")
        self._limiter.wait()
        for attempt in (1, 2):
            self.open()
            try:
                return self._transaction(msg, sender, rcpts[0])
            except _DroppedBeforeData as e:
                self._discard()
                if attempt == 2:
                    raise TransportError(
                        f"SMTP server {self.host}:{self.port} keeps dropping the connection"
                    ) from e
        raise AssertionError("unreachable")

    def _discard(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            smtp.close()

    def _transaction(self, msg: EmailMessage, sender: str, rcpt: str) -> SendResult:
        # The SMTP steps are driven one by one (not smtplib.send_message) so we know whether a
        # dropped connection happened before DATA (safe to resend) or after (maybe delivered).
        smtp = self._smtp
        assert smtp is not None
        try:
            code, resp = smtp.mail(sender, ["SMTPUTF8"] if _needs_smtputf8(sender, rcpt, smtp) else [])
            if code != 250:
                self._rset()
                return SendResult(classify_reply(code), code, _text(resp), rcpt)
            code, resp = smtp.rcpt(rcpt)
            if code not in (250, 251):
                self._rset()
                return SendResult(classify_reply(code), code, _text(resp), rcpt)
        except (TimeoutError, smtplib.SMTPServerDisconnected, ConnectionError) as e:
            raise _DroppedBeforeData(str(e)) from e
        except UnicodeEncodeError:
            # An internationalised address, and the server does not offer SMTPUTF8.
            self._rset()
            return SendResult("permanent", None, "address needs SMTPUTF8, which the server lacks", rcpt)
        data = wire_bytes(msg)
        try:
            code, resp = _smtp_data(smtp, data)
        except smtplib.SMTPDataError as e:
            self._rset()
            return SendResult(classify_reply(e.smtp_code), e.smtp_code, _text(e.smtp_error), rcpt)
        except (smtplib.SMTPServerDisconnected, OSError) as e:
            # The body (maybe with its final dot) went out, the reply never came: the server
            # may have queued it. Never resend automatically.
            self._discard()
            return SendResult("unknown", None, f"connection lost during DATA: {e}", rcpt)
        return SendResult(classify_reply(code), code, _text(resp), rcpt)

    def _rset(self) -> None:
        try:
            if self._smtp is not None:
                self._smtp.rset()
        except (OSError, smtplib.SMTPException):
            self._discard()


class _DroppedBeforeData(Exception):
    pass


def _greet(smtp: smtplib.SMTP) -> None:
    """EHLO, or HELO from an older server; raise SMTPHeloError if the server refuses both.

    smtplib's ehlo() returns a refusal instead of raising it; unchecked, every MAIL FROM would
    then get "503 send HELO first", which reads as a permanent failure for each recipient.
    """
    code, resp = smtp.ehlo()
    if not 200 <= code < 300:
        code, resp = smtp.helo()
        if not 200 <= code < 300:
            raise smtplib.SMTPHeloError(code, resp)


def _smtp_data(smtp: smtplib.SMTP, data: bytes) -> tuple[int, bytes]:
    """`smtplib.SMTP.data` for a message already in bytes, dot-stuffed with `bytes.replace`.

    smtplib stuffs with a multi-line regex, which was 8% of a digest's CPU time on a 40 KiB
    message. Same wire bytes: a "." that starts a line (after LF, or at the start) is doubled
    (RFC 5321 4.5.2), then the body ends with CRLF "." CRLF. Same errors: SMTPDataError when the
    server refuses DATA, SMTPServerDisconnected when the connection goes.
    """
    smtp.putcmd("data")
    code, repl = smtp.getreply()
    if code != 354:
        raise smtplib.SMTPDataError(code, repl)
    q = data.replace(b"\n.", b"\n..")
    if q.startswith(b"."):
        q = b"." + q
    if not q.endswith(b"\r\n"):
        q += b"\r\n"
    smtp.send(q + b".\r\n")
    return smtp.getreply()


def _needs_smtputf8(sender: str, rcpt: str, smtp: smtplib.SMTP) -> bool:
    return not (sender.isascii() and rcpt.isascii()) and smtp.has_extn("smtputf8")


def _truthy(v: Any) -> bool:
    if isinstance(v, str):
        return v.strip().lower() in ("1", "true", "yes", "on")
    return bool(v)
