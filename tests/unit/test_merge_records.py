"""Pure parts of the merge: title keys, journal-name matching, and merge_records precedence.

Records here are constructed (hand-written) in the paper schema; their titles and journals are
taken from real lupus papers (see /work/shared/seed-papers.txt) to keep the shapes realistic.
"""

from __future__ import annotations

import dataclasses
import itertools
from datetime import date, datetime
from typing import Unpack

import pytest
from factories import PaperFields

from lupus_alerts.dedupe import merge_records, title_key
from lupus_alerts.models import AbstractSection, Author, Classification, MeshHeading, Notice, Paper
from lupus_alerts.text import journals_compatible, normalize_title

TITLE = "Mesenchymal stem/stromal cells as a promising therapy for systemic lupus erythematosus"


def test_title_key_ignores_case_markup_entities_accents_and_punctuation() -> None:
    variants = [
        TITLE,
        TITLE.upper() + ".",
        "<i>Mesenchymal</i> stem/stromal cells as a promising therapy for systemic lupus erythematosus.",
        "Mesenchymal stem&#x2F;stromal cells as a promising therapy for  systemic lupus\nerythematosus",
        "[Mesenchymal stem/stromal cells as a promising therapy for systemic lupus erythematosus].",
    ]
    keys = {title_key(v, None, 2021) for v in variants}
    assert len(keys) == 1
    assert len(keys.pop()) <= 64


def test_title_key_folds_accents() -> None:
    assert normalize_title("Lúpus érythémateux disséminé") == normalize_title("Lupus erythemateux dissemine")


def test_title_key_differs_by_year_and_title_but_not_by_journal_spelling() -> None:
    base = title_key(TITLE, "Lupus Science & Medicine", 2021)
    assert base == title_key(TITLE, "Lupus science & medicine", 2021)
    assert base != title_key(TITLE, "Lupus Science & Medicine", 2022)
    assert base != title_key(TITLE + " in mice", "Lupus Science & Medicine", 2021)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (["Lupus Science & Medicine"], ["Lupus science & medicine", "Lupus Sci Med"]),
        (["Lupus Science & Medicine"], ["Lupus Sci Med"]),
        (["Arthritis & Rheumatology"], ["Arthritis & rheumatology (Hoboken, N.J.)", "Arthritis Rheumatol"]),
        (["Annals of the Rheumatic Diseases"], ["Ann Rheum Dis"]),
        (["Rheumatology"], ["Rheumatology (Oxford, England)"]),
        (["The Lancet Rheumatology"], ["Lancet Rheumatol"]),
        ([None], ["Lupus"]),
    ],
)
def test_journals_compatible_matches_feed_names_with_pubmed_names(a: list[str | None], b: list[str]) -> None:
    assert journals_compatible(a, b)
    assert journals_compatible(b, a)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (["Lupus"], ["Rheumatology (Oxford, England)", "Rheumatology (Oxford)"]),
        (["Lupus Science & Medicine"], ["Lupus"]),
        (["Arthritis Care & Research"], ["Arthritis & Rheumatology"]),
    ],
)
def test_journals_compatible_rejects_different_journals(a: list[str], b: list[str]) -> None:
    assert not journals_compatible(a, b)


def _feed(**kw: Unpack[PaperFields]) -> Paper:
    base: PaperFields = {
        "source": "feed:lupus-sci-med",
        "source_key": "https://lupus.bmj.com/content/8/1/e000001",
        "title": TITLE,
        "doi": "10.1136/lupus-2021-000001",
        "journal": "Lupus Science & Medicine",
        "abstract": "Short teaser.",
        "pub_date": date(2021, 3, 2),
        "url": "https://lupus.bmj.com/content/8/1/e000001",
        "fetched_at": datetime(2021, 3, 3, 6, 0),
    }
    return Paper(**(base | kw))


