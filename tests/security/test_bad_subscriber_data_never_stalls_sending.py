"""M4, L5, L6: one subscriber's data never stops everyone else's digests, or retries forever.

A stored name that cannot go into a header (a line break, a vertical tab, 120 KB) makes that
subscriber's row `failed_permanent` with the reason, once; the others are sent; fixing the name
delivers everything the failed digest held. The dry run reports such a subscriber and goes on.
Internationalised addresses go out with SMTPUTF8 where the server offers it, and fail clearly
and permanently where it does not; an internationalised domain is kept in its ASCII form, which
every server takes.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from factories import add_papers
from smtp_sink import SmtpSink, text_part
from webapp import NOW, send_digests, settings_for

from lupus_alerts import store, subscribers
from lupus_alerts.cli import main as cli

# Names as a subscriber row could hold them from before input was checked (or written around
# the checks): each one made build_message raise, and the row went failed_transient every day.
BAD_NAMES = {
    "crlf@example.org": "Eve\r\nBcc: victim@example.org",
    "vtab@example.org": "Vera\x0bTab",
    "huge@example.org": "H" * 120_000,  # SQLite keeps it all; PostgreSQL's column stops at 256
}


def _insert_raw(engine: sa.Engine, email: str, name: str) -> int:
    """A subscriber row written directly, as an old import or a manual fix might have left it."""
    with engine.begin() as c:
        return c.execute(
            sa.insert(store.subscribers)
            .values(email=email, name=name, all_topics=True, created_at=NOW, updated_at=NOW)
            .returning(store.subscribers.c.id)
        ).scalar_one()


def _rows(engine: sa.Engine) -> dict[int, sa.Row]:
    with engine.connect() as c:
        return {r.subscriber_id: r for r in c.execute(sa.select(store.deliveries))}


def test_a_subscriber_whose_mail_cannot_be_built_fails_permanently_and_the_others_get_theirs(
    engine: sa.Engine, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path)
    first = subscribers.add(engine, email="first@example.org", from_beginning=True)
    huge = 120_000 if engine.dialect.name == "sqlite" else 256
    names = {**BAD_NAMES, "huge@example.org": "H" * huge}
    bad = {email: _insert_raw(engine, email, name) for email, name in names.items()}
    last = subscribers.add(engine, email="last@example.org", from_beginning=True)
    add_papers(engine, [["nephrology"]])
    with SmtpSink() as sink:
        stats = send_digests(engine, settings, sink)
        assert sorted(m.rcpt_tos[0] for m in sink.handler.messages) == [
            "first@example.org",
            "last@example.org",
        ]
    assert (stats.sent, stats.failed_permanent, stats.failed_transient) == (2, 3, 0)
    rows = _rows(engine)
    assert rows[first.id].state == rows[last.id].state == "sent"
    reasons = {email: rows[sid].last_error for email, sid in bad.items()}
    assert all(rows[sid].state == "failed_permanent" for sid in bad.values())
    assert reasons["crlf@example.org"] == (
        "the message could not be built: To: display name: contains the control character U+000D"
    )
    assert reasons["vtab@example.org"].endswith("contains the control character U+000B")
    assert reasons["huge@example.org"].endswith(f"name: {huge} characters, at most 100")
    assert {e["email"] for e in stats.errors} == set(BAD_NAMES)
    # Not retried by the next run, not counted as a bounce, the cursor kept.
    with SmtpSink() as sink:
        again = send_digests(engine, settings, sink)
        assert sink.handler.messages == []
    assert (again.sent, again.failed_permanent, again.failed_transient) == (0, 0, 0)
    crlf = subscribers.get(engine, bad["crlf@example.org"])
    assert (crlf.status, crlf.permanent_failures, crlf.cursor) == ("active", 0, 0)
    # The operator fixes the name: the next digest carries what the failed one held.
    subscribers.update(engine, crlf.id, name="Eve")
    add_papers(engine, [["dermatology"]])
    with SmtpSink() as sink:
        send_digests(engine, settings, sink, day=date(2026, 11, 28), now=datetime(2026, 11, 28, 9))
        [eve] = [m for m in sink.handler.messages if m.rcpt_tos == ["crlf@example.org"]]
    html = text_part(eve.message, "html")
    assert "constructed.1" in html and "constructed.2" in html
    assert eve.message["To"] == "Eve <crlf@example.org>"


def test_the_dry_run_reports_a_subscriber_it_cannot_build_and_goes_on(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store.upgrade(sqlite_url)
    engine = store.make_engine(sqlite_url)
    subscribers.add(engine, email="first@example.org", from_beginning=True)
    _insert_raw(engine, "crlf@example.org", BAD_NAMES["crlf@example.org"])
    subscribers.add(engine, email="last@example.org", from_beginning=True)
    add_papers(engine, [["nephrology"]])
    cfg = tmp_path / "lupus-alerts.yaml"
    cfg.write_text(yaml.safe_dump({"store_url": sqlite_url}), encoding="utf-8")
    outbox = tmp_path / "dry"
    code = cli(
        ["--config", str(cfg), "digest", "send", "--dry-run", "--outbox", str(outbox), "--date", "2026-11-27"]
    )
    out = capsys.readouterr().out
    assert code == 1  # something failed, and it says what
    assert "failed_permanent: crlf@example.org:  the message could not be built" in out
    emls = sorted(p.read_bytes() for p in outbox.glob("*.eml"))
    assert (
        len(emls) == 2
        and b"To: first@example.org" in emls[0] + emls[1]
        and b"To: last@example.org" in emls[0] + emls[1]
    )
    with engine.connect() as c:
        assert (
            c.execute(sa.select(sa.func.count()).select_from(store.deliveries)).scalar() == 0
        )  # changed nothing
    engine.dispose()


def test_an_internationalised_address_goes_out_with_smtputf8_where_the_server_offers_it(
    engine: sa.Engine, tmp_path: Path
) -> None:
    jose = subscribers.add(engine, email="josé@example.org", name="Jose Ruiz", from_beginning=True)
    assert jose.email == "josé@example.org"  # a non-ASCII local part has no ASCII form
    subscribers.add(engine, email="ana@example.org", from_beginning=True)
    add_papers(engine, [["nephrology"]])
    with SmtpSink(smtputf8=True) as sink:
        stats = send_digests(engine, settings_for(tmp_path), sink)
        got = {m.rcpt_tos[0]: m for m in sink.handler.messages}
    assert stats.sent == 2 and sorted(got) == ["ana@example.org", "josé@example.org"]
    assert "SMTPUTF8" in got["josé@example.org"].mail_options
    assert "SMTPUTF8" not in got["ana@example.org"].mail_options  # only where it is needed
    assert got["josé@example.org"].message["To"] == "Jose Ruiz <josé@example.org>"


def test_an_internationalised_address_fails_clearly_and_permanently_without_smtputf8(
    engine: sa.Engine, tmp_path: Path
) -> None:
    jose = subscribers.add(engine, email="josé@example.org", name="Jose Ruiz", from_beginning=True)
    subscribers.add(engine, email="ana@example.org", from_beginning=True)
    add_papers(engine, [["nephrology"]])
    with SmtpSink() as sink:
        stats = send_digests(engine, settings_for(tmp_path), sink)
        assert [m.rcpt_tos for m in sink.handler.messages] == [["ana@example.org"]]
    assert (stats.sent, stats.failed_permanent, stats.failed_transient) == (1, 1, 0)
    row = _rows(engine)[jose.id]
    assert (row.state, row.last_error) == (
        "failed_permanent",
        "address needs SMTPUTF8, which the server lacks",
    )


def test_an_internationalised_domain_is_kept_in_ascii_and_sent_by_any_server(
    engine: sa.Engine, tmp_path: Path
) -> None:
    a = subscribers.add(engine, email="user@xn--exmple-cua.org", from_beginning=True)
    b = subscribers.add(engine, email="other@EXÄMPLE.org", from_beginning=True)
    assert (a.email, b.email) == ("user@xn--exmple-cua.org", "other@xn--exmple-cua.org")
    assert subscribers.get(engine, "user@exämple.org").id == a.id  # either form finds it
    add_papers(engine, [["nephrology"]])
    with SmtpSink() as sink:  # no SMTPUTF8
        stats = send_digests(engine, settings_for(tmp_path), sink)
        rcpts = sorted(m.rcpt_tos[0] for m in sink.handler.messages)
    assert stats.sent == 2 and rcpts == ["other@xn--exmple-cua.org", "user@xn--exmple-cua.org"]
