"""Every response of the web app carries the security headers, with these exact values.

The expected values are written out here, not read from the module: a change to the app's
constant must show up as a failing test. Token pages are never cached; the public paper list
may be, for five minutes; error pages (400, 404, 405, 410, 422, 500/503) carry them too.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
import sqlalchemy as sa
from factories import add_papers
from webapp import app_for, serve, settings_for

from lupus_alerts import subscribers, tokens

EXPECTED = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
}
PUBLIC = {**EXPECTED, "Cache-Control": "public, max-age=300"}


def _check(r: requests.Response, expected: dict[str, str], what: str) -> None:
    for header, value in expected.items():
        assert r.headers.get(header) == value, (what, r.status_code, header, r.headers.get(header))


def test_every_response_carries_the_security_headers(engine: sa.Engine, tmp_path: Path) -> None:
    ana = subscribers.add(engine, email="ana@example.org", topics=["nephrology"])
    [no] = add_papers(engine, [["nephrology"]])
    today = datetime.now(UTC).date()
    unsub = tokens.make_token(ana.link_key, "unsubscribe", issued=today)
    prefs = tokens.make_token(ana.link_key, "preferences", issued=today)
    old = tokens.make_token(ana.link_key, "preferences", issued=today - timedelta(days=400))
    gone = tokens.make_token(tokens.new_link_key(), "unsubscribe", issued=today)
    cases = [
        ("GET", f"/unsubscribe?token={unsub}", None, 200, EXPECTED),
        ("HEAD", f"/unsubscribe?token={unsub}", None, 200, EXPECTED),
        ("GET", f"/preferences?token={prefs}", None, 200, EXPECTED),
        ("POST", f"/preferences?token={prefs}", {"topics": ["kidneys"]}, 422, EXPECTED),
        ("GET", f"/preferences?token={old}", None, 410, EXPECTED),
        ("GET", "/unsubscribe?token=garbage", None, 400, EXPECTED),
        ("GET", f"/unsubscribe?token={gone}", None, 404, EXPECTED),
        ("GET", f"/papers?from=0&to={no}", None, 200, PUBLIC),
        ("HEAD", f"/papers?from=0&to={no}", None, 200, PUBLIC),
        ("GET", "/papers?from=x", None, 400, EXPECTED),
        ("GET", "/no-such-page", None, 404, EXPECTED),
        ("GET", f"/email-link?token={unsub}", None, 405, EXPECTED),
        ("GET", f"/unsubscribe/?token={unsub}", None, 307, EXPECTED),
        ("GET", "/healthz", None, 200, EXPECTED),
        ("GET", "/livez", None, 200, EXPECTED),
        ("POST", f"/unsubscribe?token={unsub}", {"List-Unsubscribe": "One-Click"}, 200, EXPECTED),
    ]
    with serve(app_for(engine, settings_for(tmp_path))) as base:
        for method, path, data, status, expected in cases:
            r = requests.request(method, base + path, data=data, allow_redirects=False, timeout=5)
            assert r.status_code == status, (method, path, r.status_code)
            _check(r, expected, f"{method} {path}")
        # A server fault (here: the store lost a table) is a page with the headers, not a bare 500.
        with engine.begin() as c:
            c.execute(sa.text("DROP TABLE paper_topics"))
            c.execute(sa.text("DROP TABLE paper_updates"))
            c.execute(sa.text("DROP TABLE paper_sources"))
            c.execute(sa.text("DROP TABLE papers"))
        r = requests.get(f"{base}/papers?from=0&to={no}", timeout=5)
        assert r.status_code in (500, 503) and "<!DOCTYPE html>" in r.text
        body = r.text.split("<body>", 1)[1].lower()
        assert "papers" not in body and "select" not in body and "table" not in body  # no SQL leaks
        _check(r, EXPECTED, "a server fault")