def _pubmed(**kw: Unpack[PaperFields]) -> Paper:
    base: PaperFields = {
        "source": "pubmed",
        "source_key": "33700001",
        "pmid": "33700001",
        "title": TITLE + ".",
        "doi": None,
        "journal": "Lupus science & medicine",
        "journal_iso": "Lupus Sci Med",
        "abstract": "BACKGROUND: A much longer structured abstract. RESULTS: Numbers.",
        "abstract_sections": [
            AbstractSection("A much longer structured abstract.", "BACKGROUND", "BACKGROUND"),
            AbstractSection("Numbers.", "RESULTS", "RESULTS"),
        ],
        "authors": [Author(last_name="Li", fore_name="Wei", initials="W")],
        "pub_date": date(2021, 4, 1),
        "epub_date": date(2021, 2, 20),
        "publication_types": ["Journal Article", "Review"],
        "mesh": [MeshHeading("Lupus Erythematosus, Systemic", "D008180", major=True)],
        "keywords": ["SLE", "MSC"],
        "language": "eng",
        "fetched_at": datetime(2021, 4, 5, 6, 0),
    }
    return Paper(**(base | kw))


def test_merge_records_takes_pubmed_curation_longest_abstract_and_earliest_dates() -> None:
    feed = _feed(keywords=["msc", "Stem cells"], issns=["2053-8790"])
    pm = _pubmed(issns=["2053-8790"])
    merged = merge_records([feed, pm])
    assert merged.pmid == "33700001"
    assert merged.doi == "10.1136/lupus-2021-000001"  # only the feed had it
    assert merged.mesh == pm.mesh
    assert merged.publication_types == ["Journal Article", "Review"]
    assert merged.abstract == pm.abstract and merged.abstract_sections == pm.abstract_sections
    assert merged.title == pm.title
    assert merged.journal == "Lupus science & medicine"
    assert merged.pub_date == date(2021, 3, 2)  # the feed's date is earlier than the issue's
    assert merged.epub_date == date(2021, 2, 20)
    assert merged.url == feed.url  # the publisher's link
    assert merged.keywords == ["SLE", "MSC", "Stem cells"]  # union, case-insensitive
    assert merged.issns == ["2053-8790"]
    assert merged.fetched_at == datetime(2021, 4, 5, 6, 0)
    assert merged.source == "pubmed"


def test_merge_records_prefers_a_longer_feed_abstract_over_a_short_pubmed_one() -> None:
    long_abstract = "A" * 500
    merged = merge_records([_pubmed(abstract="Short.", abstract_sections=[]), _feed(abstract=long_abstract)])
    assert merged.abstract == long_abstract


def test_merge_records_unions_notices_and_is_retracted_if_any_source_says_so() -> None:
    retraction = Notice("retraction_in", ref_source="Lupus Sci Med. 2022;9:e1", pmid="35000001")
    erratum = Notice("erratum_in", doi="https://doi.org/10.1136/LUPUS-2021-000001corr1")
    merged = merge_records(
        [
            _feed(notices=[erratum]),
            _pubmed(notices=[retraction, Notice("erratum_in", doi="10.1136/lupus-2021-000001corr1")]),
        ]
    )
    assert [n.kind for n in merged.notices] == ["erratum_in", "retraction_in"]
    assert merged.is_retracted
    assert not merge_records([_feed(), _pubmed()]).is_retracted
    assert merge_records([_feed(is_retracted=True), _pubmed()]).is_retracted


def test_merge_records_is_independent_of_input_order() -> None:
    records = [
        _feed(),
        _pubmed(),
        _feed(source="feed:wiley", source_key="x", abstract="Other " * 30, url="https://w/x"),
    ]
    results = {repr(merge_records(list(p)).to_dict()) for p in itertools.permutations(records)}
    assert len(results) == 1


def test_merge_records_of_one_record_keeps_its_content() -> None:
    feed = _feed()
    merged = merge_records([feed])
    assert merged.to_dict() == {**feed.to_dict(), "classification": None}


def test_merge_records_needs_a_record() -> None:
    with pytest.raises(ValueError):
        merge_records([])


