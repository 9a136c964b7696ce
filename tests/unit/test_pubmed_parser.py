"""The streaming PubMed parser on real EFetch files and on constructed edge cases.

Expectations below were read by hand from the fixture XML (line references are to
tests/fixtures/pubmed/fatcat_pubmedsample_2019.xml).
"""

from __future__ import annotations

import io
import socket
from datetime import date
from pathlib import Path

import pytest

from lupus_alerts.models import Paper
from lupus_alerts.pubmed import (
    DeletedCitation,
    ParseProblem,
    parse_medline_date,
    parse_pubmed,
    parse_pubmed_bytes,
)

PUBMED = Path(__file__).parent.parent / "fixtures" / "pubmed"
SAMPLE = PUBMED / "fatcat_pubmedsample_2019.xml"
CONSTRUCTED = PUBMED / "constructed_edge_cases.xml"


@pytest.fixture(scope="module")
def sample() -> dict[str, Paper]:
    return {p.pmid: p for p in parse_pubmed(SAMPLE) if isinstance(p, Paper)}


@pytest.fixture(scope="module")
def constructed() -> list:
    return list(parse_pubmed(CONSTRUCTED))


def test_every_record_of_the_2019_sample_parses(sample: dict[str, Paper]) -> None:
    items = list(parse_pubmed(SAMPLE))
    papers = [i for i in items if isinstance(i, Paper)]
    assert len(papers) == 176
    assert not [i for i in items if isinstance(i, ParseProblem)]
    assert all(p.pmid and p.title and p.source == "pubmed" and p.source_key == p.pmid for p in papers)
    assert all(p.url == f"https://pubmed.ncbi.nlm.nih.gov/{p.pmid}/" for p in papers)


def test_delete_citation_lists_its_pmids() -> None:
    deleted = [i for i in parse_pubmed(SAMPLE) if isinstance(i, DeletedCitation)]
    assert len(deleted) == 1
    assert deleted[0].pmids == [
        "23203860",
        "23203861",
        "23203892",
        "23203893",
        "23203894",
        "23203895",
        "23203896",
    ]


def test_dois_come_lower_cased_from_the_articles_own_ids(sample: dict[str, Paper]) -> None:
    # ArticleId IdType="doi" 10.1016/S0893-133X(98)00041-4 in PubmedData
    assert sample["9885794"].doi == "10.1016/s0893-133x(98)00041-4"
    assert sample["10612833"].doi == "10.1002/(sici)1098-1004(200001)15:1<114::aid-humu21>3.0.co;2-4"
    assert sample["11237011"].doi == "10.1038/35057062"  # the human genome paper
    # ELocationID EIdType="doi" ValidYN="Y"
    assert sample["29869631"].doi == "10.3389/fchem.2018.00154"
    # ~60% of the 2019 sample has no DOI at all: none may be invented
    assert sum(1 for p in sample.values() if p.doi) == 70


def test_doi_prefers_valid_elocation_and_ignores_reference_list(constructed: list) -> None:
    by = {i.pmid: i for i in constructed if isinstance(i, Paper)}
    # ELocationID ValidYN="N" is skipped for the ArticleId DOI
    assert by["99000001"].doi == "10.1177/09612033231234567"
    # the only DOI is a cited reference's: the record itself has none
    assert by["99000002"].doi is None


def test_bare_pubmedarticle_fragment_parses() -> None:
    items = list(parse_pubmed(PUBMED / "fatcat_pubmed_19129924_fragment.xml"))
    assert len(items) == 1
    p = items[0]
    assert isinstance(p, Paper)
    assert p.pmid == "19129924"
    assert p.doi == "10.3389/neuro.11.006.2008"
    assert p.pmcid == "PMC2614320"
    assert p.title == "PyMOOSE: Interoperable Scripting in Python for MOOSE."


