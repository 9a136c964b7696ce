"""The replay server answers over real sockets, injects faults and honours conditional GETs."""

from __future__ import annotations

import requests

from lupus_alerts.testing.replay import Fault, ReplayServer, Response


def test_serves_body_and_records_requests() -> None:
    with ReplayServer() as srv:
        srv.add("/feed.xml", b"<rss/>", content_type="application/rss+xml")
        r = requests.get(srv.url + "/feed.xml?x=1", timeout=5)
        assert r.status_code == 200 and r.content == b"<rss/>"
        assert srv.requests_to("/feed.xml")[0].query == {"x": ["1"]}
        assert requests.get(srv.url + "/missing", timeout=5).status_code == 404


def test_etag_and_last_modified_give_304() -> None:
    with ReplayServer() as srv:
        srv.add("/f", b"body", etag='"v1"', last_modified=1_700_000_000)
        first = requests.get(srv.url + "/f", timeout=5)
        again = requests.get(srv.url + "/f", headers={"If-None-Match": first.headers["ETag"]}, timeout=5)
        assert again.status_code == 304 and again.content == b""
        by_date = requests.get(
            srv.url + "/f", headers={"If-Modified-Since": first.headers["Last-Modified"]}, timeout=5
        )
        assert by_date.status_code == 304
        changed = requests.get(srv.url + "/f", headers={"If-None-Match": '"v0"'}, timeout=5)
        assert changed.status_code == 200


def test_injected_faults_are_served_then_normal_service_resumes() -> None:
    with ReplayServer() as srv:
        srv.add("/e", b"ok")
        srv.inject("/e", Fault(status=429, retry_after="1"), times=2)
        srv.inject("/e", Fault(status=503))
        codes = [requests.get(srv.url + "/e", timeout=5) for _ in range(4)]
        assert [r.status_code for r in codes] == [429, 429, 503, 200]
        assert codes[0].headers["Retry-After"] == "1"


def test_truncated_body_is_detected_by_the_client() -> None:
    with ReplayServer() as srv:
        srv.add("/big", b"x" * 10_000)
        srv.inject("/big", Fault(truncate_to=100))
        try:
            r = requests.get(srv.url + "/big", timeout=5)
            truncated = len(r.content) < 10_000
        except requests.exceptions.ChunkedEncodingError:
            truncated = True
        assert truncated


def test_stall_longer_than_timeout_times_out() -> None:
    with ReplayServer() as srv:
        srv.add("/slow", b"late")
        srv.inject("/slow", Fault(delay=1.0))
        try:
            requests.get(srv.url + "/slow", timeout=0.2)
            timed_out = False
        except requests.exceptions.Timeout:
            timed_out = True
        assert timed_out


def test_handler_sees_post_form_params() -> None:
    with ReplayServer() as srv:
        srv.route("/efetch.fcgi", lambda req: Response(200, req.params["id"].encode()))
        r = requests.post(srv.url + "/efetch.fcgi", data={"id": "1,2,3"}, timeout=5)
        assert r.text == "1,2,3"
