"""Feed parsing on real and constructed publisher feeds, and the parser's safety limits.

`test_fixture_feed_matches_expected` runs over every feed file in tests/fixtures/feeds and
tests/fixtures/feeds-malformed that has a `<file>.expected.json` beside it (feedparser-style):
adding a regression case is adding two files. The expected JSON lists the counts and, per kept
paper in order, the fields to compare (see docs/feeds.md).
"""

from __future__ import annotations

import json
import time
import tracemalloc
from datetime import date, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lupus_alerts import feeds
from lupus_alerts.config import FeedConfig
from lupus_alerts.feeds import (
    FeedTooLargeError,
    UnsafeFeedError,
    html_to_text,
    parse_author,
    parse_date_text,
    parse_feed_bytes,
    split_authors,
)
from lupus_alerts.models import Paper

FIXTURES = Path(__file__).parent.parent / "fixtures"
SEEN_AT = datetime(2026, 11, 27, 6, 0, 0)
EXPECTED = sorted(
    [*(FIXTURES / "feeds").glob("*.expected.json"), *(FIXTURES / "feeds-malformed").glob("*.expected.json")]
)


def _feed(**kw: object) -> FeedConfig:
    base = {"id": "test-feed", "name": "Test Journal", "publisher": "Test", "url": "https://example.org/rss"}
    return FeedConfig(**{**base, **kw})


def _parse_fixture(name: str, **kw: object) -> feeds.FeedParseResult:
    return parse_feed_bytes((FIXTURES / "feeds" / name).read_bytes(), seen_at=SEEN_AT, **kw)


def _paper_view(p: Paper) -> dict[str, object]:
    return {
        "doi": p.doi,
        "title": p.title,
        "source": p.source,
        "source_key": p.source_key,
        "url": p.url,
        "journal": p.journal,
        "authors": [a.display for a in p.authors],
        "pub_date": p.pub_date.isoformat() if p.pub_date else None,
        "epub_date": p.epub_date.isoformat() if p.epub_date else None,
    }


def test_fixture_folder_has_cases() -> None:
    feed_files = [p for p in (FIXTURES / "feeds").iterdir() if not p.name.endswith(".json")]
    assert len(EXPECTED) >= 15
    missing = [p.name for p in feed_files if not (p.parent / f"{p.name}.expected.json").exists()]
    assert missing == [], "every feed fixture needs an expected-output JSON beside it"


@pytest.mark.parametrize("expected_path", EXPECTED, ids=lambda p: p.name.removesuffix(".expected.json"))
def test_fixture_feed_matches_expected(expected_path: Path) -> None:
    expected = json.loads(expected_path.read_text(encoding="utf-8"))
    data = (expected_path.parent / expected_path.name.removesuffix(".expected.json")).read_bytes()
    feed = FeedConfig(**expected["feed"]) if "feed" in expected else None
    if "refused" in expected:
        with pytest.raises(getattr(feeds, expected["refused"])):
            parse_feed_bytes(data, feed=feed, seen_at=SEEN_AT)
        return
    result = parse_feed_bytes(data, feed=feed, seen_at=SEEN_AT)
    counts = {k: getattr(result, k) for k in ("bozo", "items", "kept", "rejected", "dois")}
    assert counts == {k: expected[k] for k in counts}
    for prefix in expected.get("warnings", []):
        assert any(w.startswith(prefix) for w in result.warnings), (prefix, result.warnings)
    if not expected.get("warnings"):
        assert result.warnings == []
    assert len(result.papers) == len(expected["papers"])
    for paper, want in zip(result.papers, expected["papers"], strict=True):
        view = _paper_view(paper)
        assert {k: view[k] for k in want} == want


# -- one test per publisher format: where the DOI is ------------------------------------------


def test_wiley_atypon_rss2_doi_from_prism_and_guid() -> None:
    r = _parse_fixture("wiley_chembiochem_easy-wiley_reserialized.rss.xml")
    dois = [p.doi for p in r.papers]
    assert dois[:3] == ["10.1002/cbic.202500831", "10.1002/cbic.70394", "10.1002/cbic.70398"]
    assert dois[-1] is None  # the service notice has no DOI and still becomes a paper
    assert r.papers[-1].source_key == "easy-wiley-shutdown-notice2"


