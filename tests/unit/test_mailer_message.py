"""build_message and the outbox: MIME structure, headers, deterministic Message-IDs, files."""

from __future__ import annotations

import email
import re
from dataclasses import dataclass
from datetime import datetime
from email import policy
from pathlib import Path
from typing import Any

import pytest
from factories import make_settings

from lupus_alerts import mailer
from lupus_alerts.subscribers import Subscriber


@dataclass
class FakeDigest:
    """A CONSTRUCTED stand-in for digest.Digest: build_message reads only these fields."""

    subscriber: Subscriber
    period: str
    subject: str
    html: str
    text: str
    unsubscribe_url: str = "https://alerts.example.org/unsubscribe?token=1.x"


def _digest(**kw: Any) -> FakeDigest:
    d: dict[str, Any] = {
        "subscriber": Subscriber(
            id=7, email="zoe@example.org", name="Zoë O'Brien, MD", link_key="k7-constructed-link-key"
        ),
        "period": "2026-11-27",
        "subject": "Lupus digest · 2 new papers (Nephrology 1, Dermatology 1) · 27 Nov 2026",
        "html": "<html><body><p>" + "Lupus nephritis — café " * 400 + "</p></body></html>",
        "text": "Lupus digest\n\nLupus nephritis — café\n",
    }
    d.update(kw)
    return FakeDigest(**d)


SETTINGS = make_settings()
NOW = datetime(2026, 11, 27, 9, 0)


def _roundtrip(msg: email.message.EmailMessage) -> email.message.EmailMessage:
    return email.message_from_bytes(msg.as_bytes(), policy=policy.default)


def test_message_is_multipart_alternative_text_then_html_in_utf8() -> None:
    msg = _roundtrip(
        mailer.build_message(_digest(), settings=SETTINGS, unsubscribe_url="https://a/u?token=1.x", now=NOW)
    )
    assert msg.get_content_type() == "multipart/alternative"
    text, html = msg.iter_parts()
    assert (text.get_content_type(), html.get_content_type()) == ("text/plain", "text/html")
    assert text["Content-Transfer-Encoding"] == "quoted-printable"
    assert "café" in text.get_content() and "café" in html.get_content()
    assert msg["Subject"] == _digest().subject  # non-ASCII subject survives (RFC 2047)


def test_wire_format_has_crlf_and_short_lines() -> None:
    raw = mailer.build_message(
        _digest(), settings=SETTINGS, unsubscribe_url="https://a/u", now=NOW
    ).as_bytes()
    lines = raw.split(b"\r\n")
    assert max(len(line) for line in lines) <= 998
    assert raw.isascii()


def test_headers_for_bulk_mail_and_one_click_unsubscribe() -> None:
    built = mailer.build_message(
        _digest(), settings=SETTINGS, unsubscribe_url="https://a.example/unsubscribe?token=7.abc", now=NOW
    )
    assert mailer.recipients(built) == ["zoe@example.org"]
    msg = _roundtrip(built)  # as a receiving client reads it (folded lines unfolded)
    assert (
        msg["List-Unsubscribe"] == "<https://a.example/unsubscribe?token=7.abc>, "
        "<mailto:unsubscribe@lupus-alerts.example.org?subject=unsubscribe>"
    )
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["Precedence"] == "bulk"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["From"] == "Lupus Alerts <digest@lupus-alerts.example.org>"
    assert msg["Reply-To"] == "editors@lupus-alerts.example.org"
    assert msg["Date"] == "Fri, 27 Nov 2026 09:00:00 +0000"
    assert msg["To"].addresses[0].display_name == "Zoë O'Brien, MD"
    assert msg["To"].addresses[0].addr_spec == "zoe@example.org"


def test_message_id_is_deterministic_per_subscriber_and_period() -> None:
    a = mailer.build_message(_digest(), settings=SETTINGS, unsubscribe_url="u", now=NOW)
    b = mailer.build_message(_digest(), settings=SETTINGS, unsubscribe_url="u", now=datetime(2026, 11, 28))
    c = mailer.build_message(_digest(period="2026-11-28"), settings=SETTINGS, unsubscribe_url="u", now=NOW)
    d = mailer.build_message(
        _digest(subscriber=Subscriber(id=8, email="x@example.org", link_key="k8-constructed-link-key")),
        settings=SETTINGS,
        unsubscribe_url="u",
        now=NOW,
    )
    # The same subscriber id with another link key (SQLite gave a deleted subscriber's id to a
    # new one): another Message-ID.
    e = mailer.build_message(
        _digest(subscriber=Subscriber(id=7, email="zoe@example.org", link_key="k7-another-link-key-00")),
        settings=SETTINGS,
        unsubscribe_url="u",
        now=NOW,
    )
    assert a["Message-ID"] == b["Message-ID"]
    assert len({a["Message-ID"], c["Message-ID"], d["Message-ID"], e["Message-ID"]}) == 4
    # Exactly <digest.PERIOD.HASH@DOMAIN>: 24 hex digits that reveal neither the key nor the
    # address, and no other part.
    mid = a["Message-ID"]
    assert re.fullmatch(r"<digest\.2026-11-27\.[0-9a-f]{24}@lupus-alerts\.example\.org>", mid)
    assert "k7-constructed-link-key" not in mid and "zoe" not in mid


