"""Polling feeds over real sockets (ReplayServer) into a real store (SQLite and PostgreSQL).

Covers conditional GETs (ETag and Last-Modified round trips), HTTP errors, timeouts, slow
bodies, redirects, the size cap, the User-Agent, and one feed failing while the others succeed.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from factories import make_settings

from lupus_alerts import pipeline, store
from lupus_alerts.config import FeedConfig, Settings
from lupus_alerts.feeds import check_feed, poll_feed, poll_feeds
from lupus_alerts.testing.feeds_replay import feed_etag, make_feed, serve_feed
from lupus_alerts.testing.replay import Fault, Handler, ReplayServer, Request, Response

FIXTURES = Path(__file__).parent.parent / "fixtures" / "feeds"
NOW = datetime(2026, 11, 27, 6, 0, 0)
UA = "lupus-alerts-test/1.0 (mailto:test@example.org)"


class _Scoped:
    """One test's view of the shared server: every path under the test's own prefix."""

    def __init__(self, srv: ReplayServer, prefix: str) -> None:
        self._srv, self._prefix = srv, prefix

    @property
    def url(self) -> str:
        return self._srv.url + self._prefix

    def add(self, path: str, body: bytes, **kw: Any) -> None:
        self._srv.add(self._prefix + path, body, **kw)

    def route(self, path: str, handler: Handler) -> None:
        self._srv.route(self._prefix + path, handler)

    def inject(self, path: str, fault: Fault, times: int = 1) -> None:
        self._srv.inject(self._prefix + path, fault, times)

    def requests_to(self, path: str) -> list[Request]:
        return self._srv.requests_to(self._prefix + path)


@pytest.fixture(scope="module")
def shared_server() -> Iterator[ReplayServer]:
    # One server per module: stopping a ReplayServer waits out its 0.5 s poll interval.
    with ReplayServer() as srv:
        yield srv


@pytest.fixture
def server(shared_server: ReplayServer, request: pytest.FixtureRequest) -> _Scoped:
    return _Scoped(shared_server, "/" + re.sub(r"\W+", "_", request.node.name))


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[sa.Engine]:
    store.upgrade(sqlite_url)
    eng = store.make_engine(sqlite_url)
    yield eng
    eng.dispose()


def _settings(*feeds: FeedConfig, timeout_s: float = 2.0, max_bytes: int = 1_000_000) -> Settings:
    return make_settings(
        feeds=list(feeds),
        feed_settings={"timeout_s": timeout_s, "max_bytes": max_bytes, "concurrency": 4, "user_agent": UA},
    )


def _feed(fid: str, url: str, *, all_lupus: bool = True) -> FeedConfig:
    return FeedConfig(id=fid, name=f"Journal {fid}", publisher="Test", url=url, all_lupus=all_lupus)


def _state(engine: sa.Engine, fid: str) -> dict:
    with engine.connect() as c:
        row = c.execute(sa.select(store.feed_state).where(store.feed_state.c.feed_id == fid)).mappings().one()
    return dict(row)


def _paper_dois(engine: sa.Engine) -> set[str]:
    with engine.connect() as c:
        return {r[0] for r in c.execute(sa.select(store.papers.c.doi)) if r[0]}


def test_etag_round_trip_second_poll_is_304_and_changes_nothing(server: _Scoped, engine: sa.Engine) -> None:
    body = (FIXTURES / "constructed_bmj_highwire_lupusscimed.rdf.xml").read_bytes()
    server.add("/bmj.xml", body, etag=feed_etag(body))
    feed = _feed("lsm", server.url + "/bmj.xml")
    settings = _settings(feed)

    first = poll_feed(settings, engine, feed, now=NOW)
    assert (first.status, first.http_status, first.items, first.dois, first.new) == ("ok", 200, 2, 2, 2)
    assert first.warnings == []  # the response's Content-Type reached feedparser
    assert _paper_dois(engine) == {"10.1136/lupus-2099-001001", "10.1136/lupus-2099-001002"}
    assert _state(engine, "lsm")["etag"] == feed_etag(body)

    second = poll_feed(settings, engine, feed, now=NOW)
    assert second.status == "not_modified" and second.http_status == 304 and second.not_modified
    assert (second.items, second.new, second.updated) == (0, 0, 0)
    requests = server.requests_to("/bmj.xml")
    assert "if-none-match" not in requests[0].headers
    assert requests[1].headers["if-none-match"] == feed_etag(body)
    state = _state(engine, "lsm")
    assert state["last_status"] == 304 and state["consecutive_failures"] == 0
    assert state["items_last"] == 2  # the last full fetch's count survives a 304


def test_last_modified_round_trip(server: _Scoped, sqlite_engine: sa.Engine) -> None:
    body = (FIXTURES / "constructed_sage_lupus.rss.xml").read_bytes()
    server.add("/sage.rss", body, last_modified=1_700_000_000)
    feed = _feed("lupus", server.url + "/sage.rss")
    settings = _settings(feed)
    assert poll_feed(settings, sqlite_engine, feed, now=NOW).status == "ok"
    second = poll_feed(settings, sqlite_engine, feed, now=NOW)
    assert second.status == "not_modified"
    sent = server.requests_to("/sage.rss")[1].headers["if-modified-since"]
    assert sent == "Tue, 14 Nov 2023 22:13:20 GMT"


def test_changed_feed_after_304_is_fetched_again(server: _Scoped, sqlite_engine: sa.Engine) -> None:
    bodies = [make_feed(3, feed_no=1), make_feed(5, feed_no=1)]

    def handler(req: Request) -> Response:
        body = bodies[0] if len(server.requests_to("/f.xml")) <= 2 else bodies[1]
        if req.headers.get("if-none-match") == feed_etag(body):
            return Response(304, b"", {"ETag": feed_etag(body)})
        return Response(200, body, {"ETag": feed_etag(body), "Content-Type": "application/rss+xml"})

    server.route("/f.xml", handler)
    feed = _feed("f", server.url + "/f.xml")
    settings = _settings(feed)
    outcomes = [poll_feed(settings, sqlite_engine, feed, now=NOW) for _ in range(3)]
    assert [o.status for o in outcomes] == ["ok", "not_modified", "ok"]
    assert [o.new for o in outcomes] == [3, 0, 2]


@pytest.mark.parametrize("status", [404, 500, 503])
def test_http_error_is_recorded_not_raised(server: _Scoped, sqlite_engine: sa.Engine, status: int) -> None:
    server.add("/broken.xml", b"x", status=status, content_type="text/plain")
    feed = _feed("broken", server.url + "/broken.xml")
    settings = _settings(feed)
    out1 = poll_feed(settings, sqlite_engine, feed, now=NOW)
    out2 = poll_feed(settings, sqlite_engine, feed, now=NOW)
    assert out1.status == out2.status == "error"
    assert out1.http_status == status and out1.error == f"HTTP {status}"
    state = _state(sqlite_engine, "broken")
    assert state["consecutive_failures"] == 2 and state["last_error"] == f"HTTP {status}"
    assert state["last_success_at"] is None and state["etag"] is None


def test_failures_reset_after_success_and_validators_kept_on_failure(
    server: _Scoped, sqlite_engine: sa.Engine
) -> None:
    body = make_feed(2)
    serve_feed(server, "/f.xml", body)
    feed = _feed("f", server.url + "/f.xml")
    settings = _settings(feed)
    assert poll_feed(settings, sqlite_engine, feed, now=NOW).status == "ok"
    server.inject("/f.xml", Fault(status=502), times=2)
    assert poll_feed(settings, sqlite_engine, feed, now=NOW).status == "error"
    assert poll_feed(settings, sqlite_engine, feed, now=NOW).status == "error"
    state = _state(sqlite_engine, "f")
    assert state["consecutive_failures"] == 2 and state["etag"] == feed_etag(body)
    assert poll_feed(settings, sqlite_engine, feed, now=NOW).status == "not_modified"
    assert _state(sqlite_engine, "f")["consecutive_failures"] == 0


def test_stalled_server_times_out_quickly(server: _Scoped, sqlite_engine: sa.Engine) -> None:
    serve_feed(server, "/slow.xml", make_feed(2))
    server.inject("/slow.xml", Fault(delay=3.0))
    feed = _feed("slow", server.url + "/slow.xml")
    t0 = time.monotonic()
    out = poll_feed(_settings(feed, timeout_s=0.5), sqlite_engine, feed, now=NOW)
    assert time.monotonic() - t0 < 2.0
    assert out.status == "error" and out.error.startswith("timed out")
    assert out.http_status is None


def test_slow_dripping_body_hits_total_deadline(server: _Scoped, sqlite_engine: sa.Engine) -> None:
    # Each chunk arrives well inside the per-read timeout, but the whole body takes ~2 s.
    serve_feed(server, "/drip.xml", make_feed(20), chunk_delay=0.2)
    feed = _feed("drip", server.url + "/drip.xml")
    t0 = time.monotonic()
    out = poll_feed(_settings(feed, timeout_s=0.7), sqlite_engine, feed, now=NOW)
    assert time.monotonic() - t0 < 1.5
    assert out.status == "error" and "timed out" in out.error


def test_slow_body_within_deadline_succeeds(server: _Scoped, sqlite_engine: sa.Engine) -> None:
    serve_feed(server, "/drip.xml", make_feed(4), chunk_delay=0.02)
    feed = _feed("drip", server.url + "/drip.xml")
    out = poll_feed(_settings(feed, timeout_s=2.0), sqlite_engine, feed, now=NOW)
    assert out.status == "ok" and out.items == 4


def test_redirect_followed_and_recorded(server: _Scoped, sqlite_engine: sa.Engine) -> None:
    serve_feed(server, "/new.xml", make_feed(2))
    server.route("/old.xml", lambda req: Response(301, b"", {"Location": server.url + "/new.xml"}))
    feed = _feed("moved", server.url + "/old.xml")
    out = poll_feed(_settings(feed), sqlite_engine, feed, now=NOW)
    assert out.status == "ok" and out.items == 2
    assert out.final_url == server.url + "/new.xml"
    assert any("moved permanently (301)" in w for w in out.warnings)
    state = _state(sqlite_engine, "moved")
    assert state["url"] == server.url + "/old.xml" and state["final_url"] == server.url + "/new.xml"
    assert "moved permanently" in state["last_warning"]


def test_size_cap_refuses_declared_and_streamed_bodies(server: _Scoped, sqlite_engine: sa.Engine) -> None:
    big = make_feed(60)
    assert len(big) > 20_000
    serve_feed(server, "/big.xml", big)
    feed = _feed("big", server.url + "/big.xml")
    out = poll_feed(_settings(feed, max_bytes=20_000), sqlite_engine, feed, now=NOW)
    assert out.status == "error" and "cap" in out.error

    # A chunked response without Content-Length is cut off while streaming.
    def chunked(req: Request) -> Response:
        return Response(200, big, {"Content-Type": "application/rss+xml"})

    server.route("/chunked.xml", chunked)
    feed2 = _feed("chunked", server.url + "/chunked.xml")
    out2 = poll_feed(_settings(feed2, max_bytes=20_000), sqlite_engine, feed2, now=NOW)
    assert out2.status == "error" and "cap" in out2.error


def test_unsafe_and_unreadable_bodies_are_errors(server: _Scoped, sqlite_engine: sa.Engine) -> None:
    bomb = (Path(__file__).parent.parent / "fixtures" / "feeds-malformed" / "xmlbomb.xml").read_bytes()
    server.add("/bomb.xml", bomb)
    server.add("/html.xml", b"<html><body>Maintenance</body></html", content_type="text/html")
    settings = _settings()
    bomb_out = poll_feed(settings, sqlite_engine, _feed("bomb", server.url + "/bomb.xml"), now=NOW)
    assert bomb_out.status == "error" and "entit" in bomb_out.error
    html_out = poll_feed(settings, sqlite_engine, _feed("html", server.url + "/html.xml"), now=NOW)
    assert html_out.status == "error" and html_out.error.startswith("not a readable feed")


def test_user_agent_and_accept_headers_sent(server: _Scoped, sqlite_engine: sa.Engine) -> None:
    serve_feed(server, "/f.xml", make_feed(1))
    feed = _feed("f", server.url + "/f.xml")
    poll_feed(_settings(feed), sqlite_engine, feed, now=NOW)
    (req,) = server.requests_to("/f.xml")
    assert req.headers["user-agent"] == UA
    assert "application/rss+xml" in req.headers["accept"]


def test_one_feed_down_while_others_succeed(server: _Scoped, engine: sa.Engine) -> None:
    good = [_feed(f"good{i}", serve_feed(server, f"/good{i}.xml", make_feed(3, feed_no=i))) for i in range(3)]
    server.inject("/down.xml", Fault(status=500), times=5)
    down = _feed("down", server.url + "/down.xml")
    stalled = _feed("stalled", serve_feed(server, "/stalled.xml", make_feed(3, feed_no=9)))
    server.inject("/stalled.xml", Fault(delay=2.0))
    feeds = [good[0], down, good[1], stalled, good[2]]
    settings = _settings(*feeds, timeout_s=0.5)

    outcomes = poll_feeds(settings, engine, now=NOW)
    assert [o.feed_id for o in outcomes] == ["good0", "down", "good1", "stalled", "good2"]
    assert [o.status for o in outcomes] == ["ok", "error", "ok", "error", "ok"]
    assert len(_paper_dois(engine)) == 9
    health = {row["feed_id"]: row for row in pipeline.feed_health(engine, settings)}
    assert set(health) == {f.id for f in feeds}
    assert health["down"]["failed_polls_in_a_row"] == 1 and health["down"]["last_error"] == "HTTP 500"
    assert health["good1"]["last_success_at"] == pipeline.utc_text(NOW) and health["good1"]["dois_last"] == 3


def test_relevance_filter_applied_when_polling_general_journal(
    server: _Scoped, sqlite_engine: sa.Engine
) -> None:
    serve_feed(server, "/gen.xml", make_feed(10))
    feed = _feed("gen", server.url + "/gen.xml", all_lupus=False)
    out = poll_feed(_settings(feed), sqlite_engine, feed, now=NOW)
    assert (out.items, out.kept, out.rejected, out.new) == (10, 5, 5, 5)


def test_check_feed_does_not_touch_store_or_send_validators(
    server: _Scoped, sqlite_engine: sa.Engine
) -> None:
    body = make_feed(2)
    serve_feed(server, "/f.xml", body)
    feed = _feed("f", server.url + "/f.xml")
    settings = _settings(feed)
    poll_feed(settings, sqlite_engine, feed, now=NOW)
    out = check_feed(settings, feed)
    assert out.status == "ok" and out.http_status == 200 and out.items == 2
    assert out.last_modified is not None and out.etag == feed_etag(body)
    assert "if-none-match" not in server.requests_to("/f.xml")[-1].headers


def test_changed_url_drops_old_validators(server: _Scoped, sqlite_engine: sa.Engine) -> None:
    body = make_feed(2)
    serve_feed(server, "/a.xml", body)
    serve_feed(server, "/b.xml", body)
    settings = _settings()
    poll_feed(settings, sqlite_engine, _feed("f", server.url + "/a.xml"), now=NOW)
    out = poll_feed(settings, sqlite_engine, _feed("f", server.url + "/b.xml"), now=NOW)
    assert out.status == "ok" and out.http_status == 200
    assert "if-none-match" not in server.requests_to("/b.xml")[0].headers


def test_body_cut_off_mid_transfer_is_an_error_and_keeps_old_validators(
    server: _Scoped, sqlite_engine: sa.Engine
) -> None:
    body = make_feed(10)
    serve_feed(server, "/f.xml", body)
    feed = _feed("f", server.url + "/f.xml")
    server.inject("/f.xml", Fault(truncate_to=len(body) // 2))
    out = poll_feed(_settings(feed), sqlite_engine, feed, now=NOW)
    assert out.status == "error" and "not received in full" in out.error
    state = _state(sqlite_engine, "f")
    assert state["etag"] is None and state["consecutive_failures"] == 1
    assert poll_feed(_settings(feed), sqlite_engine, feed, now=NOW).items == 10


def test_poll_feeds_never_exceeds_the_concurrency_bound(server: _Scoped, sqlite_engine: sa.Engine) -> None:
    body = make_feed(1)
    in_flight = {"now": 0, "max": 0}
    lock = threading.Lock()

    def slow(req: Request) -> Response:
        with lock:
            in_flight["now"] += 1
            in_flight["max"] = max(in_flight["max"], in_flight["now"])
        time.sleep(0.15)
        with lock:
            in_flight["now"] -= 1
        return Response(200, body, {"Content-Type": "application/rss+xml"})

    feeds = []
    for i in range(6):
        server.route(f"/f{i}.xml", slow)
        feeds.append(_feed(f"f{i}", f"{server.url}/f{i}.xml"))
    outcomes = poll_feeds(_settings(*feeds), sqlite_engine, concurrency=2, now=NOW)
    assert [o.status for o in outcomes] == ["ok"] * 6
    assert in_flight["max"] == 2