def test_elsevier_cellpress_rss1_bare_doi_in_dc_identifier() -> None:
    r = _parse_fixture("elsevier_cellpress_jpeds_rdf_extracted.xml")
    assert [p.doi for p in r.papers] == ["10.1016/j.jpeds.2018.08.009"]


def test_mdpi_rss1_doi_with_space_after_colon() -> None:
    r = _parse_fixture("mdpi_fluids_rdf_zotero_feedArticleMetadata.rss")
    assert [p.doi for p in r.papers] == ["10.3390/fluids9060120"]


def test_biorxiv_rss1_doi_prefix_and_whitespace_wrapped_fields() -> None:
    r = _parse_fixture("biorxiv_rdf_miniflux_whitespace_urls.rdf.xml")
    (p,) = r.papers
    assert p.doi == "10.1101/857789"
    assert p.url == "http://biorxiv.org/cgi/content/short/857789v1?rss=1"
    assert p.title.startswith("Microscale Collagen") and not p.title.endswith(" ")


def test_nature_rss1_prism_doi() -> None:
    r = _parse_fixture("constructed_nature_nrrheum.rdf.xml")
    assert [p.doi for p in r.papers] == ["10.1038/s41584-099-00001-1", "10.1038/s41584-099-00002-2"]
    assert r.papers[0].issns == ["1759-4790", "1759-4804"]


def test_bmj_highwire_info_doi_beside_master_id() -> None:
    # feedparser keeps only the last dc:identifier (the hwp:master-id); the DOI must survive.
    r = _parse_fixture("constructed_bmj_highwire_lupusscimed.rdf.xml")
    assert [p.doi for p in r.papers] == ["10.1136/lupus-2099-001001", "10.1136/lupus-2099-001002"]


def test_plos_atom_info_doi_in_entry_id() -> None:
    r = _parse_fixture("constructed_plos_atom.xml")
    (p,) = r.papers
    assert p.doi == "10.1371/journal.pone.0999001"
    assert p.title == "Complement C4 gene copy number and childhood-onset systemic lupus erythematosus"


def test_sciencedirect_no_doi_metadata_in_description() -> None:
    r = _parse_fixture("constructed_sciencedirect_semarthritisrheum.rss.xml")
    first, second = r.papers
    assert first.doi is None and second.doi is None
    assert first.source_key == "S0049017299000011"
    assert first.url == "https://www.sciencedirect.com/science/article/pii/S0049017299000011"
    assert first.epub_date == date(2025, 11, 18)  # "Available online 18 November 2025"
    assert second.pub_date == date(2026, 2, 1) and second.epub_date is None  # "February 2026"
    assert [a.display for a in first.authors] == ["Rossi M", "Martin JL", "Park HJ"]
    assert first.journal == "Seminars in Arthritis and Rheumatism"
    assert first.abstract == ""  # the description held metadata, not an abstract


def test_sage_atypon_doi_from_doi_abs_link_with_tracking_query() -> None:
    r = _parse_fixture("constructed_sage_lupus.rss.xml")
    assert [p.doi for p in r.papers] == ["10.1177/09612033991000001", "10.1177/09612033991000002"]


def test_springer_doi_from_article_link() -> None:
    r = _parse_fixture("constructed_springer_clinrheum.rss.xml")
    assert [p.doi for p in r.papers] == ["10.1007/s10067-099-07001-1", "10.1007/s10067-099-07002-2"]
    assert "SLE & 80 controls" in r.papers[0].abstract


def test_bmc_doi_from_permalink_guid() -> None:
    r = _parse_fixture("constructed_bmc_arthritisrestherapy.rss.xml")
    assert [p.doi for p in r.papers] == ["10.1186/s13075-099-03001-1"]


def test_frontiers_doi_link_view_suffix_dropped() -> None:
    r = _parse_fixture("constructed_frontiers_immunology.rss.xml")
    assert [p.doi for p in r.papers] == ["10.3389/fimmu.2099.1500001", "10.3389/fimmu.2099.1500002"]


def test_oup_doi_site_article_number_dropped() -> None:
    r = _parse_fixture("constructed_oup_rheumatology.rss.xml")
    assert [p.doi for p in r.papers] == ["10.1093/rheumatology/keaf990"]


