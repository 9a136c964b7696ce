"""relevance.assess: lupus in the lupus-erythematosus sense, and the traps that look like it.

The titles and abstracts below are constructed (hand-written) examples in the style of
PubMed records; each case states what it checks.
"""

from __future__ import annotations

import pytest

from lupus_alerts.models import MeshHeading, MeshQualifier
from lupus_alerts.relevance import assess, is_lupus_journal

NOT_LUPUS = {
    "lupus vulgaris": (
        "Lupus vulgaris of the nose mimicking a basal cell carcinoma",
        "Lupus vulgaris is a chronic form of cutaneous tuberculosis. We describe a 54-year-old man "
        "whose nasal plaque grew Mycobacterium tuberculosis.",
        "tuberculosis of the skin",
    ),
    "lupus pernio": (
        "Lupus pernio responding to adalimumab",
        "Lupus pernio is a disfiguring cutaneous manifestation of sarcoidosis. Two patients improved.",
        "sarcoidosis",
    ),
    "Canis lupus": (
        "Recolonisation of central Europe by grey wolves",
        "We genotyped 412 scat samples of wolves (Canis lupus) collected between 2015 and 2022.",
        "the wolf",
    ),
    "St. Louis encephalitis": (
        "Surveillance of SLE virus in Culex mosquitoes, Arizona",
        "St. Louis encephalitis (SLE) virus re-emerged in Arizona in 2015. SLE virus RNA was "
        "detected in 37 mosquito pools.",
        "St. Louis encephalitis",
    ),
    "slit-lamp examination": (
        "Anterior segment findings in contact lens wearers",
        "All participants underwent slit-lamp examination (SLE). SLE showed corneal staining in 14% of eyes.",
        "slit-lamp examination",
    ),
    "lupus anticoagulant in COVID-19": (
        "Lupus anticoagulant and thrombosis in critically ill patients with COVID-19",
        "Lupus anticoagulant was detected in 45% of 120 ventilated patients with COVID-19 "
        "coagulopathy and was associated with venous thromboembolism.",
        "coagulation test",
    ),
    "lupus anticoagulant in primary APS": (
        "Triple positivity and recurrent thrombosis in primary antiphospholipid syndrome",
        "Patients with primary APS who were positive for lupus anticoagulant, anticardiolipin and "
        "anti-beta2 glycoprotein I antibodies had more recurrences on warfarin.",
        "coagulation test",
    ),
    "SLE as exclusion criterion": (
        "Tofacitinib versus adalimumab in rheumatoid arthritis: a 52-week trial",
        "Adults with active rheumatoid arthritis were randomised. Patients with systemic lupus "
        "erythematosus or other connective tissue diseases were excluded. ACR50 was reached by 47%.",
        "exclusion criterion",
    ),
    "SLE as comparison group": (
        "Serum calprotectin in rheumatoid arthritis",
        "Calprotectin was higher in RA patients compared with SLE patients and healthy controls. "
        "Levels correlated with DAS28 in RA.",
        "comparison group",
    ),
}


@pytest.mark.parametrize("case", NOT_LUPUS, ids=list(NOT_LUPUS))
def test_trap_is_not_lupus_and_evidence_says_why(case: str) -> None:
    title, abstract, why = NOT_LUPUS[case]
    r = assess(title, abstract)
    assert r.is_lupus is False, r
    assert r.score < 0.5
    assert any(why in e for e in r.evidence), r.evidence


LUPUS = {
    "SLE": ("Anifrolumab in active SLE: a post hoc analysis", "", "'SLE' in the title"),
    "lupus nephritis": (
        "Voclosporin for lupus nephritis",
        "Lupus nephritis remains a major cause of morbidity.",
        "'lupus nephritis' in the title",
    ),
    "cutaneous lupus": (
        "CLASI response in cutaneous lupus erythematosus",
        "",
        "'cutaneous lupus' in the title",
    ),
    "discoid lupus": ("Scarring alopecia in discoid lupus", "", "'discoid lupus' in the title"),
    "neonatal lupus": (
        "Neonatal lupus and congenital heart block in anti-Ro positive mothers",
        "",
        "'neonatal lupus' in the title",
    ),
    "drug-induced lupus": (
        "Drug-induced lupus after TNF inhibitors",
        "",
        "'drug induced lupus' in the title",
    ),
    "NPSLE": ("Cognitive dysfunction in NPSLE", "", "'NPSLE' in the title"),
    "lupus-related APS": (
        "Thrombosis in antiphospholipid syndrome associated with systemic lupus erythematosus",
        "",
        "'systemic lupus erythematosus' in the title",
    ),
    "case report naming SLE once in the abstract": (
        "Pericardial tamponade in a 19-year-old woman",
        "A 19-year-old woman with systemic lupus erythematosus presented with dyspnoea.",
        "'systemic lupus erythematosus' in the abstract",
    ),
}


