"""Unsubscribe and preferences over real HTTP: uvicorn on a free port, requests as the client."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import requests
import uvicorn
from smtp_sink import free_port

from lupus_alerts import subscribers, tokens, web

SECRET = "web-test-secret-0123456789abcdef"


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(tokens.SECRET_ENV, SECRET)


@pytest.fixture
def base_url(engine) -> Iterator[str]:  # type: ignore[no-untyped-def]
    port = free_port()
    config = uvicorn.Config(
        web.create_app(engine_factory=lambda: engine), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(5)


@pytest.fixture
def ana(engine):  # type: ignore[no-untyped-def]
    return subscribers.add(engine, email="ana.ruiz@example.org", name="Ana Ruiz", topics=["nephrology"])


def unsub_url(base: str, sid: int) -> str:
    return f"{base}/unsubscribe?token={tokens.make_token(sid, 'unsubscribe')}"


def prefs_url(base: str, sid: int) -> str:
    return f"{base}/preferences?token={tokens.make_token(sid, 'preferences')}"


def test_get_unsubscribe_shows_a_button_and_unsubscribes_nobody(base_url, engine, ana) -> None:
    r = requests.get(unsub_url(base_url, ana.id), timeout=5)
    assert r.status_code == 200
    assert '<form method="post" action="unsubscribe?token=' in r.text
    assert 'name="List-Unsubscribe" value="One-Click"' in r.text
    assert "ana.ruiz@example.org" not in r.text  # a forwarded mail's link shows no address
    assert r.headers["Cache-Control"] == "no-store"
    assert r.headers["Referrer-Policy"] == "no-referrer"
    # Scanners may fetch it many times, and HEAD it.
    for _ in range(3):
        requests.get(unsub_url(base_url, ana.id), timeout=5)
    assert subscribers.get(engine, ana.id).status == "active"


def test_one_click_post_unsubscribes_and_is_idempotent(base_url, engine, ana) -> None:
    url = unsub_url(base_url, ana.id)
    # Exactly what a mail provider sends under RFC 8058: no cookies, form-encoded body.
    r = requests.post(
        url,
        data="List-Unsubscribe=One-Click",
        timeout=5,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200
    assert "You are unsubscribed" in r.text
    assert subscribers.get(engine, ana.id).status == "unsubscribed"
    again = requests.post(url, data={"List-Unsubscribe": "One-Click"}, timeout=5)
    assert again.status_code == 200
    assert subscribers.get(engine, ana.id).status == "unsubscribed"
    page = requests.get(url, timeout=5)
    assert "already unsubscribed" in page.text


def test_confirmation_page_form_posts_to_a_working_url(base_url, engine, ana) -> None:
    import re
    from urllib.parse import urljoin

    url = unsub_url(base_url, ana.id)
    page = requests.get(url, timeout=5).text
    action = re.search(r'<form method="post" action="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    r = requests.post(
        urljoin(url, action.replace("&amp;", "&")), data={"List-Unsubscribe": "One-Click"}, timeout=5
    )
    assert r.status_code == 200
    assert subscribers.get(engine, ana.id).status == "unsubscribed"


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # tampered MAC
        lambda t: str(int(t.split(".")[0]) + 1) + "." + t.split(".")[1],  # someone else's id
        lambda t: "",  # missing
        lambda t: "garbage",
        lambda t: tokens.make_token(int(t.split(".")[0]), "preferences"),  # wrong purpose
    ],
)
def test_bad_tokens_get_400_that_leaks_nothing_and_change_nothing(base_url, engine, ana, mangle) -> None:
    other = subscribers.add(engine, email="bob@example.org", name="Bob")
    bad = mangle(tokens.make_token(ana.id, "unsubscribe"))
    for method in ("get", "post"):
        r = requests.request(
            method, f"{base_url}/unsubscribe?token={bad}", data={"List-Unsubscribe": "One-Click"}, timeout=5
        )
        assert r.status_code == 400
        assert "not valid" in r.text
        for secret_bit in ("ana", "bob", "Ruiz", "@example.org"):
            assert secret_bit not in r.text.lower()
    assert subscribers.get(engine, ana.id).status == "active"
    assert subscribers.get(engine, other.id).status == "active"


def test_valid_token_for_a_deleted_subscriber_is_404(base_url, engine, ana) -> None:
    url = unsub_url(base_url, ana.id)
    subscribers.remove(engine, ana.id, delete=True)
    r = requests.post(url, data={"List-Unsubscribe": "One-Click"}, timeout=5)
    assert r.status_code == 404 and "not valid" in r.text


def test_token_signed_with_another_secret_is_refused(base_url, ana) -> None:
    forged = tokens.make_token(ana.id, "unsubscribe", secret="an-attackers-guess-0123456789")
    assert requests.post(f"{base_url}/unsubscribe?token={forged}", timeout=5).status_code == 400


def test_preferences_page_shows_current_choices(base_url, ana) -> None:
    r = requests.get(prefs_url(base_url, ana.id), timeout=5)
    assert r.status_code == 200
    assert 'value="nephrology" checked' in r.text
    assert 'value="dermatology" checked' not in r.text
    assert 'value="daily" checked' in r.text


def test_preferences_post_changes_topics_and_frequency(base_url, engine, ana) -> None:
    r = requests.post(
        prefs_url(base_url, ana.id),
        data={"topics": ["dermatology", "pregnancy"], "frequency": "weekly", "weekday": "2"},
        timeout=5,
    )
    assert r.status_code == 200 and "Saved." in r.text
    s = subscribers.get(engine, ana.id)
    assert (s.topics, s.frequency, s.weekday) == (frozenset({"dermatology", "pregnancy"}), "weekly", 2)
    r = requests.post(prefs_url(base_url, ana.id), data={"all_topics": "1", "frequency": "daily"}, timeout=5)
    s = subscribers.get(engine, ana.id)
    assert (s.topics, s.frequency, s.weekday) == (None, "daily", None)


def test_preferences_reject_invalid_choices_without_saving(base_url, engine, ana) -> None:
    r = requests.post(prefs_url(base_url, ana.id), data={"topics": ["<script>alert(1)</script>"]}, timeout=5)
    assert r.status_code == 422
    assert "<script>alert(1)</script>" not in r.text  # escaped if echoed at all
    assert subscribers.get(engine, ana.id).topics == frozenset({"nephrology"})


def test_unsubscribe_token_does_not_open_preferences(base_url, ana) -> None:
    t = tokens.make_token(ana.id, "unsubscribe")
    assert requests.get(f"{base_url}/preferences?token={t}", timeout=5).status_code == 400


def test_saving_preferences_resubscribes(base_url, engine, ana) -> None:
    requests.post(unsub_url(base_url, ana.id), data={"List-Unsubscribe": "One-Click"}, timeout=5)
    page = requests.get(prefs_url(base_url, ana.id), timeout=5).text
    assert "You are unsubscribed" in page
    requests.post(
        prefs_url(base_url, ana.id), data={"topics": ["nephrology"], "frequency": "daily"}, timeout=5
    )
    assert subscribers.get(engine, ana.id).status == "active"


def test_missing_secret_is_503_not_a_rejection(base_url, ana, monkeypatch) -> None:
    t = tokens.make_token(ana.id, "unsubscribe")
    monkeypatch.delenv(tokens.SECRET_ENV)
    r = requests.post(f"{base_url}/unsubscribe?token={t}", timeout=5)
    assert r.status_code == 503


def test_links_in_a_received_digest_work_over_http(base_url, engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The whole loop: plan, send over SMTP, read the received mail, follow its links."""
    import re
    from datetime import date

    from digest_seed import add_papers
    from smtp_sink import SmtpSink

    from lupus_alerts import delivery, mailer
    from lupus_alerts.config import settings_from_dict

    settings = settings_from_dict({"digest": {"public_base_url": base_url}}, base_dir=tmp_path)
    s = subscribers.add(engine, email="ana@example.org", topics=["nephrology"], from_beginning=True)
    add_papers(engine, [["nephrology"]])
    with SmtpSink() as sink:
        day = date(2026, 11, 27)
        plan = delivery.plan_period(engine, settings, day=day)
        with mailer.SmtpTransport("127.0.0.1", sink.port, timeout=5) as t:
            assert (
                delivery.send_due(engine, settings, day=day, subscriber_ids=plan.due, transport=t).sent == 1
            )
        [got] = sink.handler.messages
    msg = got.message
    one_click = re.match(r"<([^>]+)>", msg["List-Unsubscribe"]).group(1)  # type: ignore[union-attr]
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    prefs = re.search(r'href="([^"]*/preferences\?token=[^"]+)"', html).group(1).replace("&amp;", "&")  # type: ignore[union-attr]
    assert prefs.startswith(base_url) and one_click.startswith(base_url)
    page = requests.get(prefs, timeout=5)
    assert page.status_code == 200 and 'value="nephrology" checked' in page.text
    # What Gmail does with List-Unsubscribe-Post: POST the body to the https URI.
    r = requests.post(
        one_click,
        data=msg["List-Unsubscribe-Post"],
        timeout=5,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200
    assert subscribers.get(engine, s.id).status == "unsubscribed"