# -- DOI order and item fields -----------------------------------------------------------------

_RSS = """<?xml version="1.0" encoding="utf-8"?>
<!-- constructed in the test -->
<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"
     xmlns:prism="http://prismstandard.org/namespaces/basic/2.0/"><channel><title>T</title>
{items}
</channel></rss>"""


def _rss(*items: str) -> bytes:
    return _RSS.format(items="\n".join(f"<item>{i}</item>" for i in items)).encode()


@pytest.mark.parametrize(
    ("item", "doi"),
    [
        (
            "<title>a</title><prism:doi>10.1000/prism</prism:doi><dc:identifier>doi:10.1000/dc</dc:identifier>"
            "<guid>10.1000/guid</guid>",
            "10.1000/prism",
        ),
        (
            "<title>a</title><dc:identifier>DOI: 10.1000/DC</dc:identifier><guid>10.1000/guid</guid>",
            "10.1000/dc",
        ),
        (
            "<title>a</title><guid isPermaLink='false'>10.1000/guid</guid><link>https://x.org/doi/10.1000/link</link>",
            "10.1000/guid",
        ),
        ("<title>a</title><link>https://doi.org/10.1000/ViaDoiOrg</link>", "10.1000/viadoiorg"),
        (
            "<title>a</title><link>https://x.org/p/1</link>"
            "<description>See doi:10.1000/in.text.</description>",
            "10.1000/in.text",
        ),
        (
            "<title>a</title><link>https://x.org/p/1</link>"
            '<description>&lt;a href="https://doi.org/10.1000/href"&gt;full text&lt;/a&gt;</description>',
            "10.1000/href",
        ),
        (
            "<title>a</title><dc:identifier>hwp:master-id:x;1</dc:identifier><link>https://x.org/p/1</link>",
            None,
        ),
    ],
    ids=[
        "prism-first",
        "dc-identifier",
        "guid-before-link",
        "doi-org-link",
        "text-search",
        "href-in-html",
        "none",
    ],
)
def test_doi_found_in_documented_order(item: str, doi: str | None) -> None:
    (paper,) = parse_feed_bytes(_rss(item)).papers
    assert paper.doi == doi


def test_title_and_summary_html_become_safe_text() -> None:
    item = (
        "<title>IL-2 &lt;i&gt;low dose&lt;/i&gt; in SLE &amp;amp; APS</title><link>https://x.org/1</link>"
        "<description>&lt;p&gt;First.&lt;/p&gt;&lt;script&gt;alert(1)&lt;/script&gt;"
        "&lt;p&gt;Second &amp;lt;5%&lt;/p&gt;</description>"
    )
    (p,) = parse_feed_bytes(_rss(item)).papers
    assert p.title == "IL-2 low dose in SLE & APS"
    assert "alert" not in p.abstract and "<" not in p.abstract.replace("<5%", "")
    assert p.abstract == "First.\nSecond <5%"


def test_item_without_dates_falls_back_to_first_seen() -> None:
    (p,) = parse_feed_bytes(_rss("<title>x</title><link>https://x.org/1</link>"), seen_at=SEEN_AT).papers
    assert p.pub_date == SEEN_AT.date() and p.epub_date is None and p.pub_date_text is None
    assert p.fetched_at == SEEN_AT


def test_item_without_guid_or_link_gets_a_stable_key() -> None:
    a = parse_feed_bytes(_rss("<title>Same title</title><pubDate>Mon, 01 Dec 2025 00:00:00 GMT</pubDate>"))
    b = parse_feed_bytes(_rss("<title>Same title</title><pubDate>Mon, 01 Dec 2025 00:00:00 GMT</pubDate>"))
    assert a.papers[0].source_key == b.papers[0].source_key
    assert a.papers[0].source_key.startswith("sha1:")


def test_over_long_guid_becomes_a_bounded_stable_key() -> None:
    item = f"<title>x</title><guid>https://x.org/a?{'q' * 2000}</guid>"
    first, again = parse_feed_bytes(_rss(item)).papers[0], parse_feed_bytes(_rss(item)).papers[0]
    assert first.source_key == again.source_key and len(first.source_key) <= 1024


