"""Digest emails: building the MIME message, and the transports that deliver it.

`build_message` is pure: a rendered `digest.Digest` in, an `EmailMessage` out, with a
Message-ID derived from (subscriber, period) so that a retry of the same digest carries the same
Message-ID. Transports share one interface, `send(msg) -> SendResult`, and are context managers:

- `SmtpTransport`: one SMTP connection (plain, STARTTLS or implicit TLS, per the Airflow
  connection's extras as Airflow's SMTP provider reads them) for many messages, paced to a rate,
  reconnecting once when the server has dropped an idle connection. Replies are classified:
  2xx sent, 4xx transient, 5xx permanent; a connection lost after the message body was sent is
  "unknown" (the server may have accepted it), which the ledger never retries on its own.
- `OutboxTransport`: one `.eml` file per message, named from the Message-ID (so rewriting the
  same digest is a no-op), an `.html` preview beside it, and an `index.html` listing them.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import html as html_lib
import os
import re
import secrets
import smtplib
import socket
import ssl
import tempfile
import threading
import time
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser
from email.utils import format_datetime, getaddresses, parseaddr
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Protocol, Self

from lupus_alerts import connections

if TYPE_CHECKING:
    from lupus_alerts.config import Settings

SendStatus = Literal["sent", "transient", "permanent", "unknown"]
LIST_ID_NAME = "Lupus Alerts digest"
# policy.SMTP folds headers and writes CRLF line ends, as RFC 5322 requires on the wire.
_POLICY = policy.SMTP.clone(max_line_length=998)


class MailerError(Exception):
    """Base class for mail problems the caller cannot fix by retrying one message."""


class TransportError(MailerError):
    """The transport cannot deliver at all (cannot connect, cannot log in, outbox unwritable)."""


class MessageBuildError(MailerError, ValueError):
    """The message cannot be built from this data (a header value with a control character, a
    display name too long for a header line). Retrying cannot help; the data must change."""


@dataclass(frozen=True, slots=True)
class SendResult:
    """What happened to one message: its status, the SMTP code and text (None for the outbox)."""

    status: SendStatus
    code: int | None = None
    message: str = ""
    recipient: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "sent"


class Transport(Protocol):
    """What delivery needs from a transport."""

    def send(self, msg: EmailMessage) -> SendResult: ...

    def was_sent(self, message_id: str) -> bool | None:
        """True/False when the transport can tell whether message_id went out, None when it cannot."""
        ...


# --------------------------------------------------------------------------------------------
# Building the message


@functools.lru_cache(maxsize=32)
def _parse_sender(value: str) -> tuple[str, str]:
    # The configured sender is the same for every message of a run; parsing it is not free.
    return parseaddr(value)


def sender_domain(settings: Settings) -> str:
    """The domain of the configured sender, used for Message-IDs and List-Id."""
    addr = _parse_sender(settings.digest.sender)[1]
    domain = addr.rpartition("@")[2].strip().lower()
    return domain or "localhost"


def message_id_for(link_key: str, period: str, domain: str) -> str:
    """The Message-ID of a subscriber's digest for a period: the same on every retry.

    From the subscriber's link key (random, never reused), not the id, which SQLite reuses after
    a delete: a new subscriber can never be given an earlier subscriber's Message-ID (the outbox
    would take it for "already sent"). Hashed, so it reveals neither; unique per (key, period).
    """
    if not link_key:
        raise ValueError("a Message-ID needs the subscriber's link key")
    digest = hashlib.sha256(f"lupus-alerts|{link_key}|{period}".encode()).hexdigest()[:24]
    safe_period = re.sub(r"[^A-Za-z0-9-]", "-", period)
    return f"<digest.{safe_period}.{digest}@{domain}>"


def list_id(settings: Settings) -> str:
    """The RFC 2919 List-Id header value."""
    return f"{LIST_ID_NAME} <digest.{sender_domain(settings)}>"


class DigestMessage(EmailMessage):
    """An EmailMessage assembled from pre-encoded parts, which serialises itself quickly.

    The standard library's header registry parses every header on every set and every
    serialisation (about 10 ms for a digest here, which alone would cap delivery near 100
    messages/s). build_message encodes each header and body once, with the C codecs, and stores
    them under the compat32 policy, which keeps values as given; `as_bytes()` then writes the
    wire form (CRLF, folded headers) directly. Parsing the bytes back gives the same message.
    Read it like any message (`msg["Subject"]`, `walk()`); to change one, re-parse its bytes.
    `envelope` is (MAIL FROM, RCPT TO, the To header) as build_message set them, so the
    transport need not parse addresses back out of the headers while To is unchanged.
    """

    envelope: tuple[str, str, str] | None = None

    def as_bytes(self, unixfrom: bool = False, policy: Any = None) -> bytes:
        if unixfrom or policy not in (None, _POLICY):
            return super().as_bytes(unixfrom, policy)
        return _serialise(self)

    __bytes__ = as_bytes  # type: ignore[assignment]


_COMPAT = policy.compat32.clone(linesep="\r\n")


def _serialise(msg: Message) -> bytes:
    head = "".join(f"{k}: {v}\r\n" for k, v in msg.items()).encode("utf-8")
    payload = msg.get_payload()
    if isinstance(payload, list):
        boundary = msg.get_boundary()
        if boundary is None:
            raise ValueError("a multipart message needs a boundary")
        # The CRLF before each delimiter belongs to the delimiter (RFC 2046 5.1.1), not the part.
        delimiter = f"\r\n--{boundary}\r\n".encode("ascii")
        body = delimiter.join(_serialise(part) for part in payload)
        return head + b"\r\n" + delimiter[2:] + body + f"\r\n--{boundary}--\r\n".encode("ascii")
    return head + b"\r\n" + str(payload).encode("ascii")


def _check_header(name: str, value: str) -> str:
    # A CR or LF in a value would start a new header: refuse rather than let a title inject one.
    # Other control characters (NUL, vertical tab, ...) and Unicode line separators have no
    # place in a header either; some relays reject them, some clients split lines at them.
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Zl", "Zp"):
            what = "a line break" if ch in "\r\n" else f"the control character U+{ord(ch):04X}"
            raise MessageBuildError(f"{name} header value contains {what}")
    return value


_SPECIALS = re.compile(r'[][\\()<>@,:;".]')
_ESCAPES = re.compile(r'[\\"]')


def _quote_name(name: str) -> str:
    # formataddr's quoting, without its refusal of non-ASCII addresses (SMTPUTF8 mail has them).
    if _SPECIALS.search(name):
        return '"' + _ESCAPES.sub(r"\\\g<0>", name) + '"'
    return name


def _encode_words(text: str) -> str:
    """RFC 2047 "B" encoded words for any text, one per folded line (each under 76 columns).

    Chunks end on character boundaries, as RFC 2047 requires (email.header is ten times slower).
    """
    words: list[str] = []
    chunk = bytearray()
    for ch in text:
        b = ch.encode("utf-8")
        if len(chunk) + len(b) > 45:  # 45 bytes -> 60 base64 chars + 12 of framing
            words.append(f"=?utf-8?b?{base64.b64encode(chunk).decode('ascii')}?=")
            chunk = bytearray()
        chunk += b
    if chunk or not words:
        words.append(f"=?utf-8?b?{base64.b64encode(chunk).decode('ascii')}?=")
    return "\r\n ".join(words)


def _format_address(name: str | None, addr: str) -> str:
    from lupus_alerts.subscribers import InvalidSubscriber, normalize_name

    try:
        # The rule names are admitted by (no control character, at most MAX_NAME_CHARS), so a
        # name stored before that rule, or written around it, cannot reach a header either.
        name = normalize_name(name) or ""
    except InvalidSubscriber as e:
        raise MessageBuildError(f"To: display {e}") from None
    _check_header("To", addr)
    if not name:
        return addr
    if name.isascii():
        return f"{_quote_name(name)} <{addr}>"  # "O'Brien, MD" <...>
    return f"{_encode_words(name)} <{addr}>"


def _fold_unsubscribe(uris: list[str]) -> str:
    # One URI per line keeps each line short; URIs are never broken (RFC 2369).
    return ",\r\n ".join(f"<{u}>" for u in uris)


def _text_part(content: str, subtype: str) -> Message:
    """A UTF-8 text part, quoted-printable unless base64 is smaller (mostly non-Latin text).

    QP keeps mostly-ASCII text and HTML readable in a raw view and smaller than base64 (Gmail
    clips a message over 102 KB). Neither encoding can produce the boundary: QP writes "=" as
    "=3D", and base64 has no "-".
    """
    part = Message(policy=_COMPAT)
    part["Content-Type"] = f'text/{subtype}; charset="utf-8"'
    data = content.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    encoded = binascii.b2a_qp(data, istext=True)
    if len(encoded) > len(data) * 4 // 3 + 2:
        # One C call, then 76-column lines (base64.encodebytes loops in Python per 57 bytes).
        flat = binascii.b2a_base64(data, newline=False)
        encoded = b"\n".join(flat[i : i + 76] for i in range(0, len(flat), 76))
        part["Content-Transfer-Encoding"] = "base64"
    else:
        part["Content-Transfer-Encoding"] = "quoted-printable"
    if not encoded.endswith(b"\n"):
        encoded += b"\n"
    part.set_payload(encoded.replace(b"\n", b"\r\n").decode("ascii"))
    return part


def build_message(
    digest: Any,
    *,
    settings: Settings,
    unsubscribe_url: str,
    now: datetime,
    message_id: str | None = None,
) -> DigestMessage:
    """The digest as a multipart/alternative message (text/plain, then text/html) to one recipient.

    `digest` is a `lupus_alerts.digest.Digest` (subject, text, html, period, subscriber).
    `now` becomes the Date header (naive means UTC). The Message-ID is `message_id_for(subscriber's
    link key, period)` unless the ledger passes the one it stored. Raises MessageBuildError (a
    ValueError) for a header value with a control character (header injection) or a display
    name over the limit.
    """
    sub = digest.subscriber
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    sender_name, sender_addr = _parse_sender(settings.digest.sender)
    mailto = f"mailto:{settings.digest.unsubscribe_mailto}?subject=unsubscribe"
    subject = _check_header("Subject", digest.subject)
    msg = DigestMessage(policy=_COMPAT)
    # Plain ASCII as is (a line may reach 998 octets); otherwise, or longer, encoded words that
    # fold anywhere.
    msg["Subject"] = subject if subject.isascii() and len(subject) <= 900 else _encode_words(subject)
    msg["From"] = _format_address(sender_name, sender_addr)
    if settings.digest.reply_to:
        msg["Reply-To"] = _check_header("Reply-To", settings.digest.reply_to)
    to = msg["To"] = _format_address(sub.name, sub.email)
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id or message_id_for(sub.link_key, digest.period, sender_domain(settings))
    msg["List-Id"] = list_id(settings)
    msg["List-Unsubscribe"] = _fold_unsubscribe([_check_header("List-Unsubscribe", unsubscribe_url), mailto])
    # RFC 8058: the HTTPS URI accepts a POST with this body, and nothing else is needed.
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    # RFC 3834: auto-responders (vacation replies) must not answer a machine-generated digest.
    msg["Auto-Submitted"] = "auto-generated"
    msg["Precedence"] = "bulk"
    msg["X-Auto-Response-Suppress"] = "OOF, AutoReply"  # Exchange's equivalent of the above
    msg["MIME-Version"] = "1.0"
    boundary = "==lupus-alerts-" + hashlib.sha256(msg["Message-ID"].encode()).hexdigest()[:24] + "=="
    msg["Content-Type"] = f'multipart/alternative; boundary="{boundary}"'
    # Text first, HTML last: RFC 2046 orders alternatives from plainest to richest.
    msg.set_payload([_text_part(digest.text, "plain"), _text_part(digest.html, "html")])
    msg.envelope = (sender_addr, sub.email, to)
    return msg


def build_link_message(
    settings: Settings, *, name: str | None, email: str, url: str, now: datetime
) -> DigestMessage:
    """A short message carrying a fresh preferences link (asked for on the web app's page for an
    expired or unsubscribe link). Sent only to the subscriber's own address."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    sender_name, sender_addr = _parse_sender(settings.digest.sender)
    domain = sender_domain(settings)
    msg = DigestMessage(policy=_COMPAT)
    msg["Subject"] = "Your Lupus Alerts preferences link"
    msg["From"] = _format_address(sender_name, sender_addr)
    to = msg["To"] = _format_address(name, email)
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = f"<link.{secrets.token_hex(12)}@{domain}>"
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "OOF, AutoReply"
    msg["MIME-Version"] = "1.0"
    _check_header("link", url)
    text = (
        "You asked for a link to change your Lupus Alerts digest: topics, how often, or to\n"
        "subscribe again.\n\n"
        f"{url}\n\n"
        "If you did not ask for it, ignore this message: nothing changes without the link.\n"
    )
    safe = html_lib.escape(url, quote=True)
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"></head><body>'
        "<p>You asked for a link to change your Lupus Alerts digest: topics, how often, or to "
        f'subscribe again.</p><p><a href="{safe}">Change my digest preferences</a></p>'
        "<p>If you did not ask for it, ignore this message: nothing changes without the link.</p>"
        "</body></html>"
    )
    boundary = "==lupus-alerts-" + hashlib.sha256(msg["Message-ID"].encode()).hexdigest()[:24] + "=="
    msg["Content-Type"] = f'multipart/alternative; boundary="{boundary}"'
    msg.set_payload([_text_part(text, "plain"), _text_part(page, "html")])
    msg.envelope = (sender_addr, email, to)
    return msg


