"""XXE: no parser in the ingest reads a file or fetches a URL that a document names.

Each document below names a local file (through an external entity) or an external DTD on a
replay server that records every request; the tests check that the file's content never shows
up in what was parsed, and that the server saw no request. PubMed's EFetch files declare a
remote DTD on every download (tests/fixtures/pubmed), so "never fetch a DTD" is not academic.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lupus_alerts.eutils import EutilsResponseError, parse_esearch
from lupus_alerts.feeds import UnsafeFeedError, parse_feed_bytes
from lupus_alerts.models import Paper
from lupus_alerts.pubmed import parse_pubmed
from lupus_alerts.testing.replay import ReplayServer

SECRET = "xxe-canary-7f3a9c"


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    p = tmp_path / "secret.txt"
    p.write_text(SECRET)
    return p


@pytest.fixture
def dtd_server() -> ReplayServer:
    with ReplayServer() as server:
        server.add("/evil.dtd", f'<!ENTITY leak "{SECRET}">'.encode(), content_type="application/xml-dtd")
        yield server


def _pubmed(doctype: str, title: str) -> bytes:
    return (
        f'<?xml version="1.0"?>{doctype}<PubmedArticleSet><PubmedArticle><MedlineCitation>'
        f'<PMID Version="1">1</PMID><Article><ArticleTitle>{title}</ArticleTitle></Article>'
        "</MedlineCitation></PubmedArticle></PubmedArticleSet>"
    ).encode()


def test_pubmed_parser_never_reads_an_external_entity(secret_file: Path) -> None:
    data = _pubmed(f'<!DOCTYPE PubmedArticleSet [<!ENTITY x SYSTEM "{secret_file.as_uri()}">]>', "T &x;")
    items = list(parse_pubmed(data))
    assert SECRET not in repr(items)
    assert any(isinstance(i, Paper) for i in items)


def test_pubmed_parser_never_fetches_the_dtd_it_names(dtd_server: ReplayServer) -> None:
    data = _pubmed(f'<!DOCTYPE PubmedArticleSet SYSTEM "{dtd_server.url}/evil.dtd">', "T &leak;")
    items = list(parse_pubmed(data))
    assert SECRET not in repr(items)
    assert dtd_server.requests == []


def test_esearch_xml_never_reads_an_external_entity(secret_file: Path, dtd_server: ReplayServer) -> None:
    for doctype, ref in (
        (f'<!DOCTYPE eSearchResult [<!ENTITY x SYSTEM "{secret_file.as_uri()}">]>', "&x;"),
        (f'<!DOCTYPE eSearchResult SYSTEM "{dtd_server.url}/evil.dtd">', "&leak;"),
    ):
        body = f'<?xml version="1.0"?>{doctype}<eSearchResult><Count>1</Count><ERROR>{ref}</ERROR>'
        body += "</eSearchResult>"
        try:
            seen = repr(parse_esearch(body.encode()))
        except EutilsResponseError as e:
            seen = str(e)
        assert SECRET not in seen
    assert dtd_server.requests == []


def test_feeds_refuse_external_entities_and_never_fetch_a_dtd(
    secret_file: Path, dtd_server: ReplayServer
) -> None:
    item = "<item><title>Lupus &x;</title><link>https://x.org/1</link></item>"
    with pytest.raises(UnsafeFeedError):
        parse_feed_bytes(
            f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY x SYSTEM "{secret_file.as_uri()}">]>'
            f'<rss version="2.0"><channel><title>T</title>{item}</channel></rss>'.encode()
        )
    # An external DTD is not an entity declaration: the feed is read, the DTD is never fetched.
    result = parse_feed_bytes(
        f'<?xml version="1.0"?><!DOCTYPE rss SYSTEM "{dtd_server.url}/evil.dtd">'
        f'<rss version="2.0"><channel><title>T</title>{item.replace("&x;", "&leak;")}</channel>'
        "</rss>".encode()
    )
    assert SECRET not in repr(result)
    assert dtd_server.requests == []