def test_feed_config_names_source_and_journal() -> None:
    r = _parse_fixture("constructed_sage_lupus.rss.xml", feed=_feed(id="lupus", name="Lupus", all_lupus=True))
    assert {p.source for p in r.papers} == {"feed:lupus"}
    assert {p.journal for p in r.papers} == {"Lupus"}


# -- relevance filter --------------------------------------------------------------------------


def test_relevance_filter_applies_only_to_general_journals() -> None:
    general = _parse_fixture("constructed_frontiers_immunology.rss.xml", feed=_feed(all_lupus=False))
    assert [p.doi for p in general.papers] == ["10.3389/fimmu.2099.1500001"]
    assert general.rejected == 1 and "Canis lupus" in general.rejected_titles[0]
    lupus_journal = _parse_fixture("constructed_frontiers_immunology.rss.xml", feed=_feed(all_lupus=True))
    assert lupus_journal.kept == 2 and lupus_journal.rejected == 0


def test_relevance_filter_rejects_lupus_pernio() -> None:
    r = _parse_fixture("constructed_sciencedirect_semarthritisrheum.rss.xml", feed=_feed())
    assert [p.title for p in r.papers] == [
        "Belimumab persistence in systemic lupus erythematosus: a registry study"
    ]


# -- safety ------------------------------------------------------------------------------------


def _bomb(levels: int = 12, encoding: str = "utf-8") -> bytes:
    decls = ['<!ENTITY e0 "lollollollol">'] + [
        f'<!ENTITY e{i} "{("&e" + str(i - 1) + ";") * 10}">' for i in range(1, levels)
    ]
    doc = (
        f'<?xml version="1.0" encoding="{encoding}"?>\n<!DOCTYPE rss [\n'
        + "\n".join(decls)
        + f'\n]>\n<rss version="2.0"><channel><title>&e{levels - 1};</title></channel></rss>'
    )
    return doc.encode(encoding)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_entity_bomb_refused_quickly_with_bounded_memory(encoding: str) -> None:
    data = _bomb(encoding=encoding)  # 10**11 expansions if anything expanded it
    tracemalloc.start()
    t0 = time.perf_counter()
    with pytest.raises(UnsafeFeedError):
        parse_feed_bytes(data)
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert elapsed < 1.0
    assert peak < 5 * len(data) + 1_000_000


@pytest.mark.parametrize("encoding", ["utf-16-be", "utf-32-le", "utf-7", "cp037"])
def test_entity_bomb_refused_in_encodings_that_are_not_ascii_compatible(encoding: str) -> None:
    data = _bomb(encoding=encoding)
    if encoding == "utf-7":
        # Python's encoder writes "<" directly; an attacker would use the "+ADw-" form.
        data = data.replace(b"<!", b"+ADw-!")
    assert b"<!ENTITY" not in data  # a plain byte scan alone would miss it
    with pytest.raises(UnsafeFeedError):
        parse_feed_bytes(data)


def test_entity_bomb_refused_when_only_http_charset_names_the_encoding() -> None:
    doc = _bomb().decode("utf-8").split("\n", 1)[1]  # no XML declaration
    with pytest.raises(UnsafeFeedError):
        parse_feed_bytes(
            doc.encode("utf-7").replace(b"<!", b"+ADw-!"),
            headers={"Content-Type": "application/xml; charset=UTF-7"},
        )


def test_real_xmlbomb_fixture_refused_under_one_second() -> None:
    data = (FIXTURES / "feeds-malformed" / "xmlbomb.xml").read_bytes()
    t0 = time.perf_counter()
    with pytest.raises(UnsafeFeedError):
        parse_feed_bytes(data)
    assert time.perf_counter() - t0 < 1.0


def test_external_entity_refused() -> None:
    data = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><rss><channel><title>&x;</title></channel></rss>'
    with pytest.raises(UnsafeFeedError):
        parse_feed_bytes(data)


def test_plain_doctype_without_entities_is_accepted() -> None:
    data = (
        b'<?xml version="1.0"?><!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" '
        b'"http://my.netscape.com/publish/formats/rss-0.91.dtd"><rss version="0.91"><channel><title>T</title>'
        b"<item><title>Lupus</title><link>https://x.org/doi/10.1000/a</link></item></channel></rss>"
    )
    assert [p.doi for p in parse_feed_bytes(data).papers] == ["10.1000/a"]


