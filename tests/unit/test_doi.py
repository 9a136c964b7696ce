"""DOI normalisation: the forms seen in real feeds, PubMed records and links, and its invariants.

The table's inputs are DOIs as real sources write them (publisher feeds listed in
tests/fixtures/SOURCES.md, PubMed ELocationID/ArticleId, MEDLINE AID lines, doi.org links).
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lupus_alerts.doi import find_doi, normalize_doi

REAL_WORLD_FORMS = [
    # Wiley (Atypon) RSS: guid, dc:identifier, prism:doi and /doi/ links
    ("10.1002/cbic.202300123", "10.1002/cbic.202300123"),
    (
        "https://chemistry-europe.onlinelibrary.wiley.com/doi/10.1002/cbic.202300123?af=R",
        "10.1002/cbic.202300123",
    ),
    ("https://onlinelibrary.wiley.com/doi/abs/10.1002/ART.42000", "10.1002/art.42000"),
    # Wiley SICI: <>;() and balanced parentheses are part of the DOI
    (
        "10.1002/(SICI)1097-0258(19980815/30)17:15/16<1661::AID-SIM968>3.0.CO;2-2",
        "10.1002/(sici)1097-0258(19980815/30)17:15/16<1661::aid-sim968>3.0.co;2-2",
    ),
    (
        "doi:10.1002/(SICI)1097-0258(19980815/30)17:15/16<1661::AID-SIM968>3.0.CO;2-2.",
        "10.1002/(sici)1097-0258(19980815/30)17:15/16<1661::aid-sim968>3.0.co;2-2",
    ),
    # HTML-escaped SICI, as it appears in an XML/HTML attribute
    (
        "10.1002/(SICI)1097-0258(19980815/30)17:15/16&lt;1661::AID-SIM968&gt;3.0.CO;2-2",
        "10.1002/(sici)1097-0258(19980815/30)17:15/16<1661::aid-sim968>3.0.co;2-2",
    ),
    # Elsevier PII-style DOIs with parentheses, bare in dc:identifier
    ("10.1016/S0140-6736(19)32502-1", "10.1016/s0140-6736(19)32502-1"),
    ("(10.1016/S0140-6736(19)32502-1)", "10.1016/s0140-6736(19)32502-1"),
    ("10.1016/S0140-6736(19)32502-1).", "10.1016/s0140-6736(19)32502-1"),
    ("http://dx.doi.org/10.1016/j.jpeds.2016.11.046", "10.1016/j.jpeds.2016.11.046"),
    # Nature: prism:doi and dc:identifier "doi:..."
    ("doi:10.1038/s41584-020-0522-3", "10.1038/s41584-020-0522-3"),
    ("https://www.nature.com/articles/10.1038/s41584-020-0522-3", "10.1038/s41584-020-0522-3"),
    # MDPI: "doi: ..." with a space
    ("doi: 10.3390/fluids3040075", "10.3390/fluids3040075"),
    ("DOI: 10.3390/FLUIDS3040075", "10.3390/fluids3040075"),
    # BMJ (HighWire) dc:identifier, PLOS Atom id
    ("info:doi/10.1136/lupus-2023-001000", "10.1136/lupus-2023-001000"),
    ("info:doi/10.1371/journal.pone.0245474", "10.1371/journal.pone.0245474"),
    ("urn:doi:10.1371/journal.pone.0245474", "10.1371/journal.pone.0245474"),
    # bioRxiv: whitespace and newlines around
    ("\n    doi:10.1101/2020.02.10.942326\n  ", "10.1101/2020.02.10.942326"),
    # MEDLINE AID / LID lines and PubMed ELocationID text
    ("10.1177/0961203320983448 [doi]", "10.1177/0961203320983448"),
    ("10.1177/0961203320983448[DOI]", "10.1177/0961203320983448"),
    # doi.org links, percent-encoded, with trailing sentence punctuation
    ("https://doi.org/10.1002%2Fart.41234", "10.1002/art.41234"),
    ("https://doi.org/10.1002%2fart.41234.", "10.1002/art.41234"),
    ("HTTPS://DOI.ORG/10.1177/0961203320983448", "10.1177/0961203320983448"),
    ("https://doi.org/10.1016%2FS0140-6736%2819%2932502-1", "10.1016/s0140-6736(19)32502-1"),
    ("doi.org/10.1136/ard-2023-224762,", "10.1136/ard-2023-224762"),
    ("<https://doi.org/10.1136/ard-2023-224762>", "10.1136/ard-2023-224762"),
    ("10.1136/ard-2023-224762;", "10.1136/ard-2023-224762"),
    ("\u200b10.1136/ard-2023-224762\u00a0", "10.1136/ard-2023-224762"),
    ("&quot;10.1136/ard-2023-224762&quot;", "10.1136/ard-2023-224762"),
    ("https://doi.org/10.1000/xyz#section-2", "10.1000/xyz"),
    # sub-divided registrant code
    ("10.1000.10/123456", "10.1000.10/123456"),
]

NOT_DOIS = [
    None,
    "",
    "   ",
    "hwp:master-id:lupussci;lupus-2023-001000",
    "https://www.sciencedirect.com/science/article/pii/S0896841123000033",
    "S0140-6736(19)32502-1 [pii]",
    "10.1000",  # a prefix without a suffix
    "10.1000/",
    "10.12/abc",  # registrant codes have at least 4 digits
    "PMC7481234",
    "33397176",
]


@pytest.mark.parametrize(("raw", "expected"), REAL_WORLD_FORMS)
def test_normalize_doi_turns_real_world_forms_into_canonical_lowercase(raw: str, expected: str) -> None:
    assert normalize_doi(raw) == expected


@pytest.mark.parametrize("raw", NOT_DOIS)
def test_normalize_doi_returns_none_when_text_holds_no_doi(raw: str | None) -> None:
    assert normalize_doi(raw) is None


def test_normalize_doi_keeps_parentheses_that_are_balanced_inside_the_doi() -> None:
    assert normalize_doi("10.1016/0006-2952(75)90100-6") == "10.1016/0006-2952(75)90100-6"
    assert normalize_doi("(see 10.1016/0006-2952(75)90100-6)") == "10.1016/0006-2952(75)90100-6"


# -- properties ---------------------------------------------------------------------------

_SUFFIX_ALPHABET = st.sampled_from(list("abcdefghijklmnopqrstuvwxyzABCDEFXYZ0123456789-._;()/:<>[]"))
dois = st.builds(
    lambda reg, suffix: f"10.{reg}/{suffix}",
    st.integers(min_value=1000, max_value=999_999_999),
    st.text(_SUFFIX_ALPHABET, min_size=1, max_size=40),
)
anything = st.one_of(
    dois,
    st.text(max_size=60),
    st.builds(lambda a, d, b: a + d + b, st.text(max_size=10), dois, st.text(max_size=10)),
)


@given(anything)
def test_normalize_doi_is_idempotent(raw: str) -> None:
    once = normalize_doi(raw)
    assert normalize_doi(once) == once


@given(dois)
def test_normalized_doi_is_lowercase_and_starts_with_a_registrant_prefix(raw: str) -> None:
    doi = normalize_doi(raw)
    if doi is not None:
        assert doi == doi.lower()
        assert doi.startswith("10.")
        assert "/" in doi


URL_FORMS = [
    lambda d: f"https://doi.org/{quote(d, safe='')}",
    lambda d: f"https://doi.org/{quote(d, safe='/')}",
    lambda d: f"http://dx.doi.org/{quote(d, safe='/')}",
    lambda d: f"doi:{d}",
    lambda d: f"DOI: {d.upper()}",
    lambda d: f"info:doi/{d}",
    lambda d: f"urn:doi:{d}",
    lambda d: f"  {d} [doi]\n",
    lambda d: f"{d}.",
    lambda d: f"({d})",  # PAREN_FORM
    lambda d: d.replace("<", "&lt;").replace(">", "&gt;"),
]
PAREN_FORM = 9


@given(dois, st.sampled_from(range(len(URL_FORMS))))
def test_normalize_doi_is_stable_through_url_and_prefix_forms(raw: str, form: int) -> None:
    doi = normalize_doi(raw)
    if doi is None:
        return
    if form == PAREN_FORM and doi.count("(") != doi.count(")"):
        return  # "(10.1/a(b)" is ambiguous: whose ")" is it? Only balanced DOIs survive wrapping.
    assert normalize_doi(URL_FORMS[form](doi)) == doi


# -- find_doi -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Published online (doi: 10.1177/0961203320983448).", "10.1177/0961203320983448"),
        (
            '<p>Read <a href="https://doi.org/10.1002%2Fart.41234">the paper</a>.</p>',
            "10.1002/art.41234",
        ),
        (
            "&lt;p&gt;See &lt;a href=&quot;https://onlinelibrary.wiley.com/doi/full/10.1002/acr.25000?af=R&quot;&gt;"
            "here&lt;/a&gt;&lt;/p&gt;",
            "10.1002/acr.25000",
        ),
        ("<p>DOI:10.1136/lupus-2023-001000</p>", "10.1136/lupus-2023-001000"),
        ("Lancet. 2019;394:10.1016/S0140-6736(19)32502-1, and more", "10.1016/s0140-6736(19)32502-1"),
        ("first 10.1000/aaa then 10.1000/bbb", "10.1000/aaa"),
        ("Lupus. 2024;33(2):101-110. No identifier here.", None),
        ("", None),
        (None, None),
    ],
)
def test_find_doi_returns_the_first_doi_in_free_text(text: str | None, expected: str | None) -> None:
    assert find_doi(text) == expected
