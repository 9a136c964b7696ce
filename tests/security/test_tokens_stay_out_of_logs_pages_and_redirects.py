"""L3 and L4: a token goes nowhere but to the person it was mailed to.

uvicorn's access log never holds a token; the unsubscribe pages never hand out a preferences
token (whoever holds an unsubscribe link, a scanner or the reader of a forwarded digest, could
otherwise change topics and resubscribe); a trailing-slash redirect is relative, never built
from the Host header.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests
import sqlalchemy as sa
from webapp import app_for, serve, settings_for

from lupus_alerts import subscribers, tokens

ONE_CLICK = {"List-Unsubscribe": "One-Click"}
_TOKENS = re.compile(r"token=([A-Za-z0-9_.%-]+)")


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def ana(engine: sa.Engine) -> subscribers.Subscriber:
    return subscribers.add(engine, email="ana@example.org", topics=["nephrology"])


def _token(sub: subscribers.Subscriber, purpose: str) -> str:
    return tokens.make_token(sub.link_key, purpose, issued=datetime.now(UTC).date())


def test_tokens_never_reach_the_access_log(engine: sa.Engine, ana, tmp_path: Path) -> None:
    unsub, prefs = _token(ana, "unsubscribe"), _token(ana, "preferences")
    access = logging.getLogger("uvicorn.access")
    lines = _Lines()
    with serve(app_for(engine, settings_for(tmp_path)), access_log=True) as base:
        access.addHandler(lines)
        try:
            requests.get(f"{base}/unsubscribe?token={unsub}", timeout=5)
            requests.get(f"{base}/preferences?token={prefs}&x=1", timeout=5)
            requests.post(f"{base}/preferences?x=1&token={prefs}", data={"frequency": "daily"}, timeout=5)
            requests.post(f"{base}/unsubscribe?token={unsub}", data=ONE_CLICK, timeout=5)
            requests.get(f"{base}/unsubscribe?TOKEN={unsub}", timeout=5)
        finally:
            access.removeHandler(lines)
    assert len(lines.lines) == 5, lines.lines  # the access log did record every request
    for line in lines.lines:
        assert unsub not in line and prefs not in line, line
        assert unsub.split(".")[-1] not in line and prefs.split(".")[-1] not in line, line  # no MAC either
    assert 'GET /unsubscribe?token=[redacted] HTTP/1.1" 200' in lines.lines[0]
    assert "/preferences?token=[redacted]&x=1" in lines.lines[1]
    assert "/preferences?x=1&token=[redacted]" in lines.lines[2]


def _preference_tokens_in(html: str) -> list[str]:
    found = []
    for t in _TOKENS.findall(html):
        try:
            tokens.check_token(t, "preferences")
        except tokens.InvalidToken:
            continue
        found.append(t)
    return found


def test_the_unsubscribe_pages_never_hand_out_a_preferences_token(
    engine: sa.Engine, ana, tmp_path: Path
) -> None:
    url_path = f"/unsubscribe?token={_token(ana, 'unsubscribe')}"
    with serve(app_for(engine, settings_for(tmp_path))) as base:
        confirm = requests.get(base + url_path, timeout=5)
        done = requests.post(base + url_path, data=ONE_CLICK, timeout=5)
        again = requests.get(base + url_path, timeout=5)  # "already unsubscribed"
    for page in (confirm, done, again):
        assert page.status_code == 200
        assert _preference_tokens_in(page.text) == []
        assert "preferences?token=" not in page.text
    # What they offer instead: a button that mails a preferences link to the subscriber.
    assert '<form method="post" action="email-link?token=' in confirm.text
    assert '<form method="post" action="email-link?token=' in done.text


@pytest.mark.parametrize("method", ["GET", "POST", "HEAD"])
@pytest.mark.parametrize("page", ["unsubscribe", "preferences", "papers"])
def test_a_trailing_slash_redirect_is_relative_and_ignores_the_host_header(
    engine: sa.Engine, ana, tmp_path: Path, method: str, page: str
) -> None:
    purpose = "unsubscribe" if page == "unsubscribe" else "preferences"
    query = "from=0&to=1" if page == "papers" else f"token={_token(ana, purpose)}"
    with serve(app_for(engine, settings_for(tmp_path))) as base:
        url = f"{base}/{page}/?{query}"
        r = requests.request(method, url, headers={"Host": "evil.example"}, allow_redirects=False, timeout=5)
        assert r.status_code == 307
        location = r.headers["Location"]
        assert location == f"../{page}?{query}"
        assert "evil" not in location and "//" not in location
        # Followed as a browser does (against the URL it asked for), it reaches the page.
        if method == "GET":
            followed = requests.get(urljoin(url, location), timeout=5)
            assert followed.status_code == 200 and followed.url == f"{base}/{page}?{query}"
    assert subscribers.get(engine, ana.id).status == "active" or method == "POST"