@pytest.mark.parametrize("name", ["biopython_pubmed1.xml", "biopython_pubmed2.xml"])
def test_files_declaring_remote_dtds_parse_without_network(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the parser tried to open a network connection")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    papers = [i for i in parse_pubmed(PUBMED / name) if isinstance(i, Paper)]
    assert len(papers) == 2
    assert all(p.pmid and p.title for p in papers)


def test_inline_markup_and_mathml_keep_their_text(constructed: list) -> None:
    p = next(i for i in constructed if isinstance(i, Paper) and i.pmid == "99000001")
    assert p.title == "CO2 retention and in vivo IFN-α in SLE: an R2 of x2 and more."
    assert p.keywords == ["SLE", "CO2"]
    assert p.abstract_sections[1].text == "Serum C3 fell."


def test_mathml_in_real_abstract_is_kept(sample: dict[str, Paper]) -> None:
    # Line 35184ff: <mml:msubsup> R / pre / 2 </mml:msubsup> = 0.9513, ... mg·g<sup>-1</sup>
    p = sample["29869631"]
    assert "Rpre2 = 0.9513, RMSEP = 0.1029 mg·g-1" in p.abstract
    assert "Radix Scrophulariae powder" in p.abstract


def test_sup_in_real_abstract_is_kept(sample: dict[str, Paper]) -> None:
    p = next(p for p in sample.values() if "SAR11 is a group" in p.abstract)
    assert "2.4×1028 cells" in p.abstract


def test_vernacular_title_used_when_article_title_is_empty(constructed: list) -> None:
    p = next(i for i in constructed if isinstance(i, Paper) and i.pmid == "99000002")
    assert p.title == "Le lupus érythémateux disséminé de l'enfant."
    assert p.language == "fre"


def test_structured_abstract_keeps_labels(constructed: list) -> None:
    p = next(i for i in constructed if isinstance(i, Paper) and i.pmid == "99000001")
    assert p.abstract == "BACKGROUND: Lupus nephritis is common.\nRESULTS: Serum C3 fell."
    assert [s.category for s in p.abstract_sections] == ["BACKGROUND", "RESULTS"]


def test_authors_collective_names_affiliations_and_orcid(constructed: list) -> None:
    p = next(i for i in constructed if isinstance(i, Paper) and i.pmid == "99000001")
    # the ValidYN="N" author is a superseded spelling, not an author
    assert [a.display for a in p.authors] == ["Núñez MJ", "Lupus Study Group"]
    assert p.authors[0].affiliations == [
        "Hospital Clínic, Barcelona, Spain.",
        "University of Barcelona, Spain.",
    ]
    assert p.authors[0].orcid == "0000-0002-1825-0097"


def test_real_collective_name(sample: dict[str, Paper]) -> None:
    names = [a.collective_name for a in sample["11237011"].authors if a.collective_name]
    assert names == ["International Human Genome Sequencing Consortium"]


def test_journal_fields_and_issns(constructed: list, sample: dict[str, Paper]) -> None:
    p = next(i for i in constructed if isinstance(i, Paper) and i.pmid == "99000001")
    assert (p.journal, p.journal_iso) == ("Lupus", "Lupus")
    assert p.issns == ["1477-0962", "0961-2033"]  # ISSN, then ISSNLinking
    assert sample["11237011"].journal == "Nature"


@pytest.mark.parametrize(
    ("pmid", "best", "text"),
    [
        ("14316043", date(1965, 12, 1), "1965 Dec-1966 Jan"),  # MedlineDate across years
        ("18122624", date(1947, 1, 1), "1947-1948"),  # MedlineDate, years only
        ("12416895", date(2002, 9, 1), "2002 Sep-Oct"),
        ("15206831", date(2003, 9, 1), "2003 Fall"),  # Season
        ("15228064", date(2004, 6, 1), "2004 Summer"),
    ],
)
def test_publication_dates_from_medlinedate_and_season(
    sample: dict[str, Paper], pmid: str, best: date, text: str
) -> None:
    assert (sample[pmid].pub_date, sample[pmid].pub_date_text) == (best, text)


def test_full_dates_and_electronic_date(constructed: list, sample: dict[str, Paper]) -> None:
    p = next(i for i in constructed if isinstance(i, Paper) and i.pmid == "99000001")
    assert (p.pub_date, p.pub_date_text, p.epub_date) == (date(2024, 1, 1), "2024 Winter", date(2023, 11, 30))
    assert p.first_date == date(2023, 11, 30)
    assert sample["11237011"].pub_date == date(2001, 2, 15)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1998 Dec-1999 Jan", date(1998, 12, 1)),
        ("2001 Spring", date(2001, 3, 1)),
        ("1999 Jan 5-11", date(1999, 1, 5)),
        ("2018 May - Jun", date(2018, 5, 1)),
        ("Summer 2004", date(2004, 1, 1)),  # year not first: the year is kept, the month is not
        ("", None),
    ],
)
def test_medline_date_best_date(text: str, expected: date | None) -> None:
    assert parse_medline_date(text) == expected


def test_retracted_paper_carries_retraction_and_erratum_notices(sample: dict[str, Paper]) -> None:
    # Lines 1268-1277: ErratumIn Mol Pharmacol 1997 Mar;51(3):533 and RetractionIn PMID 9499167
    p = sample["8863847"]
    assert p.is_retracted
    assert "Retracted Publication" in p.publication_types
    kinds = {(n.kind, n.pmid) for n in p.notices}
    assert kinds == {("erratum_in", None), ("retraction_in", "9499167")}
    assert (
        next(n for n in p.notices if n.kind == "erratum_in").ref_source == "Mol Pharmacol 1997 Mar;51(3):533"
    )


def test_the_three_retracted_papers_of_the_sample(sample: dict[str, Paper]) -> None:
    assert sorted(p.pmid for p in sample.values() if p.is_retracted) == ["11543891", "8655018", "8863847"]


