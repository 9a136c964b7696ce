"""Build the real-paper labelled set: 224 real PubMed lupus candidates, labelled twice, adjudicated.

The records and both blind annotations are copied verbatim (with their provenance) under
``include/lupus_alerts/data/labelled/real/source/``; see ``SOURCES.md`` there. This script turns
them into the labelled files the classifier is tuned and measured on:

``split``
    Splits the 224 records into a development part and a frozen test part, once, and writes
    ``real/splits.tsv``. Test fraction one third, seed ``SEED``, iterative stratification
    (``build_labelled_set.stratified_split``) over the labels either annotator gave plus a
    "not lupus" stratum, so that the split needs no adjudicated label and every label with
    three or more papers has positives on both sides. The records that issue 13 names (and the
    ones the relevance tests quote) are put in dev first, because development has read them.
    An existing ``splits.tsv`` is never rewritten: a record that moved from test to dev would
    leak (``split`` refuses unless new records appear, and then only assigns those).

``build`` (the default)
    Reads the records, both annotations and ``real/adjudication.jsonl`` (one decision, with its
    reason, for every record the annotators labelled differently), checks that every
    disagreement has a decision and every decision a disagreement, and writes ``real/dev.jsonl``
    and ``real/test.jsonl`` in the paper schema with ``gold_is_lupus``, ``gold_topics``,
    ``provenance``, ``note`` and ``annotations`` (both annotators' labellings). ``--check``
    writes nothing and fails if the committed files differ.

Usage::

    .venv/bin/python scripts/build_real_set.py split
    .venv/bin/python scripts/build_real_set.py build [--check]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_labelled_set import LABELS, stratified_split, validate, write_jsonl

REPO = Path(__file__).resolve().parent.parent
REAL = REPO / "include" / "lupus_alerts" / "data" / "labelled" / "real"
SOURCE = REAL / "source"
SPLITS = REAL / "splits.tsv"
ADJUDICATION = REAL / "adjudication.jsonl"
SEED = 20261205
TEST_FRACTION = 1 / 3
PROVENANCE = (
    "real: PubMed record as collected by the public GitHub project DY-bucm/rheumatology-frontier "
    "(data/items.json, up to commit a34362f05792f3658ce55720cbc4ae931aa049d6), via "
    "/work/shared/real-papers/lupus_dev_pool.jsonl; PMID {pmid}"
)
# Records development reads on purpose, so they cannot be test records: the PMIDs issue 13
# quotes as error patterns, and the real texts the relevance edge-case tests are written on.
FORCED_DEV = {
    "42371446": "issue 13: SLE and systemic sclerosis overlap in the title (relevance test)",
    "42362560": "issue 13: dermatomyositis study with a cutaneous-lupus comparator (relevance test)",
    "42593301": "issue 13: malar rash 'clinical, serological, and therapeutic associations'",
    "42479374": "issue 13: risk factors for renal relapse got diagnostics",
    "42393808": "issue 13: 'fatigue' triggered epidemiology",
    "42540418": "issue 13: the label cap dropped neuropsychiatric",
    "42433136": "issue 13: obstetric APS cohort where SLE is one predictor (relevance test)",
    "42609361": "relevance test: lymphoma 'masquerading as' SLE, lupus ruled out",
}


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_sources() -> tuple[list[dict[str, Any]], dict[str, dict], dict[str, dict]]:
    """The 224 records (file order) and each annotator's labelling by PMID."""
    records = read_jsonl(SOURCE / "records.jsonl")
    a1 = {r["pmid"]: r for r in read_jsonl(SOURCE / "annotator1.jsonl")}
    a2 = {r["pmid"]: r for r in read_jsonl(SOURCE / "annotator2.jsonl")}
    return records, a1, a2


def labelling(ann: dict[str, Any]) -> dict[str, Any]:
    """An annotation reduced to what is compared: is_lupus and the set of topics (sorted)."""
    return {"is_lupus": bool(ann["is_lupus"]), "topics": sorted(ann["topics"])}


def make_split(records: list[dict[str, Any]], a1: dict, a2: dict) -> dict[str, str]:
    """pmid -> "dev" | "test" (see the module docstring)."""
    strata_recs = []
    for r in records:
        p = r["pmid"]
        topics = sorted(set(a1[p]["topics"]) | set(a2[p]["topics"]))
        if not (a1[p]["is_lupus"] and a2[p]["is_lupus"]):
            topics.append("__negative__")
        strata_recs.append({"gold_topics": topics})
    free = [i for i, r in enumerate(records) if r["pmid"] not in FORCED_DEV]
    dev_share = (len(records) * (1 - TEST_FRACTION) - len(FORCED_DEV)) / len(free)
    d, _t = stratified_split([strata_recs[i] for i in free], random.Random(SEED), dev_share)
    dev = {records[free[i]]["pmid"] for i in d} | set(FORCED_DEV)
    return {r["pmid"]: "dev" if r["pmid"] in dev else "test" for r in records}