def test_oversized_body_refused_before_parsing() -> None:
    data = _rss("<title>x</title>") + b" " * 5_000
    t0 = time.perf_counter()
    with pytest.raises(FeedTooLargeError):
        parse_feed_bytes(data, max_bytes=4_000)
    assert time.perf_counter() - t0 < 0.1


_LATIN1_DECLARED_UTF8 = (
    "<?xml version='1.0' encoding='utf-8'?>"
    "<rss><channel><item><title>Caf\xe9 SLE</title></item></channel></rss>"
).encode("latin-1")


@pytest.mark.parametrize(
    ("data", "headers"),
    [
        (_rss("<title>Caf\xe9 lupus</title><link>https://x.org/1</link>"), {}),
        (_LATIN1_DECLARED_UTF8, {}),
        (_rss("<title>x</title>"), {"Content-Type": "application/rss+xml; charset=no-such-charset"}),
        (_rss("<title>x</title>"), {"Content-Type": "text/xml; charset=utf-16"}),
        (b"\xff\xfe\x00\x00garbage\x00\x01\x02", {}),
        (bytes(range(256)) * 4, {}),
        (b"", {}),
    ],
    ids=[
        "ok",
        "latin1-declared-utf8",
        "unknown-charset",
        "wrong-charset",
        "utf32-bom-garbage",
        "binary",
        "empty",
    ],
)
def test_wrong_or_missing_encodings_never_crash(data: bytes, headers: dict[str, str]) -> None:
    result = parse_feed_bytes(data, headers=headers)
    assert isinstance(result.papers, list)
    if result.bozo:
        assert result.warnings


def test_latin1_declared_utf8_keeps_the_item() -> None:
    result = parse_feed_bytes(_LATIN1_DECLARED_UTF8)
    assert result.bozo and result.warnings
    assert [p.title for p in result.papers] == ["Café SLE"]


def test_truncated_feed_recovers_leading_items_with_warning() -> None:
    data = (FIXTURES / "feeds" / "wiley_chembiochem_easy-wiley_reserialized.rss.xml").read_bytes()
    cut = data[: data.index(b"10.1002/cbic.70409</guid>")]  # mid-way through the fourth item
    result = parse_feed_bytes(cut)
    assert result.bozo
    assert any(w.startswith("malformed feed") for w in result.warnings)
    assert [p.doi for p in result.papers][:3] == [
        "10.1002/cbic.202500831",
        "10.1002/cbic.70394",
        "10.1002/cbic.70398",
    ]


# -- authors, dates, text ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "names"),
    [
        (
            "\nAntonio Masone, \nEleonora Busani, \nRoberto Chiesa\n",
            ["Antonio Masone", "Eleonora Busani", "Roberto Chiesa"],
        ),
        (
            "Kukla, D., Crampton, A., Wood, D., Khetani, S.",
            ["Kukla, D.", "Crampton, A.", "Wood, D.", "Khetani, S."],
        ),
        ("Wei Li, Anna Kowalska and Tom Jones", ["Wei Li", "Anna Kowalska", "Tom Jones"]),
        ("Smith J; Jones AB; Brown C", ["Smith J", "Jones AB", "Brown C"]),
        ("Ines Duarte, Mark O'Brien & Yuki Sato", ["Ines Duarte", "Mark O'Brien", "Yuki Sato"]),
        ("Garcia, M. L., Dubois, A.-C., et al.", ["Garcia, M. L.", "Dubois, A.-C."]),
        ("Sandra Anderson", ["Sandra Anderson"]),
        ("", []),
    ],
)
def test_split_authors(text: str, names: list[str]) -> None:
    assert split_authors(text) == names