@pytest.mark.parametrize("case", LUPUS, ids=list(LUPUS))
def test_lupus_paper_is_recognised_with_evidence(case: str) -> None:
    title, abstract, evidence = LUPUS[case]
    r = assess(title, abstract)
    assert r.is_lupus is True, r
    assert r.score >= 0.5
    assert evidence in r.evidence


def test_lupus_journal_is_relevant_by_definition() -> None:
    r = assess("Quality of life in a cohort", "We surveyed 300 patients.", journal="Lupus Science & Medicine")
    assert r.is_lupus
    assert r.evidence == ["published in Lupus Science & Medicine, a lupus journal"]
    assert is_lupus_journal("Lupus")
    assert is_lupus_journal("Lupus Sci Med")
    assert not is_lupus_journal("Lupus Nephritis Reports")  # not a journal we know


def test_mesh_major_topic_is_evidence_and_qualifier_major_counts() -> None:
    heading = MeshHeading(
        "Lupus Nephritis", ui="D008181", qualifiers=[MeshQualifier("drug therapy", major=True)]
    )
    r = assess("Outcomes at 10 years", mesh=[heading])
    assert r.is_lupus
    assert "MeSH Lupus Nephritis (major topic)" in r.evidence


def test_bare_mesh_descriptor_string_is_accepted() -> None:
    assert assess("Outcomes at 10 years", mesh=["Lupus Erythematosus, Systemic"]).is_lupus


def test_lupus_mention_beside_trap_still_counts() -> None:
    # A lupus paper that also tests the lupus anticoagulant is a lupus paper.
    r = assess(
        "Antiphospholipid antibodies in systemic lupus erythematosus",
        "Lupus anticoagulant was the strongest predictor of thrombosis in patients with SLE.",
    )
    assert r.is_lupus


def test_negated_only_mentions_do_not_make_a_lupus_paper() -> None:
    r = assess(
        "Photosensitivity in dermatomyositis",
        "None of the patients had features of systemic lupus erythematosus. No SLE was diagnosed.",
    )
    assert not r.is_lupus


def test_no_lupus_at_all() -> None:
    r = assess("Statins and cardiovascular outcomes in type 2 diabetes", "A cohort study.")
    assert not r.is_lupus
    assert r.evidence == ["no mention of lupus erythematosus"]


def test_lupus_mesh_beside_a_major_trap_descriptor_does_not_count() -> None:
    # NLM indexes the misdiagnosis too: "Lupus Erythematosus, Discoid" (minor) on a lupus
    # vulgaris case whose major topic is Lupus Vulgaris.
    mesh = [
        MeshHeading("Lupus Vulgaris", major=True),
        MeshHeading("Tuberculosis, Cutaneous", major=True),
        MeshHeading("Lupus Erythematosus, Discoid", ui="D008179"),
    ]
    r = assess(
        "Lupus vulgaris of the cheek, a diagnostic pitfall",
        "A plaque was treated for two years as discoid lupus erythematosus before culture grew "
        "Mycobacterium tuberculosis.",
        mesh=mesh,
    )
    assert not r.is_lupus
    assert (
        "MeSH Tuberculosis, Cutaneous is the major topic; Lupus Erythematosus, Discoid is not" in r.evidence
    )


def test_sle_defined_as_something_else_is_not_lupus() -> None:
    r = assess(
        "Antarctic contribution to sea level, SLE projections to 2300",
        "We project the contribution in sea-level equivalent (SLE). The median reaches 1.2 m SLE.",
    )
    assert not r.is_lupus
    assert "'SLE' here means sea level equivalent" in r.evidence


