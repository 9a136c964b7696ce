"""Holding defences: a link acts only with the right token, and only on a POST.

Tampered, truncated, cross-subscriber, wrong-purpose and foreign-secret tokens are refused over
HTTP with a page that names no one; GET and HEAD (link scanners, prefetchers) never unsubscribe.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from webapp import app_for, serve, settings_for

from lupus_alerts import store, subscribers, tokens

ONE_CLICK = {"List-Unsubscribe": "One-Click"}


def _today() -> date:
    return datetime.now(UTC).date()


def _flip_last(t: str) -> str:
    return t[:-1] + ("A" if t[-1] != "A" else "B")


FORGERIES: dict[str, Callable[[str, subscribers.Subscriber], str]] = {
    "tampered MAC": lambda t, other: _flip_last(t),
    "MAC cut to 8 characters": lambda t, other: t[: t.rindex(".") + 9],
    "MAC removed": lambda t, other: t[: t.rindex(".") + 1],
    "someone else's key, this MAC": lambda t, other: other.link_key + t[t.index(".") :],
    "issue day moved": lambda t, other: ".".join(
        [t.split(".")[0], str(int(t.split(".")[1]) + 1), t.split(".")[2]]
    ),
    "wrong purpose": lambda t, other: tokens.make_token(t.split(".")[0], "preferences", issued=_today()),
    "another secret": lambda t, other: tokens.make_token(
        t.split(".")[0], "unsubscribe", issued=_today(), secret="an-attackers-guess-0123456789"
    ),
    "first format, a guessed id": lambda t, other: f"{other.id}.{t.split('.')[2]}",
    "missing": lambda t, other: "",
    "garbage": lambda t, other: "<script>alert(1)</script>",
}


# the store, the served app's base URL, and two subscribers: Ana and Bob
World = tuple[sa.Engine, str, subscribers.Subscriber, subscribers.Subscriber]


@pytest.fixture
def world(engine: sa.Engine, tmp_path: Path) -> Iterator[World]:
    ana = subscribers.add(engine, email="ana.ruiz@example.org", name="Ana Ruiz", topics=["nephrology"])
    bob = subscribers.add(engine, email="bob@example.org", name="Bob")
    with serve(app_for(engine, settings_for(tmp_path))) as base:
        yield engine, base, ana, bob


def test_forged_unsubscribe_links_are_refused_and_name_no_one(world: World) -> None:
    engine, base, ana, bob = world
    good = tokens.make_token(ana.link_key, "unsubscribe", issued=_today())
    for what, forge in FORGERIES.items():
        bad = forge(good, bob)
        for method in ("GET", "POST", "HEAD"):
            r = requests.request(
                method, f"{base}/unsubscribe", params={"token": bad}, data=ONE_CLICK, timeout=5
            )
            assert r.status_code in (400, 404), (what, method, r.status_code)
            if method != "HEAD":
                assert "This link is not valid" in r.text, what
                for name in ("ana", "ruiz", "bob", "@example.org"):
                    assert name not in r.text.lower(), (what, name)
    assert subscribers.get(engine, ana.id).status == "active"
    assert subscribers.get(engine, bob.id).status == "active"


def test_forged_preferences_links_change_nothing(world: World) -> None:
    engine, base, ana, bob = world
    good = tokens.make_token(ana.link_key, "preferences", issued=_today())
    forgeries = {
        **FORGERIES,
        "wrong purpose": lambda t, o: tokens.make_token(ana.link_key, "unsubscribe", issued=_today()),
    }
    for what, forge in forgeries.items():
        bad = forge(good, bob)
        r = requests.post(
            f"{base}/preferences",
            params={"token": bad},
            data={"topics": ["pregnancy"], "frequency": "daily"},
            timeout=5,
        )
        assert r.status_code in (400, 404), what
        assert requests.get(f"{base}/preferences", params={"token": bad}, timeout=5).status_code in (400, 404)
    assert subscribers.get(engine, ana.id).topics == frozenset({"nephrology"})
    assert subscribers.get(engine, bob.id).topics is None


def test_forged_links_cannot_make_the_app_send_mail(world: World) -> None:
    engine, base, ana, bob = world
    good = tokens.make_token(ana.link_key, "unsubscribe", issued=_today())
    for what, forge in FORGERIES.items():
        if what == "wrong purpose":
            continue  # a preferences token is a right one here: it may ask for a fresh link
        r = requests.post(f"{base}/email-link", params={"token": forge(good, bob)}, timeout=5)
        assert r.status_code in (400, 404), what
    with engine.connect() as c:
        sent_at = c.execute(sa.select(store.subscribers.c.links_sent_at)).scalars().all()
    assert sent_at == [None, None]


def test_get_and_head_never_unsubscribe_however_often(world: World) -> None:
    """What a link scanner or a mail client's prefetcher does with the one-click URL."""
    engine, base, ana, _bob = world
    url = f"{base}/unsubscribe?token={tokens.make_token(ana.link_key, 'unsubscribe', issued=_today())}"
    for _ in range(5):
        page = requests.get(url, timeout=5)
        assert page.status_code == 200 and '<form method="post"' in page.text
        head = requests.head(url, timeout=5)
        assert head.status_code == 200 and head.content == b""
        # a prefetcher may also send the query string to the other pages
        assert requests.get(url.replace("/unsubscribe?", "/email-link?"), timeout=5).status_code == 405
    assert subscribers.get(engine, ana.id).status == "active"
    assert requests.post(url, data=ONE_CLICK, timeout=5).status_code == 200
    assert subscribers.get(engine, ana.id).status == "unsubscribed"
