"""M3: a link acts on the subscriber it was sent to, or on no one; Message-IDs never repeat.

On SQLite a deleted subscriber's id goes to the next subscriber. Links and Message-IDs carry the
subscriber's random link key instead, so Alice's old links never touch Bob and Bob's digest never
gets Alice's Message-ID. Links can be revoked; unsubscribe links never expire; an expired
preferences link offers a fresh one by mail. The links used here are the ones a subscriber
receives: a digest is planned, sent over SMTP to a real server, and read back.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import requests
import sqlalchemy as sa
from factories import add_papers
from smtp_sink import SmtpSink, text_part
from webapp import DAY, NOW, app_for, links_in, rebase, send_digests, serve, settings_for

from lupus_alerts import delivery, mailer, store, subscribers, tokens
from lupus_alerts.cli import main as cli
from lupus_alerts.config import Settings

ONE_CLICK = {"List-Unsubscribe": "One-Click"}


def _received_links(engine: sa.Engine, settings: Settings) -> dict[str, str]:
    with SmtpSink() as sink:
        stats = send_digests(engine, settings, sink)
        assert stats.sent == 1
        [got] = sink.handler.messages
    return links_in(got.message)


def test_a_deleted_subscribers_old_links_never_act_on_the_next_subscriber(
    engine: sa.Engine, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path)
    alice = subscribers.add(engine, email="alice@example.org", topics=["nephrology"], from_beginning=True)
    add_papers(engine, [["nephrology"]])
    alice_links = _received_links(engine, settings)
    subscribers.remove(engine, alice.id, delete=True)  # an erasure request
    bob = subscribers.add(engine, email="bob@example.org", name="Bob", topics=["dermatology"])
    if engine.dialect.name == "sqlite":
        assert bob.id == alice.id  # the id really was handed out again
    with serve(app_for(engine, settings)) as base:
        unsub = rebase(alice_links["unsubscribe"], base)
        prefs = rebase(alice_links["preferences"], base)
        assert requests.post(unsub, data=ONE_CLICK, timeout=5).status_code == 404
        page = requests.get(prefs, timeout=5)
        assert page.status_code == 404 and "bob" not in page.text.lower()
        saved = requests.post(prefs, data={"topics": ["pregnancy"], "frequency": "daily"}, timeout=5)
        assert saved.status_code == 404
        assert requests.post(f"{base}/email-link?{unsub.split('?')[1]}", timeout=5).status_code == 404
    b = subscribers.get(engine, bob.id)
    assert (b.status, b.topics) == ("active", frozenset({"dermatology"}))


def test_the_next_subscriber_never_gets_a_deleted_subscribers_message_id(
    engine: sa.Engine, tmp_path: Path
) -> None:
    outbox_dir = tmp_path / "outbox"
    settings = settings_for(tmp_path, mail={"mode": "outbox", "outbox_dir": str(outbox_dir)})
    alice = subscribers.add(engine, email="alice@example.org", from_beginning=True)
    add_papers(engine, [["nephrology"]])

    def run() -> delivery.DeliveryStats:
        plan = delivery.plan_period(engine, settings, day=DAY, now=NOW)
        with mailer.OutboxTransport(outbox_dir) as outbox:
            return delivery.send_due(
                engine, settings, day=DAY, subscriber_ids=plan.due, now=NOW, transport=outbox
            )

    assert run().sent == 1
    subscribers.remove(engine, alice.id, delete=True)
    bob = subscribers.add(engine, email="bob@example.org", from_beginning=True)
    assert run().sent == 1
    files = sorted(outbox_dir.glob("*.eml"))
    assert len(files) == 2  # Bob's digest was written, not taken for Alice's "already in the outbox"
    assert sum(b"To: bob@example.org" in f.read_bytes() for f in files) == 1
    with engine.connect() as c:
        [row] = c.execute(sa.select(store.deliveries).where(store.deliveries.c.subscriber_id == bob.id)).all()
    assert row.state == "sent"
    assert mailer.OutboxTransport(outbox_dir).path_for(row.message_id).exists()


def test_revoked_links_stop_working_and_the_next_digest_carries_new_ones(
    engine: sa.Engine, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path)
    ana = subscribers.add(engine, email="ana@example.org", from_beginning=True)
    add_papers(engine, [["nephrology"]])
    old = _received_links(engine, settings)
    # e.g. a digest forwarded to a mailing list: the operator revokes its links
    cfg = tmp_path / "lupus-alerts.yaml"
    cfg.write_text(f"store_url: {engine.url.render_as_string(hide_password=False)}\n", encoding="utf-8")
    assert cli(["--config", str(cfg), "subscribers", "revoke-links", "ana@example.org"]) == 0
    add_papers(engine, [["nephrology"]])
    with SmtpSink() as sink:
        send_digests(engine, settings, sink, day=date(2026, 11, 28), now=datetime(2026, 11, 28, 9))
        new = links_in(sink.handler.messages[0].message)
    with serve(app_for(engine, settings)) as base:
        assert requests.get(rebase(old["preferences"], base), timeout=5).status_code == 404
        assert requests.post(rebase(old["unsubscribe"], base), data=ONE_CLICK, timeout=5).status_code == 404
        assert subscribers.get(engine, ana.id).status == "active"
        assert requests.get(rebase(new["preferences"], base), timeout=5).status_code == 200
        assert requests.post(rebase(new["unsubscribe"], base), data=ONE_CLICK, timeout=5).status_code == 200
    assert subscribers.get(engine, ana.id).status == "unsubscribed"


def test_changing_the_address_revokes_the_links_sent_to_the_old_one(
    engine: sa.Engine, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path)
    ana = subscribers.add(engine, email="ana@old-institute.example.org", from_beginning=True)
    add_papers(engine, [["nephrology"]])
    old = _received_links(engine, settings)
    subscribers.update(engine, ana.id, email="ana@new-institute.example.org")
    with serve(app_for(engine, settings)) as base:
        assert requests.post(rebase(old["unsubscribe"], base), data=ONE_CLICK, timeout=5).status_code == 404
    assert subscribers.get(engine, ana.id).status == "active"


def _token(sub: subscribers.Subscriber, purpose: str, issued: date) -> str:
    return tokens.make_token(sub.link_key, purpose, issued=issued)


def test_unsubscribe_links_never_expire(engine: sa.Engine, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    ana = subscribers.add(engine, email="ana@example.org")
    five_years_ago = datetime.now(UTC).date() - timedelta(days=5 * 366)
    with serve(app_for(engine, settings)) as base:
        url = f"{base}/unsubscribe?token={_token(ana, 'unsubscribe', five_years_ago)}"
        assert requests.get(url, timeout=5).status_code == 200
        assert requests.post(url, data=ONE_CLICK, timeout=5).status_code == 200
    assert subscribers.get(engine, ana.id).status == "unsubscribed"


def test_an_expired_preferences_link_changes_nothing_and_mails_a_fresh_one(
    engine: sa.Engine, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path, mail={"mode": "smtp"})
    days = settings.digest.preferences_link_days
    ana = subscribers.add(engine, email="ana@example.org", name="Ana", topics=["nephrology"])
    today = datetime.now(UTC).date()
    with SmtpSink() as sink:
        smtp = lambda: mailer.SmtpTransport("127.0.0.1", sink.port, timeout=5)  # noqa: E731
        with serve(app_for(engine, settings, transport_factory=smtp)) as base:
            fresh_enough = (
                f"{base}/preferences?token={_token(ana, 'preferences', today - timedelta(days=days))}"
            )
            assert requests.get(fresh_enough, timeout=5).status_code == 200
            expired = (
                f"{base}/preferences?token={_token(ana, 'preferences', today - timedelta(days=days + 1))}"
            )
            page = requests.get(expired, timeout=5)
            assert page.status_code == 410 and "This link has expired" in page.text
            assert '<form method="post" action="email-link?token=' in page.text
            saved = requests.post(expired, data={"topics": ["pregnancy"], "frequency": "daily"}, timeout=5)
            assert saved.status_code == 410
            assert subscribers.get(engine, ana.id).topics == frozenset({"nephrology"})
            # The offered button: a fresh link, mailed to the subscriber's own address only.
            sent = requests.post(f"{base}/email-link?{expired.split('?')[1]}", timeout=10)
            assert sent.status_code == 200 and "Check your inbox" in sent.text
            assert "ana@example.org" not in sent.text
            again = requests.post(f"{base}/email-link?{expired.split('?')[1]}", timeout=10)
            assert again.status_code == 200  # the same page, but no second mail (throttled)
            [mail] = sink.handler.messages
            assert mail.rcpt_tos == ["ana@example.org"]
            body = text_part(mail.message, "plain")
            link = next(line for line in body.splitlines() if "/preferences?token=" in line)
            assert link.startswith("https://alerts.example.org/lupus-alerts/preferences?token=")
            new_page = requests.get(rebase(link, base), timeout=5)
            assert new_page.status_code == 200 and 'value="nephrology" checked' in new_page.text


def test_first_format_links_work_only_for_subscribers_who_existed_before_link_keys(
    db_url: str, tmp_path: Path
) -> None:
    """Mail sent before the upgrade carries `<id>.<MAC>` unsubscribe links. Migration 0004 marks
    the subscribers of that time, whose links keep working; an id handed out later does not."""
    store.upgrade(db_url, "0003")
    engine = store.make_engine(db_url)
    try:
        with engine.begin() as c:
            c.execute(
                sa.text(
                    "INSERT INTO subscribers (email, all_topics, frequency, max_papers, send_when_empty,"
                    " status, cursor, update_cursor, permanent_failures, created_at, updated_at) VALUES"
                    " ('early@example.org', true, 'daily', 50, false, 'active', 0, 0, 0, :t, :t),"
                    " ('gone@example.org', true, 'daily', 50, false, 'active', 0, 0, 0, :t, :t)"
                ),
                {"t": NOW},
            )
        store.upgrade(db_url)
        early = subscribers.get(engine, "early@example.org")
        gone = subscribers.get(engine, "gone@example.org")
        assert early.legacy_links and gone.legacy_links and early.link_key != gone.link_key
        subscribers.remove(engine, gone.id, delete=True)
        later = subscribers.add(engine, email="later@example.org")
        assert not later.legacy_links
        with serve(app_for(engine, settings_for(tmp_path))) as base:

            def post(sid: int) -> int:
                token = tokens.make_legacy_token(sid, "unsubscribe")
                return requests.post(
                    f"{base}/unsubscribe?token={token}", data=ONE_CLICK, timeout=5
                ).status_code

            assert post(later.id) == 404  # on SQLite later.id == gone.id: still refused
            assert post(early.id) == 200
            legacy_prefs = tokens.make_legacy_token(early.id, "preferences")
            r = requests.get(f"{base}/preferences?token={legacy_prefs}", timeout=5)
            assert r.status_code == 410  # no date: offered a fresh link, never opened
        assert subscribers.get(engine, early.id).status == "unsubscribed"
        assert subscribers.get(engine, later.id).status == "active"
    finally:
        engine.dispose()
