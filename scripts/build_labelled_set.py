"""Build the labelled dev/test sets for the subspecialty classifier.

Two steps, both reproducible:

``extract``
    Reads the real PubMed records chosen below (``REAL_PMIDS``) out of the shared PubMed XML
    fixture and writes them, faithfully, to ``source/real_pubmed.jsonl`` with their gold labels.
    Only needed again if the choice of real records changes; its output is committed.

``build`` (the default)
    Reads every source file under ``include/lupus_alerts/data/labelled/source/`` (the extracted
    real records, the seed papers and the constructed examples), validates them against the
    annotation guidelines' label set, splits each source file into dev and test with a fixed
    seed (stratified by label, see ``stratified_split``), and writes ``dev.jsonl`` and
    ``test.jsonl`` in the paper schema plus ``gold_is_lupus``, ``gold_topics``, ``provenance``
    and ``note``.

The split is done per source file, and every assignment, once made, is frozen in
``source/splits.tsv``: a record never moves between dev and test when labels are corrected or new
source files are added (the classifier is tuned on dev only; moving records would leak). Only
records not yet in ``splits.tsv`` are split, stratified, with the fixed seed; ``build --freeze``
appends their assignments.

Usage::

    .venv/bin/python scripts/build_labelled_set.py extract [--xml PATH]
    .venv/bin/python scripts/build_labelled_set.py build [--check | --dev-only] [--freeze]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
LABELLED = REPO / "include" / "lupus_alerts" / "data" / "labelled"
SOURCE = LABELLED / "source"
Records = list[dict[str, Any]]
SPLITS_FILE = SOURCE / "splits.tsv"
DEFAULT_XML = REPO / "tests" / "fixtures" / "pubmed" / "fatcat_pubmedsample_2019.xml"
SEED = 20261127
DEV_FRACTION = 0.54

LABELS = (
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
)

# MeSH descriptor and qualifier unique identifiers we are sure of. A constructed record naming a
# descriptor not listed here gets ``ui: null`` rather than a guessed identifier.
MESH_UI = {
    "Lupus Erythematosus, Systemic": "D008180",
    "Lupus Nephritis": "D008181",
    "Lupus Erythematosus, Cutaneous": "D008178",
    "Lupus Erythematosus, Discoid": "D008179",
    "Lupus Vasculitis, Central Nervous System": "D020945",
    "Antiphospholipid Syndrome": "D016736",
    "Humans": "D006801",
    "Female": "D005260",
    "Male": "D008297",
    "Adolescent": "D000293",
    "Child": "D002648",
    "Adult": "D000328",
    "Middle Aged": "D008875",
    "Aged": "D000368",
    "Pregnancy": "D011247",
    "Hydroxychloroquine": "D006886",
    "Rituximab": "D000069283",
    "Mycophenolic Acid": "D009173",
    "Cyclophosphamide": "D003520",
    "Sarcoidosis": "D012507",
    "Animals": "D000818",
    "Mice": "D051379",
    "Double-Blind Method": "D004311",
    "Treatment Outcome": "D016896",
    "Risk Factors": "D012307",
    "Retrospective Studies": "D012189",
    "Prospective Studies": "D011446",
    "Cohort Studies": "D015331",
    "Pregnancy Complications": "D011248",
    "Infant, Newborn": "D007231",
    "Heart Block": "D006327",
    "Lung Diseases, Interstitial": "D017563",
    "Herpes Zoster": "D006562",
    "Vaccination": "D014611",
    "Genome-Wide Association Study": "D055106",
    "Polymorphism, Single Nucleotide": "D020641",
    "Disease Models, Animal": "D004195",
    "Biomarkers": "D015415",
    "Severity of Illness Index": "D012720",
    "Incidence": "D015994",
    "Prevalence": "D015995",
    "Thrombosis": "D013927",
    "Anticoagulants": "D000925",
    "Cognitive Dysfunction": "D060825",
    "Tuberculosis, Cutaneous": "D014376",
}
QUALIFIER_UI = {
    "drug therapy": "Q000188",
    "diagnosis": "Q000175",
    "epidemiology": "Q000453",
    "genetics": "Q000235",
    "immunology": "Q000276",
    "complications": "Q000150",
    "pathology": "Q000473",
    "therapy": "Q000628",
    "etiology": "Q000209",
    "chemically induced": "Q000139",
    "adverse effects": "Q000009",
    "therapeutic use": "Q000627",
    "mortality": "Q000401",
    "blood": "Q000097",
}

# (PMID, is_lupus, topics, note) for the real records taken from the PubMed fixture. The only
# lupus record in the sample is the SELENA hormone-replacement trial; the rest are negatives,
# chosen to sit near the labels' subjects (kidney, skin, heart, immunology, pregnancy, trials).
REAL_PMIDS: list[tuple[str, bool, list[str], str]] = [
    (
        "15968009",
        True,
        ["therapeutics", "pregnancy"],
        "SELENA HRT trial in postmenopausal SLE: a randomised treatment trial (therapeutics); "
        "menopausal hormone therapy counts as reproductive health (guidelines: pregnancy label). "
        "Lupus anticoagulant/aCL appear only in the limitations, so no hematology.",
    ),
    ("18719013", False, [], "HRT randomised trial in postmenopausal women without lupus: near-miss"),
    ("27190381", False, [], "Kidney function in older adults: nephrology subject, no lupus"),
    ("11238657", False, [], "Lung macrophage immunology, no lupus"),
    ("9394824", False, [], "Intestinal plasma cell immunology, no lupus"),
    ("8941094", False, [], "Cardiology imaging, no lupus"),
    ("9626910", False, [], "HCV and heart disease, no lupus"),
    ("11279676", False, [], "Caesarean section review (pregnancy subject), no lupus"),
    ("14594616", False, [], "Epidermal nevus (dermatology subject), no lupus"),
    ("14668030", False, [], "Platelets in Gaucher disease (haematology subject), no lupus"),
    ("27763809", False, [], "Measles antibody titres in immunoglobulin products (vaccination), no lupus"),
    ("11543891", False, [], "HLA genetics of a population, no lupus"),
    ("29635139", False, [], "Juvenile idiopathic arthritis knee imaging (paediatric rheumatology), no lupus"),
    ("9627170", False, [], "Sepsis outcome, no lupus"),
    ("17059514", False, [], "Crohn's disease maintenance trial, no lupus"),
    ("9110943", False, [], "Neck disorders meta-analysis (musculoskeletal), no lupus"),
    ("9575322", False, [], "Lumbar spinal stenosis (musculoskeletal), no lupus"),
    ("10972993", False, [], "BRCA expression in ovarian cancer (genetics), no lupus"),
    ("11524736", False, [], "FBN1 mutations in Marfan syndrome (genetics), no lupus"),
    ("17713168", False, [], "HIV drug resistance cohort (infection), no lupus"),
    ("9861576", False, [], "Cardiac effects of SSRIs in depression (neuropsychiatric + cardiac), no lupus"),
    ("9885794", False, [], "Antipsychotic pharmacology in a psychosis model, no lupus"),
    ("11441930", False, [], "Quality of life during chemotherapy, no lupus"),
    ("28647898", False, [], "Respiratory diphtheria from a companion dog (infection), no lupus"),
    ("10331749", False, [], "Lung function in older individuals (pulmonary), no lupus"),
    ("8655018", False, [], "Fetal growth and adult disease (pregnancy/epidemiology), no lupus"),
    ("11966386", False, [], "Bethesda cervical cytology terminology (diagnostics), no lupus"),
    ("17926191", False, [], "AML cytogenetics and outcome (haematology), no lupus"),
    ("11034741", False, [], "Parent-training programmes for maternal psychosocial health, no lupus"),
]


# --------------------------------------------------------------------------------------------
# extract


def _text(el: Any) -> str:
    return re.sub(r"\s+", " ", "".join(el.itertext())).strip() if el is not None else ""


def extract_real(xml_path: Path) -> list[dict[str, Any]]:
    """Pull the chosen PMIDs out of a PubMed XML file into labelled paper-schema records."""
    from lxml import etree  # only this step needs lxml

    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    root = etree.parse(str(xml_path), parser).getroot()
    wanted = {pmid: (is_lupus, topics, note) for pmid, is_lupus, topics, note in REAL_PMIDS}
    out: list[dict[str, Any]] = []
    for art in root.iter("PubmedArticle"):
        pmid = art.findtext("MedlineCitation/PMID")
        if pmid not in wanted:
            continue
        is_lupus, topics, note = wanted[pmid]
        sections = []
        for at in art.findall("MedlineCitation/Article/Abstract/AbstractText"):
            sections.append(
                {"text": _text(at), "label": at.get("Label") or "", "category": at.get("NlmCategory") or ""}
            )
        abstract = " ".join(f"{s['label']}: {s['text']}" if s["label"] else s["text"] for s in sections)
        mesh = []
        for mh in art.findall("MedlineCitation/MeshHeadingList/MeshHeading"):
            d = mh.find("DescriptorName")
            mesh.append(
                {
                    "descriptor": _text(d),
                    "ui": d.get("UI"),
                    "major": d.get("MajorTopicYN") == "Y",
                    "qualifiers": [
                        {"name": _text(q), "ui": q.get("UI"), "major": q.get("MajorTopicYN") == "Y"}
                        for q in mh.findall("QualifierName")
                    ],
                }
            )
        doi = None
        for aid in art.findall("PubmedData/ArticleIdList/ArticleId"):
            if aid.get("IdType") == "doi":
                doi = (aid.text or "").strip().lower() or None
        out.append(
            {
                "source": "pubmed",
                "source_key": pmid,
                "pmid": pmid,
                "doi": doi,
                "title": _text(art.find("MedlineCitation/Article/ArticleTitle")),
                "abstract": abstract,
                "abstract_sections": sections if any(s["label"] for s in sections) else [],
                "journal": _text(art.find("MedlineCitation/Article/Journal/Title")) or None,
                "publication_types": [
                    _text(p)
                    for p in art.findall("MedlineCitation/Article/PublicationTypeList/PublicationType")
                ],
                "mesh": mesh,
                "keywords": [_text(k) for k in art.findall("MedlineCitation/KeywordList/Keyword")],
                "gold_is_lupus": is_lupus,
                "gold_topics": topics,
                "provenance": f"real: PubMed fixture {xml_path.name} (fatcat pubmedsample_2019), PMID {pmid}",
                "note": note,
            }
        )
    return out


# --------------------------------------------------------------------------------------------
# build

# Upper- or title-case section labels ("RESULTS:", "Results:"); only known labels count.
_SECTION_RE = re.compile(r"(?:^|(?<=\s))([A-Z][A-Za-z &/]{2,40}):\s")
_CATEGORY = {
    "BACKGROUND": "BACKGROUND",
    "INTRODUCTION": "BACKGROUND",
    "CONTEXT": "BACKGROUND",
    "OBJECTIVE": "OBJECTIVE",
    "OBJECTIVES": "OBJECTIVE",
    "AIM": "OBJECTIVE",
    "AIMS": "OBJECTIVE",
    "PURPOSE": "OBJECTIVE",
    "METHODS": "METHODS",
    "DESIGN": "METHODS",
    "PATIENTS AND METHODS": "METHODS",
    "PATIENTS": "METHODS",
    "PARTICIPANTS": "METHODS",
    "SETTING": "METHODS",
    "MEASUREMENTS": "METHODS",
    "STUDY DESIGN": "METHODS",
    "METHODS AND RESULTS": "METHODS",
    "CASE PRESENTATION": "METHODS",
    "CASE REPORT": "METHODS",
    "FINDINGS": "RESULTS",
    "RESULTS": "RESULTS",
    "CONCLUSION": "CONCLUSIONS",
    "CONCLUSIONS": "CONCLUSIONS",
    "INTERPRETATION": "CONCLUSIONS",
    "DISCUSSION": "CONCLUSIONS",
}


def sections_of(abstract: str) -> list[dict[str, str]]:
    """Split a "LABEL: text LABEL: text" abstract into sections; [] when it is unstructured."""
    marks = [m for m in _SECTION_RE.finditer(abstract) if m.group(1).strip().upper() in _CATEGORY]
    if not marks or marks[0].start() != 0:
        return []
    out = []
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(abstract)
        label = m.group(1).strip()
        out.append(
            {"text": abstract[m.end() : end].strip(), "label": label, "category": _CATEGORY[label.upper()]}
        )
    return out


def _mesh(spec: str) -> dict[str, Any]:
    """'*Lupus Nephritis/drug therapy*' -> a MeSH heading (leading * = major descriptor)."""
    major = spec.startswith("*")
    parts = spec.lstrip("*").split("/")
    descriptor = parts[0].strip()
    quals = []
    for q in parts[1:]:
        qmajor = q.endswith("*")
        name = q.rstrip("*").strip()
        quals.append({"name": name, "ui": QUALIFIER_UI.get(name), "major": qmajor})
    return {"descriptor": descriptor, "ui": MESH_UI.get(descriptor), "major": major, "qualifiers": quals}


def from_source(item: dict[str, Any], file_stem: str) -> dict[str, Any]:
    """Turn one YAML source item into a labelled paper-schema record."""
    abstract = re.sub(r"\s+", " ", item.get("abstract", "")).strip()
    is_pubmed = bool(item.get("mesh")) or item.get("style") == "pubmed"
    key = f"{file_stem}:{item['id']}"
    rec: dict[str, Any] = {
        "source": "pubmed" if is_pubmed else f"feed:{item.get('feed', 'constructed')}",
        "source_key": item.get("pmid") or f"constructed:{key}",
        "pmid": item.get("pmid"),
        "doi": item.get("doi"),
        "title": re.sub(r"\s+", " ", item["title"]).strip(),
        "abstract": abstract,
        "abstract_sections": sections_of(abstract),
        "journal": item.get("journal"),
        "publication_types": list(item.get("ptypes", [])),
        "mesh": [_mesh(m) for m in item.get("mesh", [])],
        "keywords": list(item.get("keywords", [])),
        "gold_is_lupus": bool(item["lupus"]),
        "gold_topics": list(item.get("topics", [])),
        "provenance": item.get("provenance", "constructed"),
        "note": item.get("note", ""),
    }
    return rec


def validate(rec: dict[str, Any], where: str) -> list[str]:
    """Problems with one record (empty when it follows the guidelines' formal rules)."""
    problems = []
    for fld in ("source", "source_key", "title", "abstract", "provenance"):
        if not isinstance(rec.get(fld), str) or (fld != "abstract" and not rec[fld]):
            problems.append(f"{where}: missing {fld}")
    bad = [t for t in rec["gold_topics"] if t not in LABELS]
    if bad:
        problems.append(f"{where}: unknown labels {bad}")
    if len(set(rec["gold_topics"])) != len(rec["gold_topics"]):
        problems.append(f"{where}: duplicate labels")
    if not rec["gold_is_lupus"] and rec["gold_topics"]:
        problems.append(f"{where}: non-lupus paper with topics")
    if rec["gold_is_lupus"] and not rec["gold_topics"]:
        problems.append(f"{where}: lupus paper without topics")
    if not (rec["provenance"] == "constructed" or rec["provenance"].startswith("real: ")):
        problems.append(f"{where}: provenance must be 'constructed' or 'real: ...'")
    return problems


def load_sources() -> dict[str, list[dict[str, Any]]]:
    """Every source file's records, keyed by file name, in a stable order."""
    out: dict[str, list[dict[str, Any]]] = {}
    real = SOURCE / "real_pubmed.jsonl"
    if real.exists():
        out[real.name] = [json.loads(line) for line in real.read_text().splitlines() if line.strip()]
    for path in sorted(SOURCE.glob("*.yaml")):
        items = yaml.safe_load(path.read_text()) or []
        out[path.name] = [from_source(it, path.stem) for it in items]
    return out


def stratified_split(
    records: list[dict[str, Any]], rng: random.Random, dev_fraction: float = DEV_FRACTION
) -> tuple[list[int], list[int]]:
    """Iterative stratification (Sechidis et al., 2011) of one source file into dev and test.

    Each record's strata are its topic labels, or a "not lupus" stratum. Records are taken
    rarest-stratum first; each goes to the split that lacks the most of that stratum relative
    to its target share, ties broken by overall size and then at random.
    """
    strata = [r["gold_topics"] or ["__negative__"] for r in records]
    totals = Counter(s for ss in strata for s in ss)
    fractions = {"dev": dev_fraction, "test": 1 - dev_fraction}
    want = {sp: {s: n * f for s, n in totals.items()} for sp, f in fractions.items()}
    want_n = {sp: len(records) * f for sp, f in fractions.items()}
    remaining = list(range(len(records)))
    rng.shuffle(remaining)
    chosen: dict[str, list[int]] = {"dev": [], "test": []}
    left = Counter(totals)
    while remaining:
        # The rarest stratum among records still to place decides the next batch of records.
        label = min((s for i in remaining for s in strata[i]), key=lambda s: (left[s], s))
        batch = [i for i in remaining if label in strata[i]]
        for i in batch:
            scores = {sp: (want[sp][label], want_n[sp], rng.random()) for sp in fractions}
            sp = max(scores, key=lambda k: scores[k])
            chosen[sp].append(i)
            want_n[sp] -= 1
            for s in strata[i]:
                want[sp][s] -= 1
                left[s] -= 1
            remaining.remove(i)
    return sorted(chosen["dev"]), sorted(chosen["test"])


def load_frozen_splits(path: Path = SPLITS_FILE) -> dict[str, str]:
    """source_key -> "dev" | "test" for every record whose split is already fixed."""
    if not path.exists():
        return {}
    out = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, split = line.split("\t")
            out[key] = split.strip()
    return out


def assign_splits(
    sources: dict[str, list[dict[str, Any]]], frozen: dict[str, str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Frozen records keep their split; the rest of each file is split by ``stratified_split``."""
    dev: list[dict[str, Any]] = []
    test: list[dict[str, Any]] = []
    for name, records in sources.items():
        new = [r for r in records if r["source_key"] not in frozen]
        # A per-file seed keeps earlier files' splits fixed when new files are added.
        file_seed = int(hashlib.sha256(f"{SEED}:{name}".encode()).hexdigest()[:12], 16)
        d, _ = stratified_split(new, random.Random(file_seed))
        new_dev = {new[i]["source_key"] for i in d}
        for r in records:
            split = frozen.get(r["source_key"]) or ("dev" if r["source_key"] in new_dev else "test")
            (dev if split == "dev" else test).append(r)
    return dev, test


def build(
    frozen: dict[str, str] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """Load, validate and split every source; return (dev, test, problems)."""
    problems: list[str] = []
    sources = load_sources()
    for name, records in sources.items():
        for i, rec in enumerate(records):
            problems += validate(rec, f"{name}[{i}]")
    frozen = load_frozen_splits() if frozen is None else frozen
    bad = {k: v for k, v in frozen.items() if v not in ("dev", "test")}
    problems += [f"splits.tsv: {k!r} has split {v!r}" for k, v in bad.items()]
    dev, test = assign_splits(sources, frozen)
    titles = Counter(r["title"].casefold() for r in dev + test)
    problems += [f"duplicate title: {t!r}" for t, n in titles.items() if n > 1]
    keys = Counter(r["source_key"] for r in dev + test)
    problems += [f"duplicate source_key: {k!r}" for k, n in keys.items() if n > 1]
    return dev, test, problems


def label_counts(records: list[dict[str, Any]]) -> Counter[str]:
    """Positives per label, plus counts of lupus and non-lupus papers."""
    c: Counter[str] = Counter()
    for r in records:
        c["lupus" if r["gold_is_lupus"] else "not lupus"] += 1
        c.update(r["gold_topics"])
    return c


GUIDELINES = REPO / "docs" / "annotation-guidelines.md"
COUNTS_START, COUNTS_END = "<!-- labelled:counts -->", "<!-- /labelled:counts -->"


def counts_markdown(dev: Records, test: Records) -> str:
    """The per-label, per-split table the guidelines document shows."""
    cd, ct = label_counts(dev), label_counts(test)
    rows = ["| label | dev | test |", "|---|---:|---:|"]
    rows += [f"| `{lab}` | {cd[lab]} | {ct[lab]} |" for lab in LABELS]
    rows += [f"| lupus papers | {cd['lupus']} | {ct['lupus']} |"]
    rows += [f"| not lupus | {cd['not lupus']} | {ct['not lupus']} |"]
    rows += [f"| **papers** | **{len(dev)}** | **{len(test)}** |"]
    real = sum(r["provenance"].startswith("real: ") for r in dev + test)
    rows += ["", f"{real} records are real, {len(dev) + len(test) - real} constructed."]
    return "\n".join(rows)


def update_guidelines(dev: Records, test: Records, path: Path = GUIDELINES) -> None:
    """Rewrite the counts section of the guidelines between its markers (if present)."""
    text = path.read_text(encoding="utf-8")
    if COUNTS_START not in text or COUNTS_END not in text:
        return
    head, rest = text.split(COUNTS_START, 1)
    _, tail = rest.split(COUNTS_END, 1)
    body = f"{COUNTS_START}\n{counts_markdown(dev, test)}\n{COUNTS_END}"
    path.write_text(head + body + tail, encoding="utf-8")


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    """One JSON object per line, keys in a stable order, non-ASCII kept readable."""
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd")
    ex = sub.add_parser("extract", help="extract the chosen real PubMed records")
    ex.add_argument("--xml", type=Path, default=DEFAULT_XML)
    bd = sub.add_parser("build", help="validate, split and write dev.jsonl / test.jsonl")
    bd.add_argument("--check", action="store_true", help="validate and print counts; write nothing")
    bd.add_argument("--dev-only", action="store_true", help="write dev.jsonl only")
    bd.add_argument("--freeze", action="store_true", help="record new records' splits in splits.tsv")
    args = ap.parse_args(argv)
    if args.cmd == "extract":
        recs = extract_real(args.xml)
        SOURCE.mkdir(parents=True, exist_ok=True)
        write_jsonl(SOURCE / "real_pubmed.jsonl", recs)
        print(f"extracted {len(recs)} records")
        return 0
    dev, test, problems = build()
    for p in problems:
        print("PROBLEM", p, file=sys.stderr)
    cd, ct = label_counts(dev), label_counts(test)
    print(f"{'label':18} {'dev':>5} {'test':>5}")
    for lab in (*LABELS, "lupus", "not lupus"):
        print(f"{lab:18} {cd[lab]:5d} {ct[lab]:5d}")
    print(f"{'total':18} {len(dev):5d} {len(test):5d}")
    if problems:
        return 1
    if getattr(args, "freeze", False):
        frozen = load_frozen_splits()
        added = [(r["source_key"], sp) for sp, recs in (("dev", dev), ("test", test)) for r in recs]
        added = [(k, sp) for k, sp in added if k not in frozen]
        with SPLITS_FILE.open("a") as f:
            f.writelines(f"{k}\t{sp}\n" for k, sp in added)
        print(f"froze {len(added)} new assignments")
    if not getattr(args, "check", False):
        write_jsonl(LABELLED / "dev.jsonl", dev)
        if not getattr(args, "dev_only", False):
            write_jsonl(LABELLED / "test.jsonl", test)
            update_guidelines(dev, test)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