def test_lupus_only_drug_in_another_disease_is_not_lupus() -> None:
    r = assess(
        "Anifrolumab in diffuse cutaneous systemic sclerosis, a phase 2 trial",
        "Patients with systemic sclerosis received anifrolumab or placebo.",
    )
    assert not r.is_lupus
    assert "a lupus drug, but the title names another disease" in r.evidence
    assert assess(
        "Anifrolumab and the interferon gene signature",
        "Responses to anifrolumab were higher with a high signature.",
    ).is_lupus


# -- edge cases on real PubMed text (issue 13) ----------------------------------------------
# The records are real: include/lupus_alerts/data/labelled/real/ (see its SOURCES.md). All of
# them sit in the real dev split, which development reads.


def real(pmid: str) -> dict:
    from lupus_alerts.classify import DATA_DIR, read_jsonl

    for rec in read_jsonl(DATA_DIR / "labelled" / "real" / "dev.jsonl"):
        if rec["pmid"] == pmid:
            return rec
    raise AssertionError(f"PMID {pmid} is not in the real dev split")


def assess_record(rec: dict):
    return assess(rec["title"], rec["abstract"])


def test_overlap_syndrome_that_includes_lupus_is_lupus() -> None:
    # PMID 42371446: "... in a Patient With Systemic Lupus Erythematosus and Systemic
    # Sclerosis Overlap": lupus is half of the patient's disease, not one of a list.
    rec = real("42371446")
    assert rec["gold_is_lupus"]
    r = assess_record(rec)
    assert r.is_lupus, r
    assert r.evidence[0] == "'systemic lupus erythematosus' in the title, as part of an overlap syndrome"


def test_suspected_lupus_that_turned_out_to_be_something_else_is_not_lupus() -> None:
    # PMID 42609361: lymphoma "masquerading as" SLE; "strongly suggested a clinical diagnosis
    # of SLE. However ... a definitive diagnosis of PS-DLBCL was established".
    rec = real("42609361")
    assert not rec["gold_is_lupus"]
    r = assess_record(rec)
    assert not r.is_lupus, r
    assert "lupus is mentioned only as a differential diagnosis or misdiagnosis" in r.evidence


def test_lupus_suspected_in_the_abstract_and_ruled_out_is_not_lupus() -> None:
    # The same real abstract under a title that does not name lupus: the mentions that are
    # left ("suggested a clinical diagnosis of SLE", "lupus-like manifestations") are passing.
    rec = real("42609361")
    r = assess("Primary splenic diffuse large B-cell lymphoma: a case report", rec["abstract"])
    assert not r.is_lupus, r


def test_lupus_only_as_the_comparison_group_is_not_lupus() -> None:
    # PMID 42362560: a dermatomyositis study "through comparative analysis with cutaneous
    # lupus erythematosus (CLE)".
    rec = real("42362560")
    assert not rec["gold_is_lupus"]
    r = assess_record(rec)
    assert not r.is_lupus, r
    assert "lupus is mentioned only as a comparison group or in a list of diseases" in r.evidence


@pytest.mark.parametrize("pmid", ["42433136", "42342167"])
def test_a_single_passing_mention_never_passes_alone(pmid: str) -> None:
    # 42433136: an obstetric antiphospholipid-syndrome cohort where "complications of
    # systematic lupus erythematosus" is one predictor among several (it scored exactly 0.50);
    # 42342167: a review of HSP27 across ten diseases, "anti-apoptotic in lupus nephritis".
    rec = real(pmid)
    assert not rec["gold_is_lupus"]
    r = assess_record(rec)
    assert not r.is_lupus, r
    assert r.score < 0.5


def test_a_single_mention_that_defines_the_patient_still_counts() -> None:
    # the other side of the rule: a case report naming the patient's lupus once is lupus
    r = assess(
        "Pericardial tamponade in a 19-year-old woman",
        "We describe the course of the tamponade over three weeks. A 19-year-old woman with "
        "systemic lupus erythematosus presented with dyspnoea. She recovered.",
    )
    assert r.is_lupus, r


def test_lupus_named_in_the_title_among_other_diseases_with_its_own_results_is_lupus() -> None:
    # PMID 42364517: "Neutrophil extracellular traps in gout, rheumatoid arthritis, and systemic
    # lupus erythematosus": lupus is one of three named subjects, with its own results.
    rec = real("42364517")
    assert rec["gold_is_lupus"]
    assert assess_record(rec).is_lupus
