"""Integrity of the labelled dev/test sets the classifier is tuned and measured on.

The sets are built by scripts/build_labelled_set.py from the sources under
include/lupus_alerts/data/labelled/source/, following docs/annotation-guidelines.md.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from lupus_alerts.models import Paper

REPO = Path(__file__).resolve().parents[2]
LABELLED = REPO / "include" / "lupus_alerts" / "data" / "labelled"
SPLITS = ("dev", "test")

# The fifteen label ids of the subspecialty taxonomy (issue 6), in the guidelines' order.
LABEL_IDS = {
    "nephrology",
    "dermatology",
    "neuropsychiatric",
    "cardiovascular",
    "pulmonary",
    "hematology",
    "pregnancy",
    "pediatrics",
    "musculoskeletal",
    "genetics",
    "immunology",
    "therapeutics",
    "epidemiology",
    "diagnostics",
    "infection",
}
MIN_POSITIVES_PER_SPLIT = 6
MIN_PAPERS = 240


def _read_lines(split: str) -> list[str]:
    return (LABELLED / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()


def _load(split: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in _read_lines(split)]


@pytest.fixture(scope="module")
def sets() -> dict[str, list[dict[str, Any]]]:
    return {split: _load(split) for split in SPLITS}


@pytest.mark.parametrize("split", SPLITS)
def test_every_line_is_one_json_object(split: str) -> None:
    lines = _read_lines(split)
    assert lines, f"{split}.jsonl is empty"
    for n, line in enumerate(lines, 1):
        obj = json.loads(line)
        assert isinstance(obj, dict), f"{split}.jsonl line {n} is not an object"


@pytest.mark.parametrize("split", SPLITS)
def test_records_have_the_required_fields_with_the_right_types(split: str) -> None:
    for n, rec in enumerate(_load(split), 1):
        where = f"{split}.jsonl line {n}"
        for field in ("source", "source_key", "title", "provenance"):
            assert isinstance(rec.get(field), str) and rec[field].strip(), f"{where}: {field}"
        assert isinstance(rec.get("abstract"), str), where
        assert isinstance(rec.get("gold_is_lupus"), bool), where
        assert isinstance(rec.get("gold_topics"), list), where
        assert isinstance(rec.get("note"), str), where
        for field in ("mesh", "publication_types", "keywords"):
            assert isinstance(rec.get(field, []), list), f"{where}: {field}"


@pytest.mark.parametrize("split", SPLITS)
def test_records_load_as_papers_in_the_paper_schema(split: str) -> None:
    for rec in _load(split):
        paper = Paper.from_dict(rec)
        assert paper.title == rec["title"]
        assert [m.descriptor for m in paper.mesh] == [m["descriptor"] for m in rec.get("mesh", [])]


@pytest.mark.parametrize("split", SPLITS)
def test_mesh_headings_are_well_formed_where_present(split: str) -> None:
    for rec in _load(split):
        for m in rec.get("mesh", []):
            assert m["descriptor"] and isinstance(m["major"], bool)
            assert m["ui"] is None or re.fullmatch(r"D\d{6,9}", m["ui"]), m
            for q in m.get("qualifiers", []):
                assert q["name"] and (q["ui"] is None or re.fullmatch(r"Q\d{6,9}", q["ui"])), q


def test_only_the_fifteen_label_ids_are_used(sets: dict[str, list[dict[str, Any]]]) -> None:
    used = {t for recs in sets.values() for r in recs for t in r["gold_topics"]}
    assert used <= LABEL_IDS, used - LABEL_IDS
    assert used == LABEL_IDS, f"labels never used: {LABEL_IDS - used}"


def test_no_record_repeats_a_label(sets: dict[str, list[dict[str, Any]]]) -> None:
    for recs in sets.values():
        for r in recs:
            assert len(r["gold_topics"]) == len(set(r["gold_topics"])), r["title"]


def test_non_lupus_papers_have_no_topics_and_lupus_papers_have_some(
    sets: dict[str, list[dict[str, Any]]],
) -> None:
    for recs in sets.values():
        for r in recs:
            if r["gold_is_lupus"]:
                assert r["gold_topics"], f"lupus paper without topics: {r['title']}"
            else:
                assert r["gold_topics"] == [], f"non-lupus paper with topics: {r['title']}"


@pytest.mark.parametrize("split", SPLITS)
def test_every_label_has_enough_positives_in_each_split(split: str) -> None:
    counts = Counter(t for r in _load(split) for t in r["gold_topics"])
    short = {lab: counts[lab] for lab in LABEL_IDS if counts[lab] < MIN_POSITIVES_PER_SPLIT}
    assert not short, f"{split}: labels with fewer than {MIN_POSITIVES_PER_SPLIT} positives: {short}"


@pytest.mark.parametrize("split", SPLITS)
def test_each_split_has_both_lupus_and_non_lupus_papers(split: str) -> None:
    kinds = Counter(r["gold_is_lupus"] for r in _load(split))
    assert kinds[True] >= 30 and kinds[False] >= 20, kinds


def _title_key(title: str) -> str:
    # Punctuation and case differences do not make two titles different papers.
    return re.sub(r"\W+", " ", title).strip().casefold()


def test_no_duplicate_titles_within_or_across_splits(sets: dict[str, list[dict[str, Any]]]) -> None:
    titles = Counter(
        re.sub(r"\W+", " ", r["title"]).strip().casefold() for recs in sets.values() for r in recs
    )
    dupes = [t for t, n in titles.items() if n > 1]
    assert not dupes, dupes


def test_no_duplicate_source_keys(sets: dict[str, list[dict[str, Any]]]) -> None:
    keys = Counter(r["source_key"] for recs in sets.values() for r in recs)
    assert not [k for k, n in keys.items() if n > 1]


def test_the_set_is_large_enough(sets: dict[str, list[dict[str, Any]]]) -> None:
    assert sum(len(recs) for recs in sets.values()) >= MIN_PAPERS


def test_provenance_is_real_or_constructed_and_real_records_exist(
    sets: dict[str, list[dict[str, Any]]],
) -> None:
    kinds: Counter[str] = Counter()
    for recs in sets.values():
        for r in recs:
            assert r["provenance"] == "constructed" or r["provenance"].startswith("real: "), r["provenance"]
            kinds["real" if r["provenance"].startswith("real: ") else "constructed"] += 1
    assert kinds["real"] >= 30 and kinds["constructed"] >= 150, kinds


# Each trap named in the guidelines (section 2.2) must appear among the negatives several times,
# so the relevance decision is measured on it and not on one lucky example.
TRAPS = {
    "lupus vulgaris": r"lupus vulgaris",
    "lupus pernio": r"lupus pernio",
    "Canis lupus": r"canis lupus",
    "St. Louis encephalitis": r"st\.? louis encephalitis",
    "slit-lamp SLE": r"slit[- ]lamp",
    "lupus anticoagulant without lupus": r"lupus anticoagulant",
    "lupus only excluded": r"exclud|not eligible|were not included",
    "lupus only as a comparison": r"control|compared with",
}


@pytest.mark.parametrize("trap", sorted(TRAPS))
def test_each_trap_type_appears_among_negatives_at_least_three_times(
    trap: str, sets: dict[str, list[dict[str, Any]]]
) -> None:
    pattern = re.compile(TRAPS[trap], re.IGNORECASE)
    hits = [
        r
        for recs in sets.values()
        for r in recs
        if not r["gold_is_lupus"]
        and re.search(r"lupus|\bSLE\b", r["title"] + " " + r["abstract"], re.IGNORECASE)
        and pattern.search(r["title"] + " " + r["abstract"])
    ]
    assert len(hits) >= 3, f"{trap}: {len(hits)} negatives"


def test_negatives_that_mention_lupus_explain_why_in_their_note(
    sets: dict[str, list[dict[str, Any]]],
) -> None:
    for recs in sets.values():
        for r in recs:
            text = r["title"] + " " + r["abstract"]
            if not r["gold_is_lupus"] and re.search(r"lupus|\bSLE\b", text, re.IGNORECASE):
                assert r["note"].strip(), r["title"]


def test_every_record_has_a_frozen_split_matching_its_file(sets: dict[str, list[dict[str, Any]]]) -> None:
    frozen = {}
    for line in (LABELLED / "source" / "splits.tsv").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, split = line.split("\t")
            frozen[key] = split
    for split, recs in sets.items():
        for r in recs:
            assert frozen.get(r["source_key"]) == split, r["source_key"]


def _builder() -> Any:
    script = REPO / "scripts" / "build_labelled_set.py"
    spec = importlib.util.spec_from_file_location("build_labelled_set", script)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_structured_abstracts_get_sections_and_unstructured_ones_none() -> None:
    sections_of = _builder().sections_of
    got = sections_of("Background: Why. METHODS AND RESULTS: We did it. CONCLUSIONS: So.")
    assert [(s["label"], s["category"], s["text"]) for s in got] == [
        ("Background", "BACKGROUND", "Why."),
        ("METHODS AND RESULTS", "METHODS", "We did it."),
        ("CONCLUSIONS", "CONCLUSIONS", "So."),
    ]
    # A colon after an abbreviation mid-text is not a section; nor is prose without labels.
    assert sections_of("Patients with SLE: a cohort. Results were good.") == []
    assert sections_of("Lupus is common. RESULTS: late label only.") == []


def test_committed_files_are_what_the_build_script_produces() -> None:
    dev, test, problems = _builder().build()
    assert problems == []
    assert dev == _load("dev")
    assert test == _load("test")
