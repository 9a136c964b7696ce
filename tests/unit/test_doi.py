"""DOI normalisation: the forms seen in real feeds, PubMed records and links, and its invariants.

The table's inputs are DOIs as real sources write them (publisher feeds listed in
tests/fixtures/SOURCES.md, PubMed ELocationID/ArticleId, MEDLINE AID lines, doi.org links).
"""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from hypothesis import assume, given
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
    # a link whose query or fragment holds a second "?" or "#" (a tracking redirect)
    ("https://doi.org/10.1000/xyz?utm=1&next=https://x.org/?a=b", "10.1000/xyz"),
    ("https://doi.org/10.1000/xyz#s2#figure-1", "10.1000/xyz"),
    # words after the DOI in the same field
    ("doi: 10.1136/ard-2023-224762 (epub ahead of print)", "10.1136/ard-2023-224762"),
    # invisible characters inside the DOI (soft hyphen, zero-width space from copy and paste)
    ("10.1136/ard\u00ad-2023-224762", "10.1136/ard-2023-224762"),
    ("10.1136/ard-2023\u200b-224762", "10.1136/ard-2023-224762"),
    # escaped twice: an HTML description escaped once more, a link passed on as a parameter
    (
        "10.1002/(SICI)1097-0258(19980815/30)17:15/16&amp;lt;1661::AID-SIM968&amp;gt;3.0.CO;2-2",
        "10.1002/(sici)1097-0258(19980815/30)17:15/16<1661::aid-sim968>3.0.co;2-2",
    ),
    ("https://doi.org/10.1016/S0140-6736%252819%252932502-1", "10.1016/s0140-6736(19)32502-1"),
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
    "10.1000/\x1b",  # a control character is not part of a DOI name
    "10.1000/abc\x00def",
]


@pytest.mark.parametrize(("raw", "expected"), REAL_WORLD_FORMS)
def test_normalize_doi_turns_real_world_forms_into_canonical_lowercase(raw: str, expected: str) -> None:
    assert normalize_doi(raw) == expected


def _percent_layers(layers: int) -> str:
    """ "10.1000/x" + "A" percent-encoded `layers` times ("%41", "%2541", "%252541", ...)."""
    return "10.1000/x%" + "25" * (layers - 1) + "41"


@pytest.mark.parametrize("layers", [1, 2, 7, 8])
def test_up_to_eight_layers_of_encoding_are_undone(layers: int) -> None:
    assert normalize_doi(_percent_layers(layers)) == "10.1000/xa"


@pytest.mark.parametrize("layers", [9, 10, 500])
def test_a_doi_under_more_layers_is_not_one_and_costs_bounded_work(layers: int) -> None:
    # Returning a half-decoded string would break idempotence (the next call decodes more).
    assert normalize_doi(_percent_layers(layers)) is None


@pytest.mark.parametrize("raw", NOT_DOIS)
def test_normalize_doi_returns_none_when_text_holds_no_doi(raw: str | None) -> None:
    assert normalize_doi(raw) is None


# Closing brackets at the end: kept when the DOI opens them itself, cut when they belong to
# the sentence around it. Expected values written by hand from that rule (docs/dedupe.md), not
# computed; the DOIs are CONSTRUCTED under the example prefix 10.1000 except where named.
BRACKETS_AT_THE_END = [
    ("10.1000/abc(1)", "10.1000/abc(1)"),
    ("10.1000/ABC(1)", "10.1000/abc(1)"),
    ("10.1000/abc(1))", "10.1000/abc(1)"),
    ("(10.1000/abc(1))", "10.1000/abc(1)"),
    ("(10.1000/abc(1)).", "10.1000/abc(1)"),
    ("10.1000/abc)", "10.1000/abc"),
    ("10.1000/(abc)", "10.1000/(abc)"),
    ("10.1000/a(b)c(d)", "10.1000/a(b)c(d)"),
    ("10.1000/a(b(c))", "10.1000/a(b(c))"),
    ("10.1000/a(b(c)))", "10.1000/a(b(c))"),
    ("10.1000/x[2]", "10.1000/x[2]"),
    ("10.1000/x[2]]", "10.1000/x[2]"),
    ("[10.1000/x]", "10.1000/x"),
    ("10.1000/x{a}", "10.1000/x{a}"),
    ("10.1000/x}", "10.1000/x"),
    ("10.1000/x<1>", "10.1000/x<1>"),
    ("10.1000/x>", "10.1000/x"),
    ("10.1000/x(1);", "10.1000/x(1)"),
    ("10.1000/x(1)/", "10.1000/x(1)"),
    # Elsevier PII-style DOI in a parenthesised citation (real DOI, The Lancet)
    ("(doi:10.1016/S0140-6736(19)32502-1)", "10.1016/s0140-6736(19)32502-1"),
]


@pytest.mark.parametrize(("raw", "expected"), BRACKETS_AT_THE_END)
def test_closing_brackets_are_kept_only_when_the_doi_opened_them(raw: str, expected: str) -> None:
    assert normalize_doi(raw) == expected


def test_normalize_doi_keeps_parentheses_that_are_balanced_inside_the_doi() -> None:
    assert normalize_doi("10.1016/0006-2952(75)90100-6") == "10.1016/0006-2952(75)90100-6"
    assert normalize_doi("(see 10.1016/0006-2952(75)90100-6)") == "10.1016/0006-2952(75)90100-6"


# -- properties ---------------------------------------------------------------------------
# The oracles are independent of normalize_doi: DOIs are generated by a grammar whose canonical
# form is known by construction (the generated text, lower-cased), and every result is checked
# against a separate reading of the DOI syntax (`_is_canonical_doi` below).

