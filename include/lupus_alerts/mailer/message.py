"""Building the digest's MIME message: pure, a rendered digest in, a message out, with a
Message-ID derived from (subscriber, period) so that a retry carries the same Message-ID."""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import html as html_lib
import re
import secrets
import unicodedata
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage, Message
from email.utils import format_datetime, getaddresses, parseaddr
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lupus_alerts.config import Settings

from lupus_alerts.mailer.transport import MessageBuildError

LIST_ID_NAME = "Lupus Alerts digest"
# policy.SMTP folds headers and writes CRLF line ends, as RFC 5322 requires on the wire.
_POLICY = policy.SMTP.clone(max_line_length=998)


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