def _assert_stored_as_the_paper_schema(papers: list[Paper]) -> None:
    """Each paper's stored text is its to_dict() and decodes back to the same paper."""
    import json

    from lupus_alerts.dedupe import decode_paper, encode_paper

    for p in papers:
        text, _ = encode_paper(p)
        assert json.loads(text) == p.to_dict(), p.source_key
        assert decode_paper(text) == p, p.source_key


def test_stored_text_is_exactly_to_dict_with_every_nested_kind() -> None:

    from lupus_alerts.models import MeshQualifier, TopicLabel

    pm = _pubmed(
        mesh=[
            MeshHeading(
                "Lupus Nephritis", "D008181", qualifiers=[MeshQualifier("drug therapy", "Q000188", True)]
            )
        ],
        notices=[Notice("erratum_in", pmid="1")],
        classification=Classification(True, 0.9, ["mesh"], [TopicLabel("renal", 0.8, ["nephritis"])]),
        authors=[Author(collective_name="SLICC", affiliations=["Somewhere"])],
    )
    _assert_stored_as_the_paper_schema([pm, _feed(), Paper(source="s", source_key="k", title="t")])


@pytest.mark.parametrize(
    ("paper", "shortcut"),
    [
        (_feed(), True),
        (_pubmed(), True),
        (_feed(notices=[Notice("erratum_in", pmid="9")]), True),
        (_feed(keywords=["SLE", "sle"]), False),  # the merge deduplicates keywords
        (_feed(notices=[Notice("retraction_in", pmid="9")]), False),  # the merge sets is_retracted
        (_feed(issns=["1", "1"]), False),
        (_feed(doi="https://doi.org/10.1136/X"), False),
    ],
)
def test_the_upsert_shortcut_for_single_records_agrees_with_merge_records(
    paper: Paper, shortcut: bool
) -> None:
    from lupus_alerts.dedupe.records import _merges_to_itself

    assert _merges_to_itself(paper) is shortcut
    if shortcut:
        assert merge_records([paper]).to_dict() == paper.to_dict()
    else:
        assert merge_records([paper]).to_dict() != paper.to_dict()


def test_encode_paper_stores_the_whole_record_and_hashes_only_what_counts_as_a_change() -> None:
    import json

    from lupus_alerts.dedupe import decode_paper, encode_paper

    pm = _pubmed(authors=[Author(last_name="Müller", fore_name="Jörg")], fetched_at=datetime(2026, 11, 2, 6))
    text, digest = encode_paper(pm)
    assert json.loads(text) == pm.to_dict()  # the paper schema, nothing lost, accents included
    assert "Müller" in text
    assert decode_paper(text) == pm
    # a re-poll (only fetched_at differs) hashes the same; any field that counts does not
    repolled = dataclasses.replace(pm, fetched_at=datetime(2026, 11, 9, 6))
    assert encode_paper(repolled)[1] == digest
    assert encode_paper(repolled)[0] != text
    assert encode_paper(dataclasses.replace(pm, abstract=pm.abstract + " More."))[1] != digest
    assert (
        encode_paper(dataclasses.replace(pm, keywords=["b", "a"]))[1]
        != encode_paper(dataclasses.replace(pm, keywords=["a", "b"]))[1]
    )
    # a classified record hashes as the unclassified one
    classified = dataclasses.replace(pm, classification=Classification(is_lupus=True, relevance_score=0.9))
    assert encode_paper(classified)[1] == digest


def test_decode_paper_reads_records_written_by_hand_or_by_older_versions() -> None:
    import json

    from lupus_alerts.dedupe import decode_paper

    pm = _pubmed(fetched_at=datetime(2026, 11, 2, 6, 30, 5, 120))
    loose = pm.to_dict()
    loose["mesh"] = ["Lupus Nephritis"]  # a bare descriptor, which from_dict accepts
    loose["not_a_field"] = 1
    del loose["source_key"]
    for stored in (json.dumps(loose), json.dumps(loose).encode(), loose):
        paper = decode_paper(stored)
        assert paper.mesh[0].descriptor == "Lupus Nephritis"
        assert paper.source_key == pm.pmid
        assert paper.fetched_at == pm.fetched_at


