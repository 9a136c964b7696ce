"""Unsubscribe, preferences and the paper list over real HTTP: uvicorn on a free port, requests."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
import uvicorn
from factories import add_papers, make_settings
from fastapi import FastAPI
from smtp_sink import free_port, text_part

from lupus_alerts import store, subscribers, tokens, web

SECRET = "web-test-secret-0123456789abcdef"


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(tokens.SECRET_ENV, SECRET)


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
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


SETTINGS = make_settings(digest={"public_base_url": "https://alerts.example.org/lupus-alerts"})


def app_for(engine: sa.Engine, **kw: Any) -> FastAPI:
    return web.create_app(engine_factory=lambda: engine, settings_factory=lambda: SETTINGS, **kw)


@pytest.fixture
def base_url(engine: sa.Engine) -> Iterator[str]:
    with serve(app_for(engine)) as url:
        yield url


@pytest.fixture
def ana(engine: sa.Engine) -> subscribers.Subscriber:
    return subscribers.add(engine, email="ana.ruiz@example.org", name="Ana Ruiz", topics=["nephrology"])


def today() -> date:
    return datetime.now(UTC).date()


def token(sub: subscribers.Subscriber, purpose: str) -> str:
    return tokens.make_token(sub.link_key, purpose, issued=today())


def unsub_url(base: str, sub: subscribers.Subscriber) -> str:
    return f"{base}/unsubscribe?token={token(sub, 'unsubscribe')}"


def prefs_url(base: str, sub: subscribers.Subscriber) -> str:
    return f"{base}/preferences?token={token(sub, 'preferences')}"


def test_get_unsubscribe_shows_a_button_and_unsubscribes_nobody(
    base_url: str, engine: sa.Engine, ana
) -> None:
    r = requests.get(unsub_url(base_url, ana), timeout=5)
    assert r.status_code == 200
    assert '<form method="post" action="unsubscribe?token=' in r.text
    assert 'name="List-Unsubscribe" value="One-Click"' in r.text
    assert "ana.ruiz@example.org" not in r.text  # a forwarded mail's link shows no address
    assert r.headers["Cache-Control"] == "no-store"
    assert r.headers["Referrer-Policy"] == "no-referrer"
    # Scanners may fetch it many times, and HEAD it.
    for _ in range(3):
        requests.get(unsub_url(base_url, ana), timeout=5)
        head = requests.head(unsub_url(base_url, ana), timeout=5)
        assert head.status_code == 200 and head.content == b""
        assert head.headers["Cache-Control"] == "no-store"
    assert subscribers.get(engine, ana.id).status == "active"


def test_one_click_post_unsubscribes_and_is_idempotent(base_url: str, engine: sa.Engine, ana) -> None:
    url = unsub_url(base_url, ana)
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


def test_confirmation_page_form_posts_to_a_working_url(base_url: str, engine: sa.Engine, ana) -> None:
    import re
    from urllib.parse import urljoin

    url = unsub_url(base_url, ana)
    page = requests.get(url, timeout=5).text
    form = re.search(r'<form method="post" action="([^"]+)"', page)
    assert form is not None, "the confirmation page has no form"
    action = form.group(1)
    r = requests.post(
        urljoin(url, action.replace("&amp;", "&")), data={"List-Unsubscribe": "One-Click"}, timeout=5
    )
    assert r.status_code == 200
    assert subscribers.get(engine, ana.id).status == "unsubscribed"


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t, other: t[:-1] + ("A" if t[-1] != "A" else "B"),  # tampered MAC
        lambda t, other: other.link_key + t[t.index(".") :],  # someone else's key, Ana's MAC
        lambda t, other: "",  # missing
        lambda t, other: "garbage",
        lambda t, other: tokens.make_token(t.split(".")[0], "preferences", issued=today()),  # wrong purpose
    ],
)
def test_bad_tokens_get_400_that_leaks_nothing_and_change_nothing(
    base_url: str, engine: sa.Engine, ana, mangle
) -> None:
    other = subscribers.add(engine, email="bob@example.org", name="Bob")
    bad = mangle(token(ana, "unsubscribe"), other)
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


def test_valid_token_for_a_deleted_subscriber_is_404(base_url: str, engine: sa.Engine, ana) -> None:
    url = unsub_url(base_url, ana)
    subscribers.remove(engine, ana.id, delete=True)
    r = requests.post(url, data={"List-Unsubscribe": "One-Click"}, timeout=5)
    assert r.status_code == 404 and "not valid" in r.text


def test_token_signed_with_another_secret_is_refused(base_url: str, ana) -> None:
    forged = tokens.make_token(ana.link_key, "unsubscribe", issued=today(), secret="an-attackers-guess-0123")
    assert requests.post(f"{base_url}/unsubscribe?token={forged}", timeout=5).status_code == 400


def test_preferences_page_shows_current_choices(base_url: str, ana) -> None:
    r = requests.get(prefs_url(base_url, ana), timeout=5)
    assert r.status_code == 200
    assert 'value="nephrology" checked' in r.text
    assert 'value="dermatology" checked' not in r.text
    assert 'value="daily" checked' in r.text


def test_preferences_post_changes_topics_and_frequency(base_url: str, engine: sa.Engine, ana) -> None:
    r = requests.post(
        prefs_url(base_url, ana),
        data={"topics": ["dermatology", "pregnancy"], "frequency": "weekly", "weekday": "2"},
        timeout=5,
    )
    assert r.status_code == 200 and "Saved." in r.text
    s = subscribers.get(engine, ana.id)
    assert (s.topics, s.frequency, s.weekday) == (frozenset({"dermatology", "pregnancy"}), "weekly", 2)
    r = requests.post(prefs_url(base_url, ana), data={"all_topics": "1", "frequency": "daily"}, timeout=5)
    s = subscribers.get(engine, ana.id)
    assert (s.topics, s.frequency, s.weekday) == (None, "daily", None)


def test_preferences_reject_invalid_choices_without_saving(base_url: str, engine: sa.Engine, ana) -> None:
    r = requests.post(prefs_url(base_url, ana), data={"topics": ["<script>alert(1)</script>"]}, timeout=5)
    assert r.status_code == 422
    assert "<script>alert(1)</script>" not in r.text  # escaped if echoed at all
    assert subscribers.get(engine, ana.id).topics == frozenset({"nephrology"})


def test_unsubscribe_token_does_not_open_preferences(base_url: str, ana) -> None:
    t = token(ana, "unsubscribe")
    assert requests.get(f"{base_url}/preferences?token={t}", timeout=5).status_code == 400


def test_saving_preferences_resubscribes(base_url: str, engine: sa.Engine, ana) -> None:
    requests.post(unsub_url(base_url, ana), data={"List-Unsubscribe": "One-Click"}, timeout=5)
    page = requests.get(prefs_url(base_url, ana), timeout=5).text
    assert "You are unsubscribed" in page
    requests.post(prefs_url(base_url, ana), data={"topics": ["nephrology"], "frequency": "daily"}, timeout=5)
    assert subscribers.get(engine, ana.id).status == "active"


def test_missing_secret_is_503_not_a_rejection(base_url: str, ana, monkeypatch: pytest.MonkeyPatch) -> None:
    t = token(ana, "unsubscribe")
    monkeypatch.delenv(tokens.SECRET_ENV)
    r = requests.post(f"{base_url}/unsubscribe?token={t}", timeout=5)
    assert r.status_code == 503


def send_the_one_digest(engine: sa.Engine, base_url: str, tmp_path: Path) -> EmailMessage:
    """Plan 2026-11-27's digests with links to `base_url`, send them over SMTP to a real sink,
    and return the one message it received."""
    from smtp_sink import SmtpSink

    from lupus_alerts import delivery, mailer

    settings = make_settings(tmp_path, digest={"public_base_url": base_url})
    day = date(2026, 11, 27)
    with SmtpSink() as sink:
        plan = delivery.plan_period(engine, settings, day=day)
        with mailer.SmtpTransport("127.0.0.1", sink.port, timeout=5) as t:
            assert (
                delivery.send_due(engine, settings, day=day, subscriber_ids=plan.due, transport=t).sent == 1
            )
        [got] = sink.handler.messages
    return got.message


def test_links_in_a_received_digest_work_over_http(base_url: str, engine: sa.Engine, tmp_path: Path) -> None:
    """The whole loop: plan, send over SMTP, read the received mail, follow its links."""
    s = subscribers.add(engine, email="ana@example.org", topics=["nephrology"], from_beginning=True)
    add_papers(engine, [["nephrology"]])
    msg = send_the_one_digest(engine, base_url, tmp_path)
    one_click_uri = re.match(r"<([^>]+)>", msg["List-Unsubscribe"])
    prefs_link = re.search(r'href="([^"]*/preferences\?token=[^"]+)"', text_part(msg, "html"))
    assert one_click_uri is not None and prefs_link is not None
    one_click, prefs = one_click_uri.group(1), prefs_link.group(1).replace("&amp;", "&")
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


# --- the paper list (/papers) ------------------------------------------------------------------

_LISTED = re.compile(r'<li><a href="https://doi\.org/10\.9999/constructed\.(\d+)"')


def listed(html: str) -> list[int]:
    """The announce numbers of the papers on a list page, in page order (from their DOI links)."""
    return [int(n) for n in _LISTED.findall(html)]


def test_papers_lists_the_range_in_announce_order_with_links_and_badges(
    base_url: str, engine: sa.Engine
) -> None:
    nums = add_papers(
        engine, [["nephrology"], ["dermatology", "nephrology"], ["pregnancy"], [], ["neuropsychiatric"]]
    )
    lo, hi = nums[0], nums[3]
    r = requests.get(f"{base_url}/papers", params={"from": lo, "to": hi}, timeout=5)
    assert r.status_code == 200
    assert listed(r.text) == nums[1:4]  # (from, to]: the first excluded, the last included
    assert f"Constructed paper {nums[1]} on dermatology, nephrology in lupus</a>" in r.text
    # Badges by score (dermatology was labelled first, so scored higher), display names.
    d, n = subscribers.topic_short_name("dermatology"), subscribers.topic_short_name("nephrology")
    assert f'<span class="badge">{d}</span><span class="badge">{n}</span>' in r.text
    assert "Lupus · 20 Nov 2026 · Doe J" in r.text
    empty = requests.get(f"{base_url}/papers", params={"from": hi, "to": hi}, timeout=5)
    assert empty.status_code == 200 and listed(empty.text) == []
    assert "No lupus papers were announced in this range" in empty.text
    # Public and cacheable, otherwise the same hardening as the token pages.
    assert "public" in r.headers["Cache-Control"] and "no-store" not in r.headers["Cache-Control"]
    assert r.headers["Referrer-Policy"] == "no-referrer"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["X-Robots-Tag"] == "noindex, nofollow"
    assert r.headers["Content-Security-Policy"] == (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )


def test_papers_leaves_out_a_paper_no_longer_classified_lupus(base_url: str, engine: sa.Engine) -> None:
    nums = add_papers(engine, [["nephrology"]] * 3)
    with engine.begin() as conn:
        conn.execute(
            sa.update(store.papers).where(store.papers.c.announce_no == nums[1]).values(is_lupus=False)
        )
    r = requests.get(f"{base_url}/papers", params={"from": 0, "to": nums[-1]}, timeout=5)
    assert listed(r.text) == [nums[0], nums[2]]


def test_papers_topic_filter_lists_only_that_topic(base_url: str, engine: sa.Engine) -> None:
    nums = add_papers(engine, [["nephrology"], ["dermatology"], ["dermatology", "nephrology"], []])
    r = requests.get(
        f"{base_url}/papers", params={"from": 0, "to": nums[-1], "topic": "dermatology"}, timeout=5
    )
    assert r.status_code == 200
    assert listed(r.text) == [nums[1], nums[2]]
    assert subscribers.topic_name("dermatology") in r.text


def test_papers_filter_by_several_topics_lists_papers_with_any_of_them(
    base_url: str, engine: sa.Engine
) -> None:
    nums = add_papers(engine, [["nephrology"], ["dermatology"], ["pregnancy"], []])
    r = requests.get(
        f"{base_url}/papers",
        params=[("from", 0), ("to", nums[-1]), ("topic", "pregnancy"), ("topic", "nephrology")],
        timeout=5,
    )
    assert r.status_code == 200
    assert listed(r.text) == [nums[0], nums[2]]


def test_papers_pages_follow_on_until_the_range_is_exhausted(engine: sa.Engine) -> None:
    nums = add_papers(engine, [["nephrology"]] * 5)
    with serve(app_for(engine, papers_page_size=2)) as base:
        url, pages = f"{base}/papers?from=0&to={nums[-1]}", []
        while url:
            page = requests.get(url, timeout=5).text
            pages.append(listed(page))
            m = re.search(r'<a href="(papers\?[^"]+)">Next papers</a>', page)
            url = f"{base}/{m.group(1).replace('&amp;', '&')}" if m else ""
    assert pages == [nums[0:2], nums[2:4], nums[4:5]]


def test_papers_escapes_a_hostile_title(base_url: str, engine: sa.Engine) -> None:
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    [no] = add_papers(engine, [["nephrology"]], title_prefix=hostile)
    r = requests.get(f"{base_url}/papers", params={"from": 0, "to": no}, timeout=5)
    assert r.status_code == 200
    assert "<script>" not in r.text and "<img" not in r.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in r.text


BAD_PAPER_QUERIES = (
    "",
    "from=1",
    "to=5",
    "from=&to=5",
    "from=abc&to=5",
    "from=-1&to=5",
    "from=1.5&to=5",
    "from=%2B1&to=5",  # "+1": int() would take it
    "from=1_0&to=50",  # so would "1_0"
    "from=%201&to=5",
    "from=6&to=5",
    "from=0&to=99999999999999999999",  # beyond BIGINT
    "from=0&to=5&topic=%3Cscript%3Ealert(1)%3C/script%3E",
)


def test_papers_bad_parameters_get_400(base_url: str, engine: sa.Engine) -> None:
    # One server for all cases: a store and a server per case would cost seconds on PostgreSQL.
    add_papers(engine, [["nephrology"]])
    for query in BAD_PAPER_QUERIES:
        r = requests.get(f"{base_url}/papers?{query}", timeout=5)
        assert r.status_code == 400, query
        assert "not valid" in r.text
        assert "<script>" not in r.text
        assert "Constructed paper" not in r.text


def test_overflow_link_in_a_received_digest_lists_the_papers_left_out(
    base_url: str, engine: sa.Engine, tmp_path: Path
) -> None:
    """A digest capped at 2 papers, sent over SMTP: its "see them all online" link lists the rest."""
    subscribers.add(engine, email="ana@example.org", topics=["nephrology"], max_papers=2, from_beginning=True)
    nums = add_papers(engine, [["nephrology"]] * 5 + [["dermatology"]])
    html = text_part(send_the_one_digest(engine, base_url, tmp_path), "html")
    shown = [int(n) for n in re.findall(r"https://doi\.org/10\.9999/constructed\.(\d+)", html)]
    assert len(set(shown)) == 2
    m = re.search(r'<a[^>]*href="([^"]*/papers\?[^"]+)"[^>]*>See them all online', html)
    assert m is not None
    more = m.group(1).replace("&amp;", "&")
    assert more.startswith(f"{base_url}/papers?")
    r = requests.get(more, timeout=5)
    assert r.status_code == 200
    on_page = listed(r.text)
    overflow = [n for n in nums[:5] if n not in shown]
    # Exactly the subscriber's papers after the cursor: the left-out ones are there, the
    # dermatology paper (not one of Ana's topics) is not.
    assert len(overflow) == 3 and set(overflow) <= set(on_page)
    assert on_page == nums[:5]