_PLAIN = "abcdefghijklmnopqrstuvwxyzABCDEFXYZ0123456789"
_INNER = _PLAIN + "-._;:/"
_plain_run = st.text(_PLAIN, min_size=1, max_size=6)
_inner_run = st.text(_INNER, min_size=0, max_size=6)


@st.composite
def _bracketed(draw: st.DrawFn) -> str:
    opener, closer = draw(st.sampled_from(["()", "[]", "<>"]))
    return opener + draw(_inner_run) + draw(_plain_run) + closer


# A suffix: plain runs and balanced bracket groups, separated by the punctuation DOIs carry,
# ending with a letter, a digit or a closing bracket of a group it opened.
_suffix = st.lists(st.one_of(_plain_run, _bracketed()), min_size=1, max_size=5).flatmap(
    lambda parts: st.lists(
        st.sampled_from(["", "-", ".", "_", ";", ":", "/"]), min_size=len(parts), max_size=len(parts)
    ).map(lambda seps: "".join(sep + part for sep, part in zip(["", *seps[1:]], parts, strict=True)))
)
_prefix = st.builds(
    lambda reg, sub: f"10.{reg}{sub}",
    st.integers(min_value=1000, max_value=999_999_999),
    st.one_of(st.just(""), st.integers(min_value=0, max_value=999).map(lambda n: f".{n}")),
)
canonical_dois = st.builds(lambda p, s: f"{p}/{s}", _prefix, _suffix).filter(
    lambda d: "[doi]" not in d.lower()  # MEDLINE's "[doi]" marker is cut wherever it ends a DOI
)

_SUFFIX_ALPHABET = st.sampled_from(list("abcdefghijklmnopqrstuvwxyzABCDEFXYZ0123456789-._;()/:<>[]"))
dois = st.builds(
    lambda reg, suffix: f"10.{reg}/{suffix}",
    st.integers(min_value=1000, max_value=999_999_999),
    st.text(_SUFFIX_ALPHABET, min_size=1, max_size=40),
)
anything = st.one_of(
    dois,
    canonical_dois,
    st.text(max_size=60),
    st.builds(lambda a, d, b: a + d + b, st.text(max_size=10), dois, st.text(max_size=10)),
)

_OPENERS = {")": "(", "]": "[", "}": "{", ">": "<"}


def _is_canonical_doi(doi: str) -> bool:
    """The canonical form as docs/dedupe.md defines it, read separately from lupus_alerts.doi:
    "10." + 4-9 digits (+ ".digits" sub-divisions) + "/" + a suffix of printable characters
    without white space, in lower case, not ending in sentence punctuation, and not ending in a
    closing bracket it did not open."""
    prefix, slash, suffix = doi.partition("/")
    registrant = prefix.removeprefix("10.")
    head, *subs = registrant.split(".")
    if not (prefix.startswith("10.") and slash and suffix):
        return False
    if not (head.isascii() and head.isdigit() and 4 <= len(head) <= 9):
        return False
    if not all(s.isascii() and s.isdigit() for s in subs):
        return False
    if any(ch.isspace() or not ch.isprintable() for ch in suffix) or doi != doi.lower():
        return False
    last = suffix[-1]
    if last in ".,;:!?'\"/":
        return False
    return not (last in _OPENERS and doi.count(_OPENERS[last]) < doi.count(last))


@given(anything)
def test_normalize_doi_is_idempotent(raw: str) -> None:
    once = normalize_doi(raw)
    assert normalize_doi(once) == once


@given(anything)
def test_every_result_meets_the_canonical_syntax(raw: str) -> None:
    doi = normalize_doi(raw)
    assert doi is None or _is_canonical_doi(doi), doi


@given(canonical_dois)
def test_a_doi_in_its_canonical_form_comes_back_lower_cased_and_whole(doi: str) -> None:
    assert normalize_doi(doi) == doi.lower()
    assert _is_canonical_doi(doi.lower())


URL_FORMS = [
    lambda d: f"https://doi.org/{quote(d, safe='')}",
    lambda d: f"https://doi.org/{quote(d, safe='/')}",
    lambda d: f"http://dx.doi.org/{quote(d, safe='/')}",
    lambda d: f"https://onlinelibrary.wiley.com/doi/abs/{d}?af=R",
    lambda d: f"doi:{d}",
    lambda d: f"DOI: {d.upper()}",
    lambda d: f"info:doi/{d}",
    lambda d: f"urn:doi:{d}",
    lambda d: f"  {d} [doi]\n",
    lambda d: f"{d}.",
    lambda d: f"{d}).",
    lambda d: f"({d})",
    lambda d: f"[{d}];",
    lambda d: d.replace("<", "&lt;").replace(">", "&gt;"),
    lambda d: f"\u200b{d}\u00a0",
]


@given(canonical_dois, st.sampled_from(range(len(URL_FORMS))))
def test_every_written_form_of_a_doi_gives_the_doi_it_was_made_from(doi: str, form: int) -> None:
    assert normalize_doi(URL_FORMS[form](doi)) == doi.lower()


@given(
    canonical_dois,
    st.sampled_from(["See ", "(", "doi: ", ""]),
    st.sampled_from([". More", "), and", "; ", ""]),
)
def test_find_doi_takes_the_doi_out_of_a_sentence(doi: str, before: str, after: str) -> None:
    # In free text "<" followed by a letter starts an HTML tag (documented); SICI's "<" is
    # followed by a digit or ":".
    assume(re.search(r"<[a-z/!?]", doi, re.IGNORECASE) is None)
    assert find_doi(f"Published {before}{doi}{after} text.") == doi.lower()


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