def test_retraction_notice_is_not_itself_retracted(sample: dict[str, Paper]) -> None:
    # Line 2981: RetractionOf PMID 8393056 (J Infect Dis 1993)
    p = sample["9634358"]
    assert not p.is_retracted
    assert "Retraction of Publication" in p.publication_types
    assert [(n.kind, n.pmid) for n in p.notices if n.kind == "retraction_of"] == [
        ("retraction_of", "8393056")
    ]


def test_errata_only(sample: dict[str, Paper]) -> None:
    p = sample["9482442"]  # two ErratumIn in The Lancet, lines 2108-2113
    assert [n.ref_source for n in p.notices] == [
        "Lancet 1998 Jun 27;351(9120):1968",
        "Lancet 1998 Mar 7;351(9104):760",
    ]
    assert not p.is_retracted


def test_retracted_publication_type_alone_marks_retracted(constructed: list) -> None:
    p = next(i for i in constructed if isinstance(i, Paper) and i.pmid == "99000002")
    assert p.is_retracted and p.notices == []


def test_expression_of_concern_notice_with_doi_from_refsource(constructed: list) -> None:
    p = next(i for i in constructed if isinstance(i, Paper) and i.pmid == "99000001")
    assert [(n.kind, n.pmid, n.doi) for n in p.notices] == [
        ("expression_of_concern_in", "99000009", "10.1177/09612033241234567")
    ]


def test_mesh_descriptors_with_ui_major_flag_and_qualifiers(sample: dict[str, Paper]) -> None:
    lupus = [
        p for p in sample.values() if any(m.descriptor == "Lupus Erythematosus, Systemic" for m in p.mesh)
    ]
    assert len(lupus) == 1
    m = next(m for m in lupus[0].mesh if m.descriptor == "Lupus Erythematosus, Systemic")
    assert m.ui == "D008180"
    assert all(q.ui and q.ui.startswith("Q") for q in m.qualifiers)


def test_book_article(constructed: list) -> None:
    p = next(i for i in constructed if isinstance(i, Paper) and i.pmid == "99000003")
    assert p.title == "Monogenic Lupus."
    assert p.journal == "GeneReviews®"
    assert [a.display for a in p.authors] == ["Author C"]  # the chapter's authors, not the editors
    assert p.abstract == "CLINICAL CHARACTERISTICS: Early-onset SLE."
    assert p.publication_types == ["Review"]


def test_record_without_pmid_is_reported_and_skipped(constructed: list) -> None:
    problems = [i for i in constructed if isinstance(i, ParseProblem)]
    assert len(problems) == 1 and problems[0].pmid is None
    assert "PMID" in problems[0].reason
    # and the records after it were still read
    assert isinstance(constructed[-1], DeletedCitation) and constructed[-1].pmids == ["99000004", "99000005"]


def test_truncated_document_yields_records_before_the_break_and_a_problem() -> None:
    data = SAMPLE.read_bytes()
    cut = data[: data.index(b'<PMID Version="1">11237011</PMID>')]
    items = list(parse_pubmed(cut))
    papers = [i for i in items if isinstance(i, Paper)]
    assert 0 < len(papers) < 176
    assert isinstance(items[-1], ParseProblem)
    assert "not well-formed" in items[-1].reason and papers[-1].pmid in items[-1].reason


def test_entities_are_not_expanded() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE PubmedArticleSet [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><PubmedArticleSet><PubmedArticle><MedlineCitation>'
        b"<PMID>1</PMID><Article><ArticleTitle>T &b;</ArticleTitle></Article></MedlineCitation>"
        b"</PubmedArticle></PubmedArticleSet>"
    )
    (p,) = list(parse_pubmed(bomb))
    assert isinstance(p, Paper)
    assert "aaaaaaaaaa" not in p.title


@pytest.mark.parametrize("kind", ["bytes", "str", "path", "pathstr", "file"])
def test_every_source_kind_gives_the_same_papers(kind: str) -> None:
    path = PUBMED / "biopython_pubmed1.xml"
    data = path.read_bytes()
    source = {
        "bytes": data,
        "str": data.decode("utf-8"),
        "path": path,
        "pathstr": str(path),
        "file": io.BytesIO(data),
    }[kind]
    assert [p.pmid for p in parse_pubmed(source)] == ["12091962", "9997"]


def test_parse_pubmed_bytes_sorts_items(sample: dict[str, Paper]) -> None:
    papers, deleted, problems = parse_pubmed_bytes(SAMPLE.read_bytes())
    assert (len(papers), len(deleted), len(problems)) == (176, 1, 0)
    assert papers[0].to_dict() == sample[papers[0].pmid].to_dict()


def test_paper_survives_the_json_round_trip(sample: dict[str, Paper]) -> None:
    for p in sample.values():
        assert Paper.from_dict(p.to_dict()) == p
