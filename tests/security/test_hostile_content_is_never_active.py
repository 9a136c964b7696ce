"""Holding defences: what arrives in a record or a name is shown as text, never run or linked.

Titles, journal names, authors, DOIs and a subscriber's name reach the received digest and the
web's paper list escaped; a `javascript:`, `data:` or `vbscript:` link (however it is spelt) is
never made clickable; every link is http(s) (or the unsubscribe mailto). The papers are
CONSTRUCTED here, written through the real tables; the digest is sent over SMTP and read back.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Unpack

import lxml.html
import requests
import sqlalchemy as sa
from factories import NOW, PaperFields, insert_announced
from smtp_sink import SmtpSink, text_part
from webapp import app_for, send_digests, serve, settings_for

from lupus_alerts import store, subscribers
from lupus_alerts.models import Author, Classification, Paper, TopicLabel

PAYLOAD = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
BAD_URLS = [
    "javascript:alert(1)",
    " JaVaScRiPt:alert(1)",
    "java\tscript:alert(1)",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "vbscript:msgbox(1)",
    "//evil.example/x",
    'http://x.example/" onmouseover="alert(3)',
]


def _paper(n: int, **kw: Unpack[PaperFields]) -> Paper:
    fields: PaperFields = {
        "source": "feed:constructed",
        "source_key": f"item-{n}",
        "title": f"Title {n} {PAYLOAD}",
        "journal": f"Journal {PAYLOAD}",
        "authors": [Author(last_name=PAYLOAD, initials="X")],
        "abstract": f"Background {PAYLOAD}. Second sentence.",
        "pub_date": date(2026, 11, 20),
        "classification": Classification(
            is_lupus=True,
            relevance_score=0.9,
            relevance_evidence=[PAYLOAD],
            topics=[TopicLabel("nephrology", 0.9, [PAYLOAD])],
        ),
    }
    return Paper(**(fields | kw))


def _seed(engine: sa.Engine) -> int:
    papers = [_paper(i, url=url) for i, url in enumerate(BAD_URLS)]
    papers.append(_paper(len(BAD_URLS), doi='10.1000/a"b<c>' + PAYLOAD))
    papers.append(_paper(len(BAD_URLS) + 1, url="https://journal.example/ok"))
    with engine.begin() as conn:
        nums = store.next_numbers(conn, "announce", len(papers))
        for no, p in zip(nums, papers, strict=True):
            insert_announced(conn, p, announce_no=no, now=NOW)
    return nums[-1]


def _assert_inert(html: str, where: str) -> list[str]:
    doc = lxml.html.document_fromstring(html)
    assert doc.xpath("//script|//img|//iframe|//object|//embed") == [], where
    handlers = [a for el in doc.iter() for a in getattr(el, "attrib", {}) if a.lower().startswith("on")]
    assert handlers == [], where
    hrefs = [el.get("href") for el in doc.xpath("//*[@href]")]
    for href in hrefs:
        assert href.startswith(("https://", "http://", "mailto:", "papers?")), (where, href)
    # a quote in an http link stays inside its attribute: no handler attribute came of it
    assert 'http://x.example/" onmouseover="alert(3)' in hrefs, where
    return hrefs


def test_hostile_records_and_names_are_inert_in_the_received_digest(
    engine: sa.Engine, tmp_path: Path
) -> None:
    _seed(engine)
    subscribers.add(engine, email="ana@example.org", name=PAYLOAD, from_beginning=True)
    with SmtpSink() as sink:
        assert send_digests(engine, settings_for(tmp_path), sink).sent == 1
        [got] = sink.handler.messages
    html = text_part(got.message, "html")
    hrefs = _assert_inert(html, "digest")
    assert "https://journal.example/ok" in hrefs  # a good link is still a link
    assert (
        "https://doi.org/10.1000/a%22b%3Cc%3E%3Cscript%3Ealert(1)%3C/script%3E%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert(2)%3E"
        in hrefs
    )
    titles = [a.text_content() for a in lxml.html.document_fromstring(html).xpath("//a[@class='t']")]
    assert len(titles) == 3  # the DOI and the two http(s) URLs: the other six left their titles unlinked
    text = text_part(got.message, "plain")
    assert f"Title 0 {PAYLOAD}" in text  # the text part shows the title as it is
    for bad in ("javascript:", "JaVaScRiPt:", "data:text", "vbscript:"):
        assert bad not in html and bad not in text
    # the subscriber's name, as text in the header and the greeting
    assert got.message["To"].addresses[0].display_name == PAYLOAD


def test_hostile_records_are_inert_on_the_web_paper_list(engine: sa.Engine, tmp_path: Path) -> None:
    last = _seed(engine)
    with serve(app_for(engine, settings_for(tmp_path))) as base:
        r = requests.get(f"{base}/papers?from=0&to={last}", timeout=5)
    assert r.status_code == 200
    hrefs = _assert_inert(r.text, "/papers")
    assert "https://journal.example/ok" in hrefs
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in r.text
    for bad in ("javascript:", "JaVaScRiPt:", "data:text", "vbscript:"):
        assert bad not in r.text