def html_of(msg: Message) -> str | None:
    """The decoded text/html part of a message, if it has one."""
    for part in msg.walk():
        if part.get_content_type() == "text/html":
            raw = part.get_payload(decode=True)
            if isinstance(raw, bytes):
                return raw.decode(part.get_content_charset() or "utf-8", "replace")
    return None


def wire_bytes(msg: Message) -> bytes:
    """The message as sent: CRLF line ends, headers folded."""
    if isinstance(msg, DigestMessage):
        return msg.as_bytes()
    return msg.as_bytes(policy=_POLICY)


def recipients(msg: EmailMessage) -> list[str]:
    """The envelope recipients of a message (its To, Cc and Bcc addresses)."""
    values = [str(v) for k in ("To", "Cc", "Bcc") for v in msg.get_all(k, [])]
    return [a for _, a in getaddresses(values) if a]


def envelope_sender(msg: EmailMessage) -> str:
    """The envelope sender (MAIL FROM): the From address."""
    return parseaddr(str(msg["From"]))[1]


# --------------------------------------------------------------------------------------------
# SMTP


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


# --------------------------------------------------------------------------------------------
# Outbox


def outbox_name(message_id: str) -> str:
    """A file-name stem for a Message-ID: its characters that are safe in a file name."""
    stem = re.sub(r"[^A-Za-z0-9._@-]", "_", message_id.strip().strip("<>"))
    return stem or "message"