def _fixture_papers() -> list[Paper]:
    from pathlib import Path

    from lupus_alerts.feeds import parse_feed_bytes
    from lupus_alerts.pubmed import parse_pubmed_bytes

    root = Path(__file__).resolve().parents[2]
    papers: list[Paper] = []
    for path in sorted((root / "tests/fixtures/pubmed").glob("*.xml")):
        papers.extend(parse_pubmed_bytes(path.read_bytes())[0])
    feeds = sorted((root / "tests/fixtures/feeds").iterdir()) + sorted(
        (root / "include/lupus_alerts/data/demo").glob("feed_*")
    )
    for path in feeds:
        if not path.name.endswith(".json"):
            result = parse_feed_bytes(path.read_bytes(), seen_at=datetime(2026, 11, 2, 6, 0, 0, 250))
            papers.extend(result.papers)
    return papers


def test_stored_text_is_the_paper_schema_for_every_fixture_record() -> None:

    papers = _fixture_papers()
    assert len(papers) > 100
    assert any(not p.title.isascii() or not p.abstract.isascii() for p in papers)
    _assert_stored_as_the_paper_schema(papers)


def test_a_batch_reaches_an_upsert_worker_exactly_as_it_was_given() -> None:
    import pickle

    from lupus_alerts.dedupe._parallel import _BATCH_DECODER, _batch_payload

    papers = _fixture_papers()
    payload = _batch_payload(papers)
    assert isinstance(payload, bytes)  # sent as JSON ...
    assert _BATCH_DECODER.decode(payload) == papers
    # ... unless a lone surrogate (no UTF-8 for it) is in the batch: then pickled, unchanged
    broken = _feed(title="Lupus nephritis \ud800 outcomes in a registry")
    payload = _batch_payload([papers[0], broken])
    assert isinstance(payload, list) and pickle.loads(pickle.dumps(payload)) == [papers[0], broken]


def test_encode_paper_stores_a_lone_surrogate_as_the_replacement_character() -> None:
    import json

    from lupus_alerts.dedupe import encode_paper

    # what json.loads makes of a hand-written "\ud800": a str that UTF-8 cannot hold
    broken = _feed(title=json.loads('"Lupus nephritis \\ud800 outcomes in a registry"'))
    text, digest = encode_paper(broken)
    assert json.loads(text)["title"] == "Lupus nephritis \ufffd outcomes in a registry"
    assert encode_paper(broken) == (text, digest)  # the same record is the same record


# -- one journal normaliser for matching and for relevance (docs/decisions.md) ---------------


@pytest.mark.parametrize(
    "name",
    [
        "Lupus",
        "LUPUS",
        "Lupus (London, England)",  # NLM's place qualifier: the copy in relevance missed it
        "Lupus Science & Medicine",
        "Lupus Science &amp; Medicine",  # a feed's escaped ampersand
        "Lupus science & medicine",
        "Lupus Sci Med",
        "Lupus sci. med.",
    ],
)
def test_the_lupus_journals_are_recognised_however_a_source_writes_them(name: str) -> None:
    from lupus_alerts.relevance import is_lupus_journal

    assert is_lupus_journal(name)


@pytest.mark.parametrize("name", ["Lupus Foundation News", "Arthritis & Rheumatology", "", None])
def test_other_journals_are_not_lupus_journals(name: str | None) -> None:
    from lupus_alerts.relevance import is_lupus_journal

    assert not is_lupus_journal(name)


def test_journal_names_fold_the_same_for_matching_and_for_relevance() -> None:
    from lupus_alerts.text import normalize_journal

    assert normalize_journal("The Lancet. Rheumatology (London)") == "lancet rheumatology"
    assert normalize_journal("Lupus Science &amp; Medicine") == "lupus science medicine"
    assert normalize_journal("Revue de l’Épidémiologie") == "revue l epidemiologie"
