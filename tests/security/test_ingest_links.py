"""Links are http(s) only at ingest: a feed's `javascript:`, `data:` or `file:` link is dropped
when the item is parsed (the digest never made one clickable, but the next consumer of the
store, an Atom feed or an API, might trust it), and the item keeps its DOI.
"""

from __future__ import annotations

import json
from datetime import datetime

import pytest
import sqlalchemy as sa

from lupus_alerts import store
from lupus_alerts.dedupe import upsert_papers
from lupus_alerts.feeds import parse_feed_bytes
from lupus_alerts.pubmed import parse_pubmed_bytes

SEEN_AT = datetime(2026, 11, 27, 6, 0)
DC = "http://purl.org/dc/elements/1.1/"

UNSAFE = [
    "javascript:alert(3)",
    "JavaScript:alert(document.domain)",
    "  javascript:alert(1)",
    "java\tscript:alert(1)",
    "java&#x0A;script:alert(1)",  # a newline inside the scheme, as an XML character reference
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "vbscript:msgbox(1)",
    "file:///etc/passwd",
    "ftp://example.org/paper.pdf",
    "mailto:editor@example.org",
    "//evil.example/doi/10.1000/x",  # scheme-relative: whose scheme?
    "/doi/10.1000/x",  # relative: to what?
    "https:/missing-host",
    "http://",
]
SAFE = [
    ("https://example.org/doi/10.1000/a", "https://example.org/doi/10.1000/a"),
    ("HTTP://Example.org/a?x=1", "HTTP://Example.org/a?x=1"),
    ("  https://example.org/a  ", "https://example.org/a"),
]


def _rss_item(link: str, *, guid: str | None = None) -> bytes:
    g = f'<guid isPermaLink="false">{guid}</guid>' if guid else ""
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0" xmlns:dc="{DC}"><channel><title>T</title>'
        f"<item><title>Lupus nephritis outcomes</title><link>{link}</link>{g}"
        f"<dc:identifier>doi:10.1000/kept.1</dc:identifier></item></channel></rss>"
    ).encode()


@pytest.mark.parametrize("link", UNSAFE)
def test_non_http_links_are_dropped_and_the_doi_is_kept(link: str) -> None:
    (paper,) = parse_feed_bytes(_rss_item(link), seen_at=SEEN_AT).papers
    assert paper.url is None
    assert paper.doi == "10.1000/kept.1"
    # Without a guid, the key falls back to a hash, not to the dropped link.
    assert paper.source_key.startswith("sha1:")


@pytest.mark.parametrize(("link", "kept"), SAFE)
def test_http_and_https_links_are_kept(link: str, kept: str) -> None:
    (paper,) = parse_feed_bytes(_rss_item(link), seen_at=SEEN_AT).papers
    assert paper.url == kept


def test_a_javascript_guid_is_neither_url_nor_key_material_for_a_link() -> None:
    (paper,) = parse_feed_bytes(
        _rss_item("javascript:alert(3)", guid="javascript:alert(4)"), seen_at=SEEN_AT
    ).papers
    assert paper.url is None and paper.doi == "10.1000/kept.1"


@pytest.mark.parametrize("href", ["javascript:alert(1)", "data:text/html,<script>alert(1)</script>"])
def test_atom_alternate_link_of_another_scheme_is_dropped(href: str) -> None:
    from xml.sax.saxutils import quoteattr

    data = (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>T</title>'
        "<id>tag:example.org,2024:f</id><entry><title>Lupus and pregnancy</title>"
        "<id>info:doi/10.1371/journal.pone.0999001</id>"
        f'<link rel="alternate" href={quoteattr(href)}/>'
        "<updated>2024-12-03T10:00:00Z</updated></entry></feed>"
    ).encode()
    (paper,) = parse_feed_bytes(data, seen_at=SEEN_AT).papers
    assert paper.url is None and paper.doi == "10.1371/journal.pone.0999001"


@pytest.mark.parametrize("link", UNSAFE)
def test_safe_link_accepts_only_absolute_http_urls(link: str) -> None:
    from lupus_alerts.feeds import safe_link

    assert safe_link(link.replace("&#x0A;", "\n")) is None


def test_nothing_stored_carries_a_script_link(engine: sa.Engine) -> None:
    data = b"".join(
        [
            f'<?xml version="1.0"?><rss version="2.0" xmlns:dc="{DC}"><channel><title>T</title>'.encode(),
            *(
                f"<item><title>Lupus item {i}</title><link>{link}</link>"
                f"<dc:identifier>doi:10.1000/kept.{i}</dc:identifier></item>".encode()
                for i, link in enumerate(UNSAFE)
            ),
            b"</channel></rss>",
        ]
    )
    papers = parse_feed_bytes(data, seen_at=SEEN_AT).papers
    assert len(papers) == len(UNSAFE)
    upsert_papers(engine, papers, now=SEEN_AT)
    with engine.connect() as conn:
        stored = [
            *conn.execute(sa.select(store.papers.c.record)),
            *conn.execute(sa.select(store.paper_sources)),
        ]
    text = json.dumps([repr(tuple(r)) for r in stored]).lower()
    for scheme in ("javascript:", "data:", "vbscript:", "file:", "ftp:", "mailto:"):
        assert scheme not in text
    assert text.count("10.1000/kept.") >= len(UNSAFE)


PUBMED_RECORD = """<PubmedArticleSet><PubmedArticle><MedlineCitation><PMID Version="1">{pmid}</PMID>
<Article><ArticleTitle>Lupus nephritis.</ArticleTitle></Article></MedlineCitation></PubmedArticle>
</PubmedArticleSet>"""


@pytest.mark.parametrize("pmid", ["javascript:alert(1)", "123/../../x", "12 34", "١٢٣"])
def test_a_pubmed_record_whose_pmid_is_not_a_number_is_reported_not_linked(pmid: str) -> None:
    papers, _deleted, problems = parse_pubmed_bytes(PUBMED_RECORD.format(pmid=pmid).encode())
    assert papers == []
    assert [p.reason for p in problems] == [f"PubmedParseError: PMID {pmid!r} is not a number"]


def test_pubmed_links_are_built_from_numeric_pmids() -> None:
    (paper,), _deleted, _problems = parse_pubmed_bytes(PUBMED_RECORD.format(pmid="33397176").encode())
    assert paper.url == "https://pubmed.ncbi.nlm.nih.gov/33397176/"