@pytest.mark.parametrize(
    ("name", "last", "fore", "initials"),
    [
        ("Erik van Widenfelt", "van Widenfelt", "Erik", "E"),
        ("Kukla, D.", "Kukla", "D.", "D"),
        ("Paige L. Williams", "Williams", "Paige L.", "PL"),
        ("Smith JA", "Smith", None, "JA"),
        ("Madonna", "Madonna", None, None),
    ],
)
def test_parse_author(name: str, last: str, fore: str | None, initials: str | None) -> None:
    a = parse_author(name)
    assert (a.last_name, a.fore_name, a.initials) == (last, fore, initials)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Mon, 01 Jun 2026 01:11:07 -0700", date(2026, 6, 1)),
        ("2026-06-01T01:11:07-07:00", date(2026, 6, 1)),
        ("2018-12-17-08:00", date(2018, 12, 17)),
        ("Available online 18 November 2025", date(2025, 11, 18)),
        ("Nov 21, 2024", date(2024, 11, 21)),
        ("February 2026", date(2026, 2, 1)),
        ("2025", date(2025, 1, 1)),
        ("Spring", None),
        ("", None),
    ],
)
def test_parse_date_text(text: str, expected: date | None) -> None:
    assert parse_date_text(text) == expected


def test_html_to_text_drops_control_characters_and_collapses_space() -> None:
    assert html_to_text("a\x00b\x07  c&nbsp;&nbsp;d<br/>e") == "ab c d\ne"


def test_response_headers_are_used_whatever_their_case() -> None:
    data = _rss("<title>Lupus</title><link>https://x.org/1</link>")
    for headers in ({"Content-Type": "application/rss+xml; charset=utf-8"}, {"content-type": "text/xml"}):
        assert parse_feed_bytes(data, headers=headers).warnings == []
    wrong = parse_feed_bytes(data, headers={"Content-Type": "text/html"})
    assert wrong.bozo and "NonXMLContentType" in wrong.warnings[0]


_WILEY = (FIXTURES / "feeds" / "wiley_chembiochem_easy-wiley_reserialized.rss.xml").read_bytes()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cut=st.integers(min_value=0, max_value=len(_WILEY)), noise=st.binary(max_size=64))
def test_any_truncation_or_garbage_yields_a_result_never_an_exception(cut: int, noise: bytes) -> None:
    # Malformed input is reported (bozo + warning), never raised; only refusals raise.
    result = parse_feed_bytes(_WILEY[:cut] + noise)
    assert result.items >= len(result.papers)
    assert all(p.title or p.doi for p in result.papers)
    if result.bozo:
        assert result.warnings


# -- publishers' citation lines are not abstracts (issue 14, defect 7) ------------------------


def test_wiley_citation_line_is_not_taken_for_the_abstract_real_sample() -> None:
    # real: each ChemBioChem item's description is only "ChemBioChem, Volume 27, Issue 11, ..."
    res = _parse_fixture("wiley_chembiochem_easy-wiley_reserialized.rss.xml")
    assert res.papers
    for p in res.papers:
        assert not (p.abstract or "").startswith("ChemBioChem,"), p.abstract[:80]


def test_sage_ahead_of_print_line_is_stripped_from_the_abstract() -> None:
    res = _parse_fixture("constructed_sage_lupus.rss.xml")
    abstracts = [p.abstract or "" for p in res.papers]
    assert abstracts and not any("Ahead of Print" in a for a in abstracts)
    assert any(a.startswith("ObjectiveTo study anti-dsDNA") for a in abstracts)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Lupus, Ahead of Print.\nWe describe 42 patients.", "We describe 42 patients."),
        (
            "Arthritis & rheumatology (Hoboken, N.J.), Ahead of Print.\nAmong 310 patients",
            "Among 310 patients",
        ),
        ("Arthritis Care & Research, EarlyView.\nObjective: to", "Objective: to"),
        ("ChemBioChem, Volume 27, Issue 11, 15 June 2026.", ""),
        ("Lupus, Volume 35, Issue 2, Page 123-130, February 2026.\nAbstract here.", "Abstract here."),
        # an abstract's own first sentence stays, even when it mentions a volume or print
        (
            "In Volume 3 of the registry, 40 patients had nephritis.",
            "In Volume 3 of the registry, 40 patients had nephritis.",
        ),
        (
            "Lupus nephritis, ahead of print runs, was studied. More.",
            "Lupus nephritis, ahead of print runs, was studied. More.",
        ),
    ],
)
def test_strip_citation_line(text: str, expected: str) -> None:
    assert feeds.strip_citation_line(text) == expected