class OutboxTransport:
    """Writes each message to `<dir>/<message-id>.eml`, with an `.html` preview and `index.html`.

    Idempotent: a message whose file exists is not written again (the same digest has the same
    Message-ID). Files are written atomically (temporary file, then rename), so a crash never
    leaves half a message that would later count as sent.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._lock = threading.Lock()
        self.written = 0

    def __enter__(self) -> Self:
        self.directory.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Refresh index.html."""
        if self.directory.exists():
            self.write_index()

    def path_for(self, message_id: str) -> Path:
        return self.directory / f"{outbox_name(message_id)}.eml"

    def was_sent(self, message_id: str) -> bool:
        return self.path_for(message_id).exists()

    def send(self, msg: EmailMessage) -> SendResult:
        rcpts = recipients(msg)
        if len(rcpts) != 1:
            raise ValueError(f"a digest goes to exactly one recipient, this message has {len(rcpts)}")
        mid = str(msg["Message-ID"] or "")
        if not mid:
            raise ValueError("a message needs a Message-ID to be written to the outbox")
        eml = self.path_for(mid)
        if eml.exists():
            return SendResult("sent", None, "already in the outbox", rcpts[0])
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            html = html_of(msg)
            if html is not None:
                _atomic_write(eml.with_suffix(".html"), html.encode("utf-8"))
            # The .eml last: its existence is what marks the message as delivered.
            _atomic_write(eml, wire_bytes(msg))
        except OSError as e:
            raise TransportError(f"cannot write to the outbox {self.directory}: {e}") from e
        self.written += 1
        return SendResult("sent", None, f"written to {eml.name}", rcpts[0])

    def write_index(self) -> Path:
        """(Re)write index.html listing every message in the outbox, newest first."""
        rows = []
        parser = BytesHeaderParser(policy=policy.default)
        for eml in sorted(self.directory.glob("*.eml"), key=lambda p: p.stat().st_mtime, reverse=True):
            with eml.open("rb") as f:
                h = parser.parse(f)
            rows.append(
                '<tr><td>{date}</td><td>{to}</td><td><a href="{html}">{subject}</a></td>'
                '<td><a href="{eml}">.eml</a></td></tr>'.format(
                    date=html_lib.escape(str(h["Date"] or "")),
                    to=html_lib.escape(str(h["To"] or "")),
                    subject=html_lib.escape(str(h["Subject"] or "(no subject)")),
                    html=html_lib.escape(eml.with_suffix(".html").name, quote=True),
                    eml=html_lib.escape(eml.name, quote=True),
                )
            )
        page = (
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Outbox</title>'
            "<style>body{font-family:sans-serif}td{padding:4px 8px;border-bottom:1px solid #ddd}</style>"
            f"</head><body><h1>Outbox: {len(rows)} message(s)</h1>"
            "<table><tr><th>Date</th><th>To</th><th>Subject</th><th>Raw</th></tr>"
            + "".join(rows)
            + "</table></body></html>"
        )
        index = self.directory / "index.html"
        _atomic_write(index, page.encode("utf-8"))
        return index


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------------------------


def transport_from_settings(
    settings: Settings, *, outbox_dir: str | os.PathLike[str] | None = None
) -> Transport:
    """The configured transport (mail.mode): SMTP via mail.smtp_connection_id, or the outbox.

    `outbox_dir` forces the outbox (dry runs). Use it as a context manager.
    """
    if outbox_dir is not None:
        return OutboxTransport(outbox_dir)
    if settings.mail.mode == "outbox":
        return OutboxTransport(settings.mail.outbox_dir)
    return SmtpTransport.from_connection(
        settings.mail.smtp_connection_id, rate_per_second=settings.mail.rate_per_second
    )


__all__ = [
    "MailerError",
    "MessageBuildError",
    "OutboxTransport",
    "SendResult",
    "SmtpTransport",
    "Transport",
    "TransportError",
    "build_link_message",
    "build_message",
    "classify_reply",
    "list_id",
    "message_id_for",
    "outbox_name",
    "transport_from_settings",
]