def load_splits() -> dict[str, str]:
    out = {}
    if SPLITS.exists():
        for line in SPLITS.read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.startswith("#"):
                pmid, split = line.split("\t")
                out[pmid] = split.strip()
    return out


def build(
    records: list[dict[str, Any]], a1: dict, a2: dict, decisions: dict[str, dict], splits: dict[str, str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """(dev, test, problems)."""
    problems: list[str] = []
    dev: list[dict[str, Any]] = []
    test: list[dict[str, Any]] = []
    for r in records:
        p = r["pmid"]
        l1, l2 = labelling(a1[p]), labelling(a2[p])
        d = decisions.get(p)
        if l1 == l2:
            if d is not None:
                problems.append(f"{p}: a decision where the annotators agree")
            gold, note = l1, a1[p].get("note") or ""
        else:
            if d is None:
                problems.append(f"{p}: annotators differ and there is no decision")
                continue
            if labelling(d["annotator1"]) != l1 or labelling(d["annotator2"]) != l2:
                problems.append(f"{p}: the decision quotes labellings that differ from the annotations")
            gold = labelling(d["decision"])
            note = f"adjudicated: {d['reason']}"
        rec = {
            "source": "pubmed",
            "source_key": p,
            "pmid": p,
            "doi": r.get("doi"),
            "title": r["title"],
            "abstract": r.get("abstract") or "",
            "abstract_sections": [],
            "journal": None,
            "publication_types": [],
            "mesh": [],
            "keywords": [],
            "gold_is_lupus": gold["is_lupus"],
            "gold_topics": [lab for lab in LABELS if lab in gold["topics"]],
            "provenance": PROVENANCE.format(pmid=p),
            "note": note,
            "annotations": {"annotator1": l1, "annotator2": l2},
            "study_type_by_source": r.get("study_type_by_source"),
        }
        problems += validate(rec, p)
        split = splits.get(p)
        if split not in ("dev", "test"):
            problems.append(f"{p}: no split in {SPLITS.name}")
            continue
        (dev if split == "dev" else test).append(rec)
    for p in decisions:
        if p not in a1:
            problems.append(f"{p}: a decision for an unknown record")
    return dev, test, problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd")
    sub.add_parser("split", help="make the frozen dev/test split (once)")
    bd = sub.add_parser("build", help="write real/dev.jsonl and real/test.jsonl")
    bd.add_argument("--check", action="store_true", help="write nothing; fail if the files differ")
    args = ap.parse_args(argv)
    records, a1, a2 = load_sources()
    if args.cmd == "split":
        frozen = load_splits()
        fresh = make_split(records, a1, a2)
        new = {p: s for p, s in fresh.items() if p not in frozen}
        if not new:
            print(f"{SPLITS} is frozen and covers every record: nothing to do")
            return 0
        header = "" if frozen else "# pmid\tsplit  (frozen: never moves; see scripts/build_real_set.py)\n"
        with SPLITS.open("a", encoding="utf-8") as f:
            f.write(header + "".join(f"{p}\t{s}\n" for p, s in new.items()))
        n_test = sum(s == "test" for s in new.values())
        print(f"assigned {len(new)} records: {len(new) - n_test} dev, {n_test} test")
        return 0
    decisions = {d["pmid"]: d for d in read_jsonl(ADJUDICATION)} if ADJUDICATION.exists() else {}
    dev, test, problems = build(records, a1, a2, decisions, load_splits())
    for p in problems:
        print("PROBLEM", p, file=sys.stderr)
    if problems:
        return 1
    for name, recs in (("dev", dev), ("test", test)):
        n_lupus = sum(r["gold_is_lupus"] for r in recs)
        n_labels = sum(len(r["gold_topics"]) for r in recs)
        print(f"{name}: {len(recs)} papers, {n_lupus} lupus, {n_labels} labels")
    if args.check:
        same = all(
            (REAL / f"{n}.jsonl").exists()
            and (REAL / f"{n}.jsonl").read_text(encoding="utf-8")
            == "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs)
            for n, recs in (("dev", dev), ("test", test))
        )
        print("real set reproduced" if same else "real/dev.jsonl or real/test.jsonl differs from a build")
        return 0 if same else 1
    write_jsonl(REAL / "dev.jsonl", dev)
    write_jsonl(REAL / "test.jsonl", test)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