def test_header_injection_through_the_subject_is_refused() -> None:
    with pytest.raises(ValueError):
        mailer.build_message(
            _digest(subject="Hi\r\nBcc: victim@example.org"), settings=SETTINGS, unsubscribe_url="u", now=NOW
        ).as_bytes()


def test_outbox_writes_eml_html_and_index_idempotently(tmp_path: Path) -> None:
    msg = mailer.build_message(_digest(), settings=SETTINGS, unsubscribe_url="u", now=NOW)
    with mailer.OutboxTransport(tmp_path) as out:
        first = out.send(msg)
        second = out.send(msg)
    assert first.ok and second.ok and second.message == "already in the outbox"
    assert out.written == 1
    [eml] = list(tmp_path.glob("*.eml"))
    assert eml.stem == msg["Message-ID"].strip("<>")
    assert eml.read_bytes() == msg.as_bytes()
    assert eml.with_suffix(".html").read_text(encoding="utf-8") == _digest().html
    index = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert eml.name in index and "Lupus digest" in index
    assert out.was_sent(msg["Message-ID"]) and not out.was_sent("<other@x>")


def test_outbox_file_names_cannot_escape_the_directory(tmp_path: Path) -> None:
    assert "/" not in mailer.outbox_name("<../../etc/passwd@x>")
    assert mailer.outbox_name("<a/b\\c@x>") == "a_b_c@x"


def test_fast_serialisation_equals_what_the_standard_generator_writes() -> None:
    msg = mailer.build_message(_digest(), settings=SETTINGS, unsubscribe_url="https://a/u?token=1.x", now=NOW)
    from email.generator import BytesGenerator
    from io import BytesIO

    buf = BytesIO()
    BytesGenerator(buf, policy=policy.compat32.clone(linesep="\r\n")).flatten(msg)
    std = email.message_from_bytes(buf.getvalue(), policy=policy.default)
    fast = _roundtrip(msg)
    assert [(k, str(v).strip()) for k, v in std.items()] == [(k, str(v).strip()) for k, v in fast.items()]
    assert [p.get_content() for p in std.iter_parts()] == [p.get_content() for p in fast.iter_parts()]
    decoded = [p.get_content().replace("\r\n", "\n") for p in fast.iter_parts()]
    assert decoded == [_digest().text, _digest().html]


@pytest.mark.parametrize(
    "title",
    [
        "<script>alert(1)</script>",
        '"><img onerror=alert(1)>',
        "Lupus 🦋 digest: naïve B cells",
        "x" * 5000,
        "é" * 3000,
    ],
)
def test_any_subject_text_survives_the_wire(title: str) -> None:
    built = mailer.build_message(_digest(subject=title), settings=SETTINGS, unsubscribe_url="u", now=NOW)
    assert max(len(line) for line in built.as_bytes().split(b"\r\n")) <= 998
    assert _roundtrip(built)["Subject"] == title


def test_mostly_ascii_parts_are_quoted_printable_and_non_latin_ones_base64() -> None:
    html = (
        '<td style="color:#333"><a href="https://doi.org/10.1/x">Lupus nephritis in adults (café)</a></td>\n'
    )
    latin = mailer.build_message(_digest(html=html * 300), settings=SETTINGS, unsubscribe_url="u", now=NOW)
    assert [p["Content-Transfer-Encoding"] for p in latin.get_payload()] == ["quoted-printable"] * 2
    greek = "Συστηματικός ερυθηματώδης λύκος και νεφρίτιδα. " * 100
    other = mailer.build_message(
        _digest(text=greek, html=f"<p>{greek}</p>"), settings=SETTINGS, unsubscribe_url="u", now=NOW
    )
    assert [p["Content-Transfer-Encoding"] for p in other.get_payload()] == ["base64"] * 2
    parsed = _roundtrip(other)
    assert [p.get_content().replace("\r\n", "\n") for p in parsed.iter_parts()] == [greek, f"<p>{greek}</p>"]


def test_one_recipient_per_message(tmp_path: Path) -> None:
    msg = mailer.build_message(_digest(), settings=SETTINGS, unsubscribe_url="u", now=NOW)
    msg["Cc"] = "someone@example.org"
    with pytest.raises(ValueError, match="exactly one recipient"):
        mailer.OutboxTransport(tmp_path).send(msg)


def test_smtp_refuses_a_built_message_given_a_second_recipient() -> None:
    # The transport takes the envelope from build_message instead of re-parsing the headers;
    # a recipient added afterwards must still be refused before any connection is made.
    msg = mailer.build_message(_digest(), settings=SETTINGS, unsubscribe_url="u", now=NOW)
    msg["Cc"] = "someone@example.org"
    with pytest.raises(ValueError, match="exactly one recipient"):
        mailer.SmtpTransport("127.0.0.1", 1).send(msg)


@pytest.mark.parametrize("name", ["Zoë O'Brien, MD", "Plain Name", "", 'Dr. "Quoted" (Lab)'])
def test_envelope_is_what_the_from_and_to_headers_say(name: str) -> None:
    sub = Subscriber(id=9, email="reader.nine@example.org", name=name, link_key="k9-constructed-link-key")
    msg = mailer.build_message(_digest(subscriber=sub), settings=SETTINGS, unsubscribe_url="u", now=NOW)
    parsed = _roundtrip(msg)
    assert msg.envelope is not None
    assert msg.envelope[:2] == (mailer.envelope_sender(parsed), "reader.nine@example.org")
    assert mailer.recipients(parsed) == [msg.envelope[1]]
