"""Subspecialty labels for lupus papers: multi-label, explainable, offline.

Each label in `data/taxonomy.yaml` lists weighted text cues, MeSH descriptors, publication
types and journal words. A paper's score for a label adds up what was found, weighted by where
it was found:

- the title counts double; abstract sentences count by section (objective and conclusions in
  full, results and methods about half, background less) or, unstructured, by place (the last
  sentence in full); negated mentions ("no renal involvement") and those in exclusion criteria
  ("patients with lupus nephritis were excluded") are ignored;
- MeSH descriptors count more when NLM marked them a major topic; qualifiers on a lupus
  descriptor ("Lupus Erythematosus, Systemic/drug therapy") point to a label too;
- repeated mentions of one cue add a little, not in proportion;
- study-design words ("randomised", "population-based") count in full in the methods, where
  authors state the design; a drug named in the title counts in full, and a list of drugs in
  the abstract about as much as its strongest member (background treatment).

The sum `raw` becomes a score `1 - exp(-raw)` in 0..1. Which labels a paper gets is decided
by the learned layer (`label_model`, fitted on real labelled papers) from each label's score
and where its cues were found (`LabelScore.features`); for a record with almost no abstract,
or a taxonomy without a fitted model, a label is given when its score reaches the label's
threshold (tuned on the dev split by `scripts/tune_classifier.py`, stored in
`data/classifier_thresholds.json`; `DEFAULT_THRESHOLD` otherwise). Whether the paper is about
lupus at all is `relevance.assess`; a paper that is not gets no labels. The title and abstract
are read up to `phrases.MAX_TITLE_CHARS` and `MAX_ABSTRACT_CHARS`.

Every label carries the evidence that produced it, phrased for a clinician, decisive cue
first: "'lupus nephritis' in the title", "MeSH Lupus Nephritis (major topic)".
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import compress, pairwise
from pathlib import Path
from typing import Any

import yaml

from lupus_alerts import relevance
from lupus_alerts.label_model import MIN_SENTENCES, MODEL_FILE, LabelModel, LabelModelError, load_label_model
from lupus_alerts.models import Classification, Paper, TopicLabel
from lupus_alerts.phrases import (
    EXCLUSION_SENTENCE,
    MAX_ABSTRACT_CHARS,
    MAX_TITLE_CHARS,
    NEGATION_WORDS,
    Doc,
    Hit,
    PhraseSet,
    TokenMemo,
    clip,
    is_negated,
    matched_text,
    phrase_words,
    tokens,
)

DATA_DIR = Path(__file__).parent / "data"
TAXONOMY_PATH = DATA_DIR / "taxonomy.yaml"
# The labelled sets (docs/annotation-guidelines.md; real/SOURCES.md for the real papers)
LABELLED_DIR = DATA_DIR / "labelled"
WRITTEN_DEV = LABELLED_DIR / "dev.jsonl"
WRITTEN_TEST = LABELLED_DIR / "test.jsonl"
REAL_DEV = LABELLED_DIR / "real" / "dev.jsonl"
REAL_TEST = LABELLED_DIR / "real" / "test.jsonl"
RHEUMATOLOGY_OTHER = LABELLED_DIR / "real" / "source" / "rheumatology_other.jsonl"
THRESHOLDS_FILE = "classifier_thresholds.json"

# Without a tuned artefact: the shared value the tuning lands on, which is what "weight 1.0 =
# enough on its own in the title" means (1 - exp(-2) = 0.86 passes, one weak cue does not).
DEFAULT_THRESHOLD = 0.8
TITLE_FACTOR = 2.0
KEYWORD_FACTOR = 1.0
JOURNAL_FACTOR = 1.0
MESH_MAJOR_FACTOR = 1.5
MESH_MINOR_FACTOR = 0.6
PUBTYPE_FACTOR = 1.0
QUALIFIER_MAJOR_FACTOR = 1.5
QUALIFIER_MINOR_FACTOR = 0.8
REPEAT_BONUS = 0.25  # each repeat of a cue adds a quarter of its weight...
REPEAT_CAP = 2  # ...for at most two repeats
# A label is earned by the paper's subject: what it set out to study (objective) and what it
# concludes. Background says what is known; methods and results hold inclusion criteria and
# findings among others, which do not make a subject (docs/annotation-guidelines.md 3.1-3.5).
SECTION_FACTORS = {
    "BACKGROUND": 0.4,
    "OBJECTIVE": 1.0,
    "METHODS": 0.5,
    "RESULTS": 0.6,
    "CONCLUSIONS": 1.0,
    "": 0.6,  # text before the first heading
}
# In an unstructured abstract the first and last sentences play objective and conclusion.
UNSTRUCTURED_FIRST = 0.7
UNSTRUCTURED_LAST = 1.0
UNSTRUCTURED_MIDDLE = 0.6
MAX_TOPICS = 3  # "most papers get one to three labels"
# Abstract section headings as authors write them, mapped to NLM's categories.
_HEADING_CATEGORY = {
    "background": "BACKGROUND",
    "introduction": "BACKGROUND",
    "context": "BACKGROUND",
    "rationale": "BACKGROUND",
    "objective": "OBJECTIVE",
    "objectives": "OBJECTIVE",
    "aim": "OBJECTIVE",
    "aims": "OBJECTIVE",
    "purpose": "OBJECTIVE",
    "methods": "METHODS",
    "method": "METHODS",
    "design": "METHODS",
    "patients and methods": "METHODS",
    "materials and methods": "METHODS",
    "setting": "METHODS",
    "patients": "METHODS",
    "participants": "METHODS",
    "interventions": "METHODS",
    "measurements": "METHODS",
    "main outcome measures": "METHODS",
    "results": "RESULTS",
    "findings": "RESULTS",
    "conclusion": "CONCLUSIONS",
    "conclusions": "CONCLUSIONS",
    "interpretation": "CONCLUSIONS",
}
_HEADING_WORDS = "|".join(sorted(map(re.escape, _HEADING_CATEGORY), key=len, reverse=True))
# A heading written inline opens the abstract or follows a sentence's stop ("... known. Methods:
# ..."). The stop is matched rather than looked behind for, so that the engine skips in C from
# stop to stop instead of trying the pattern at every character.
_HEADING_AT_START = re.compile(rf"({_HEADING_WORDS})\s*:\s*", re.I)
_INLINE_HEADING = re.compile(rf"[.!?](\s+)({_HEADING_WORDS})\s*:\s*", re.I)
# "a 16-year-old girl", "13-year-old", "a 9 year old boy": a child in a case report.
# The first digit is matched before the word boundary is checked behind it ("\b\d" in the
# other order), so that the engine skips in C from digit to digit.
_AGE = re.compile(r"(\d(?<!\w\d)\d?)[- ](?:year|yr)s?[- ](?:old\b|boy\b|girl\b)", re.I)
# On ASCII text ASCII digits and word characters are all there are, and testing a character
# range is cheaper than asking the Unicode database: each pattern over the title and abstract
# has an ASCII twin that finds the same matches there.
_AGE_ASCII = re.compile(_AGE.pattern, re.I | re.A)
# WHO INN stems of drug classes used in lupus: monoclonal antibodies (-mab), fusion proteins
# (-cept), kinase inhibitors (-tinib), mTOR/calcineurin inhibitors (-limus), thalidomide
# analogues and cereblon modulators (-domide). A word with one of these endings names a drug,
# so a paper about a new agent is recognised without a list.
DRUG_STEMS = (
    "mab",  # monoclonal antibodies
    "cept",  # receptor fusion proteins
    "tinib",  # kinase inhibitors (baricitinib, deucravacitinib)
    "limus",  # mTOR and calcineurin inhibitors
    "domide",  # thalidomide analogues, cereblon modulators (iberdomide)
    "zomib",  # proteasome inhibitors (bortezomib)
    "xaban",  # factor Xa inhibitors (rivaroxaban, apixaban)
    "parin",  # heparins (enoxaparin)
    "gliflozin",  # SGLT2 inhibitors
    "leucel",  # autologous cell products (CAR-T)
    "prazole",  # proton pump inhibitors (a classic cause of drug-induced SCLE)
    "sartan",  # angiotensin receptor blockers
    "dronate",  # bisphosphonates
)
DRUG_STEM_MIN_LEN = 7
NO_LABEL = ""  # the payload label of a not_cues phrase
# A cue lighter than this says little on its own ("urinary", "outcomes", "treatment"): it is
# quoted as evidence only when nothing heavier was found in the same place.
EVIDENCE_MIN_WEIGHT = 0.5
DRUG_STEM_WEIGHT = 0.5
DRUG_STEM_LABEL = "therapeutics"
NOT_DRUGS = frozenset({"concept", "concepts", "except", "accept", "intercept", "percept", "precept"})
# A drug named in the title is what the paper is about (guidelines 4.12: "a treatment named in
# a case report's title"), whatever its weight as a background mention in an abstract.
DRUG_TITLE_WEIGHT = 1.0
# Abstracts list the patients' treatment ("on hydroxychloroquine, mycophenolate and
# prednisone"): a list of drugs says no more about the subject than its strongest member, so
# every further drug adds only this fraction of its contribution.
DRUG_LIST_EXTRA = 0.25
# Study-design words ("a population-based cohort", "randomised, placebo-controlled") say what
# kind of paper this is, and they are written in the methods; there they count in full, unlike
# the methods' inclusion criteria and measurements. Background sentences keep their low factor
# (they describe earlier studies).
DESIGN_SECTION_FACTOR = 1.0
PAEDIATRIC_AGE_LIMIT = 18
DESIGN = "design"  # cue kinds (see Label.designs, Label.drugs)
DRUG = "drug"
AGE_WEIGHT = 1.0


class TaxonomyError(ValueError):
    """The taxonomy file is malformed (names the label and field at fault)."""


@dataclass(frozen=True, slots=True)
class Label:
    """One subspecialty label and its cues (see data/taxonomy.yaml for the fields)."""

    id: str
    name: str
    definition: str
    includes: tuple[str, ...]
    excludes: tuple[str, ...]
    mesh: tuple[tuple[str, str | None, float], ...]  # (descriptor, ui, weight)
    publication_types: dict[str, float]
    journals: dict[str, float]
    cues: dict[str, float]  # every text phrase, including the design words and drugs below
    abbreviations: dict[str, tuple[str, float]]  # abbreviation -> (meaning, weight)
    designs: frozenset[str] = frozenset()  # cues that name a study design
    drugs: frozenset[str] = frozenset()  # cues that name a treatment


@dataclass(slots=True)
class Taxonomy:
    """The labels in file order, MeSH qualifier hints, and the per-label thresholds."""

    labels: dict[str, Label]
    qualifiers: dict[str, tuple[str, float]]  # qualifier name (lower) -> (label, weight)
    thresholds: dict[str, float] = field(default_factory=dict)
    version: int = 1
    not_cues: tuple[str, ...] = ()  # other diseases' names that hold a cue word (no label)
    # the learned layer fitted for this taxonomy (data/label_model.json beside it), if any
    label_model: LabelModel | None = None

    @property
    def ids(self) -> list[str]:
        return list(self.labels)

    def threshold(self, label: str) -> float:
        return self.thresholds.get(label, DEFAULT_THRESHOLD)

    def display_name(self, label: str) -> str:
        return self.labels[label].name


def _req(d: dict[str, Any], key: str, where: str) -> Any:
    if key not in d:
        raise TaxonomyError(f"{where}: missing field {key!r}")
    return d[key]


def _read_taxonomy_file(path: Path) -> dict[str, Any]:
    """The taxonomy file's mapping, which must hold a mapping of `labels`."""
    try:
        # The C loader, when PyYAML was built with libyaml, reads the file ten times faster.
        data = yaml.load(
            path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        )
    except (OSError, yaml.YAMLError) as e:
        raise TaxonomyError(f"{path}: cannot read taxonomy: {e}") from e
    if not isinstance(data, dict) or not isinstance(data.get("labels"), dict):
        raise TaxonomyError(f"{path}: expected a mapping with 'labels'")
    return data


def _parse_label(path: Path, lid: Any, d: Any) -> Label:
    """One label's entry as a `Label`: design words and drugs are cues too, at their higher weight."""
    where = f"{path}: label {lid!r}"
    if not isinstance(d, dict):
        raise TaxonomyError(f"{where}: expected a mapping")
    mesh = []
    for m in d.get("mesh") or []:
        mesh.append((str(_req(m, "descriptor", where)), m.get("ui"), float(m.get("weight", 1.0))))
    abbrs = {}
    for abbr, a in (d.get("abbreviations") or {}).items():
        if not isinstance(a, dict):
            raise TaxonomyError(f"{where}: abbreviation {abbr!r} needs {{means, weight}}")
        abbrs[str(abbr)] = (
            str(_req(a, "means", f"{where} abbreviation {abbr!r}")),
            float(a.get("weight", 1.0)),
        )
    cues = {str(k): float(v) for k, v in (_req(d, "cues", where) or {}).items()}
    kinds: dict[str, set[str]] = {"designs": set(), "drugs": set()}
    for kind, names in kinds.items():
        for k, v in (d.get(kind) or {}).items():
            cues[str(k)] = max(float(v), cues.get(str(k), 0.0))
            names.add(str(k))
    return Label(
        id=str(lid),
        name=str(_req(d, "name", where)),
        definition=str(_req(d, "definition", where)),
        includes=tuple(d.get("includes") or ()),
        excludes=tuple(d.get("excludes") or ()),
        mesh=tuple(mesh),
        publication_types={str(k): float(v) for k, v in (d.get("publication_types") or {}).items()},
        journals={str(k): float(v) for k, v in (d.get("journals") or {}).items()},
        cues=cues,
        abbreviations=abbrs,
        designs=frozenset(kinds["designs"]),
        drugs=frozenset(kinds["drugs"]),
    )


def _parse_qualifiers(
    path: Path, data: dict[str, Any], labels: dict[str, Label]
) -> dict[str, tuple[str, float]]:
    """MeSH qualifier (lower case) -> (label, weight); each must point to a known label."""
    qualifiers: dict[str, tuple[str, float]] = {}
    for q, spec in (data.get("qualifiers") or {}).items():
        label = _req(spec, "label", f"{path}: qualifier {q!r}")
        if label not in labels:
            raise TaxonomyError(f"{path}: qualifier {q!r} points to unknown label {label!r}")
        qualifiers[str(q).lower()] = (label, float(spec.get("weight", 0.5)))
    return qualifiers


def _read_thresholds(path: Path, labels: dict[str, Label]) -> dict[str, float]:
    """The tuned thresholds beside the taxonomy, for its labels only; none when there is no file."""
    thresholds: dict[str, float] = {}
    tpath = path.parent / THRESHOLDS_FILE
    if tpath.exists():
        try:
            tdata = json.loads(tpath.read_text(encoding="utf-8"))
            thresholds = {k: float(v) for k, v in tdata["thresholds"].items() if k in labels}
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise TaxonomyError(f"{tpath}: cannot read thresholds: {e}") from e
    return thresholds


def _read_model(path: Path, labels: dict[str, Label]) -> LabelModel | None:
    """The label model beside the taxonomy, if any; it must know exactly the taxonomy's labels."""
    model = None
    mpath = path.parent / MODEL_FILE
    if mpath.exists():
        try:
            model = load_label_model(mpath)
        except LabelModelError as e:
            raise TaxonomyError(str(e)) from e
        if set(model.labels) != set(labels):
            raise TaxonomyError(
                f"{mpath}: the label model knows labels {sorted(model.labels)}, the taxonomy "
                f"{sorted(labels)}; retrain with scripts/train_label_model.py or remove the file"
            )
    return model


def load_taxonomy(path: Path | None = None) -> Taxonomy:
    """Read the taxonomy YAML (default: the packaged one) and, beside it, tuned thresholds.

    Raises `TaxonomyError` naming the label and field when the file is malformed.
    """
    path = Path(path) if path else TAXONOMY_PATH
    data = _read_taxonomy_file(path)
    labels = {str(lid): _parse_label(path, lid, d) for lid, d in data["labels"].items()}
    qualifiers = _parse_qualifiers(path, data, labels)
    thresholds = _read_thresholds(path, labels)
    model = _read_model(path, labels)
    not_cues = data.get("not_cues") or []
    if not isinstance(not_cues, list) or not all(isinstance(p, str) for p in not_cues):
        raise TaxonomyError(f"{path}: 'not_cues' must be a list of phrases")
    return Taxonomy(
        labels=labels,
        qualifiers=qualifiers,
        thresholds=thresholds,
        version=int(data.get("version", 1)),
        not_cues=tuple(not_cues),
        label_model=model,
    )


@dataclass(slots=True)
class _Acc:
    """What was found for one label in one paper."""

    raw: float = 0.0
    # (source rank, contribution, evidence text): evidence lists the title first, then MeSH,
    # keywords, publication type, abstract, journal; within a source the largest first.
    parts: list[tuple[int, float, str]] = field(default_factory=list)
    # where the contributions came from (LOCATIONS), for the learned layer
    where: dict[str, float] = field(default_factory=dict)
    title_weight: float = 0.0  # the heaviest cue weight found in the title
    abstract_weight: float = 0.0  # ... and in the abstract
    sentences: set[int] = field(default_factory=set)  # abstract sentences with a cue
    cues: int = 0  # distinct cues in the abstract
    found: dict[str, set[str]] = field(default_factory=dict)  # cue -> where it was found
    title_at: int = -1  # the first title word of a cue of this label (-1: none)
    weak: set[str] = field(default_factory=set)  # evidence texts that quote only weak cues

    def add(self, where: str, c: float) -> None:
        self.where[where] = self.where.get(where, 0.0) + c


class _Accs(dict[str, _Acc]):
    """Each label's accumulator, made when something is first found for the label: a paper
    touches few of the fifteen labels, and the others' scores are all alike."""

    def __missing__(self, lid: str) -> _Acc:
        a = self[lid] = _Acc()
        return a


@dataclass(frozen=True, slots=True)
class _PaperContext:
    """What every label's features of one paper share."""

    top: float  # the highest raw score of any label
    first: int  # the first title word of any label's cue (-1: none)
    n_sent: int  # abstract sentences (at least 1)
    n_title: int  # title words (at least 1)
    features: dict[str, float]  # what kind of paper it is (`_paper_features`)


@dataclass(slots=True)
class LabelScore:
    """A label's score for one paper, whether or not it passed the threshold."""

    label: str
    score: float
    raw: float
    evidence: list[str]
    # what the learned layer reads (label_model.FEATURES); empty when not computed
    features: dict[str, float] = field(default_factory=dict)
    found: dict[str, set[str]] = field(default_factory=dict)  # text cue -> where it was found


def abstract_sections(paper: Paper) -> list[tuple[str, str]]:
    """The abstract as (NLM category, text) pieces: structured sections when the record has
    them, headings written inline ("Methods: ...") when it does not, else one piece. At most
    `MAX_ABSTRACT_CHARS` of text in all."""
    if paper.abstract_sections:
        out = []
        budget = MAX_ABSTRACT_CHARS
        for s in paper.abstract_sections:
            if budget <= 0:
                break
            cat = (s.category or "").upper()
            if cat not in SECTION_FACTORS or not cat:  # e.g. NLM's "UNASSIGNED"
                cat = _HEADING_CATEGORY.get((s.label or "").strip().lower(), "")
            text = clip(s.text or "", budget)
            budget -= len(text)
            out.append((cat if cat in SECTION_FACTORS else "", text))
        return out
    text = clip(paper.abstract or "", MAX_ABSTRACT_CHARS)
    headings = _inline_headings(text)
    if not headings:
        return [("", text)] if text else []
    out = []
    if headings[0][0] > 0:
        out.append(("", text[: headings[0][0]]))
    for k, (_start, heading, body) in enumerate(headings):
        end = headings[k + 1][0] if k + 1 < len(headings) else len(text)
        out.append((_HEADING_CATEGORY[heading.lower()], text[body:end]))
    return out


def _inline_headings(text: str) -> list[tuple[int, str, int]]:
    """Each heading written inline in `text`: where it starts (the spaces after the stop before
    it), the heading, and where the section's text starts."""
    if ":" not in text:
        return []  # every heading is followed by a colon
    out = []
    pos = 0
    if m := _HEADING_AT_START.match(text):
        out.append((0, m.group(1), m.end()))
        pos = m.end()
    # A heading's match ends in ':' or a space, never in a stop, so the next stop lies at or
    # after `pos` and no heading is missed by starting the search there.
    out += [(m.start(1), m.group(2), m.end()) for m in _INLINE_HEADING.finditer(text, pos)]
    return out


def _docs(paper: Paper) -> tuple[Doc, Doc]:
    """The title and the abstract (by section), tokenised once for relevance and labels."""
    title = Doc.from_text(clip(paper.title or "", MAX_TITLE_CHARS))
    return title, Doc.from_sections(abstract_sections(paper))


def _sentence_factors(doc: Doc) -> list[float]:
    """How much each abstract sentence counts, by its section or (unstructured) its place."""
    n = len(doc.sent_start)
    if any(doc.sent_labels):
        return [SECTION_FACTORS.get(lab, 1.0) for lab in doc.sent_labels]
    return [
        UNSTRUCTURED_LAST if s == n - 1 else UNSTRUCTURED_FIRST if s == 0 else UNSTRUCTURED_MIDDLE
        for s in range(n)
    ]


# Where a cue was found, for the learned layer (label_model): the title; in the abstract what
# the paper set out to do (objective), what it concluded, how (methods), what it found
# (results), what was known (background), elsewhere (other); and outside the text (meta:
# MeSH, keywords, publication type, journal, a patient's age).
LOCATIONS = (
    "title",
    "subtitle",  # after the title's first colon: "Malar rash in SLE: clinical, serological, ..."
    "objective",
    "conclusion",
    "methods",
    "results",
    "background",
    "other",
    "meta",
)
_LOCATION_FEATURES = tuple((f"at_{loc}", loc) for loc in LOCATIONS)  # label_model.LOCATION_FEATURES
_SECTION_LOCATION = {
    "OBJECTIVE": "objective",
    "CONCLUSIONS": "conclusion",
    "METHODS": "methods",
    "RESULTS": "results",
    "BACKGROUND": "background",
}
# An unstructured abstract's objective sentence says so in its first words: "This study aimed
# to ...", "To evaluate ...", "We report a ...", "Here we investigated ...".
_AIM_WORDS = frozenset(
    {"aim", "aims", "aimed", "objective", "objectives", "purpose", "sought", "hypothesized", "hypothesised"}
)
_AIM_VERBS = frozenset(
    {
        "investigate", "investigated", "evaluate", "evaluated", "assess", "assessed", "explore",
        "explored", "examine", "examined", "determine", "determined", "identify", "identified",
        "compare", "compared", "characterise", "characterize", "characterised", "characterized",
        "describe", "described", "elucidate", "report", "present", "review", "reviewed",
        "summarise", "summarize", "analyse", "analyze", "analysed", "analyzed", "studied",
    }
)  # fmt: skip
AIM_LEAD = 8  # the words of a sentence searched for an aim
_CONCLUDING_WORDS = frozenset(
    {"conclusion", "conclusions", "conclude", "concluded", "highlights", "underscores", "suggest", "suggests"}
)


def sentence_locations(doc: Doc) -> list[str]:
    """Each abstract sentence's location (see `LOCATIONS`): by its section when the abstract
    is structured; otherwise an aim in its first words makes it the objective, the last
    sentence (and the one before it when it concludes) the conclusion, the first the
    background."""
    n = len(doc.sent_start)
    if any(doc.sent_labels):
        return [_SECTION_LOCATION.get(lab, "other") for lab in doc.sent_labels]
    out = []
    for s in range(n):
        lead = doc.lower[doc.sent_start[s] : doc.sent_start[s] + AIM_LEAD]
        if (
            s < n - 1
            and s <= n // 2
            and (
                any(w in _AIM_WORDS for w in lead)
                or any(a in ("we", "to", "here", "study") and b in _AIM_VERBS for a, b in pairwise(lead))
            )
        ):
            out.append("objective")
        elif s == n - 1 or (s == n - 2 and any(w in _CONCLUDING_WORDS for w in lead)):
            out.append("conclusion")
        elif s == 0:
            out.append("background")
        else:
            out.append("other")
    return out


# "case report", "we describe a": found from the space after the first word, which the engine
# finds in C, with the first word checked behind it; "a 45-year-old", "6-month-old" from the
# first digit (see `_AGE`).
_CASE_REPORT_WORDS = re.compile(
    r" (?:(?<=\bcase )(?:report|series|presentation)\b"
    r"|(?<=\bwe )(?:report|describe|present) (?:a|an|the|two|three)\b)",
    re.I,
)
_CASE_REPORT_AGE = re.compile(r"\d(?<!\w\d)\d{0,2}[- ](?:year|month)s?[- ]old\b", re.I)
_CASE_REPORT_WORDS_ASCII = re.compile(_CASE_REPORT_WORDS.pattern, re.I | re.A)
_CASE_REPORT_AGE_ASCII = re.compile(_CASE_REPORT_AGE.pattern, re.I | re.A)
_REVIEW = re.compile(r"\b(?:review|meta-analys[ie]s|meta analys[ie]s|overview|perspective)\b", re.I)


def _paper_text(paper: Paper) -> str:
    """The title and abstract as read (see `MAX_TITLE_CHARS`), for the patterns over both."""
    return f"{clip(paper.title or '', MAX_TITLE_CHARS)} {clip(paper.abstract or '', MAX_ABSTRACT_CHARS)}"


def _is_case_report(text: str, lowered: str) -> bool:
    """`text` reads as a case report: "case report", "we describe a", "a 45-year-old".
    `lowered` is `text.lower()`: without "year" or "month" in it, no age can match (no other
    character matches these letters ignoring case), and the age pattern is not run."""
    ascii = text.isascii()
    if (_CASE_REPORT_WORDS_ASCII if ascii else _CASE_REPORT_WORDS).search(text):
        return True
    if "year" not in lowered and "month" not in lowered:
        return False
    return (_CASE_REPORT_AGE_ASCII if ascii else _CASE_REPORT_AGE).search(text) is not None


def _paper_features(paper: Paper, abstract_doc: Doc, text: str, lowered: str) -> dict[str, float]:
    """What kind of paper it is, as far as its words say: a case report, a review. `text` is
    `_paper_text(paper)`, `lowered` the same in lower case."""
    title = clip(paper.title or "", MAX_TITLE_CHARS)
    return {
        "case_report": float(_is_case_report(text, lowered)),
        "review": float(bool(_REVIEW.search(title))),
        "sentences": float(len(abstract_doc.sent_start)),
    }


# "patients fulfilling the 2019 EULAR/ACR classification criteria", "meeting the SLICC
# criteria": an inclusion criterion earns no label (guidelines 3.5).
_INCLUSION_WORDS = frozenset(
    {"fulfilling", "fulfilled", "fulfil", "fulfill", "fulfils", "fulfills", "meeting", "met", "satisfying"}
)
INCLUSION_WINDOW = 4


def _inclusion_criterion(doc: Doc, hit: Hit) -> bool:
    if hit.sentence not in doc.sentences_with(_INCLUSION_WORDS):
        return False
    s0 = doc.sent_start[hit.sentence]
    return any(w in _INCLUSION_WORDS for w in doc.lower[max(s0, hit.start - INCLUSION_WINDOW) : hit.start])


def _per_label(
    payloads: tuple[tuple[str, float, str, str], ...],
) -> Iterable[tuple[str, float, str, str]]:
    """A mention's payloads, one per label: "diagnostic" matches both "diagnostic" and
    "diagnos*", and the heavier cue (the first of equals) speaks for the label; not_cues count
    for none."""
    if len(payloads) == 1:
        return () if payloads[0][0] == NO_LABEL else payloads
    per_label: dict[str, tuple[float, str, str]] = {}
    for lid, w, phrase, kind in payloads:
        if lid == NO_LABEL:
            continue
        if lid not in per_label or w > per_label[lid][0]:
            per_label[lid] = (w, phrase, kind)
    return [(lid, w, phrase, kind) for lid, (w, phrase, kind) in per_label.items()]


def _is_drug_name(word: str) -> bool:
    """A lower-case word that names a drug by its INN stem (see `DRUG_STEMS`)."""
    return len(word) >= DRUG_STEM_MIN_LEN and word.endswith(DRUG_STEMS) and word not in NOT_DRUGS


def _quote_list(items: list[str]) -> str:
    q = [f"'{x}'" for x in items]
    return q[0] if len(q) == 1 else ", ".join(q[:-1]) + " and " + q[-1]


def _add_mentions(
    acc: dict[str, _Acc], found: dict[str, dict[str, list[float]]], where: str, *, context: bool, rank: int
) -> None:
    """Each label's total from its mentions (repeats add a little, drug lists count once) and evidence."""
    for lid, per in found.items():
        total = 0.0
        ranked = []
        drug_parts = []
        for shown, (c, n, is_drug, w) in per.items():
            contribution = c * (1 + REPEAT_BONUS * min(n - 1, REPEAT_CAP))
            if is_drug and context:
                drug_parts.append(contribution)
            else:
                total += contribution
            ranked.append((w >= EVIDENCE_MIN_WEIGHT, contribution, shown))
        if drug_parts:
            drug_parts.sort(reverse=True)
            total += drug_parts[0] + DRUG_LIST_EXTRA * sum(drug_parts[1:])
        # The evidence names the cues that decide: a weak word ("urinary", "outcomes") is
        # shown only when nothing stronger was found there.
        ranked.sort(key=lambda r: (not r[0], -r[1]))
        a = acc[lid]
        a.raw += total
        if context:
            a.cues += len(per)
        strong = [s for ok, _c, s in ranked if ok]
        top = (strong or [s for _ok, _c, s in ranked])[:3]
        text = f"{_quote_list(top)} in {where}"
        a.parts.append((rank, total, text))
        if not strong:
            a.weak.add(text)


class Classifier:
    """Multi-label subspecialty classifier over a `Taxonomy` (default: the packaged one).

    Building one compiles every cue into a phrase table; reuse the instance.
    """

    def __init__(
        self,
        taxonomy: Taxonomy | None = None,
        *,
        thresholds: dict[str, float] | None = None,
        learned: bool = True,
    ) -> None:
        """`learned=False` decides by the rule scores and thresholds alone, even when the
        taxonomy has a label model (the model's training and the thresholds' tuning use it)."""
        self.taxonomy = taxonomy or load_taxonomy()
        self.thresholds = {lid: self.taxonomy.threshold(lid) for lid in self.taxonomy.ids}
        if thresholds:
            self.thresholds.update(thresholds)
        self.label_model = self.taxonomy.label_model if learned else None
        # payload: (label, weight, phrase as shown in evidence, kind: "", DESIGN or DRUG)
        # A phrase listed twice for one label (as a cue and as an abbreviation) counts once.
        best: dict[tuple[Any, str], tuple[float, str, str]] = {}
        for lid, lab in self.taxonomy.labels.items():
            pairs = list(lab.cues.items()) + [(a, w) for a, (_means, w) in lab.abbreviations.items()]
            for phrase, w in pairs:
                kind = DESIGN if phrase in lab.designs else DRUG if phrase in lab.drugs else ""
                key = (phrase_words(phrase), lid)
                if key not in best or w > best[key][0] or (w == best[key][0] and kind):
                    best[key] = (w, phrase, kind or (best[key][2] if key in best else ""))
        self._cues: PhraseSet[tuple[str, float, str, str]] = PhraseSet()
        for (_k, lid), (w, phrase, kind) in best.items():
            self._cues.add(phrase, (lid, w, phrase, kind))
        for phrase in self.taxonomy.not_cues:
            # found like a cue, so that it hides the shorter cue inside it, but counts for no label
            self._cues.add(phrase, (NO_LABEL, 0.0, phrase, ""))
        self._journals: PhraseSet[tuple[str, float]] = PhraseSet(
            (phrase, (lid, w))
            for lid, lab in self.taxonomy.labels.items()
            for phrase, w in lab.journals.items()
        )
        self._mesh: dict[str, list[tuple[str, float]]] = {}
        for lid, lab in self.taxonomy.labels.items():
            for descriptor, ui, w in lab.mesh:
                self._mesh.setdefault(descriptor.lower(), []).append((lid, w))
                if ui:
                    self._mesh.setdefault(ui, []).append((lid, w))
        self._drug_names: TokenMemo[bool] = TokenMemo(_is_drug_name)
        self._pubtypes: dict[str, list[tuple[str, float]]] = {}
        for lid, lab in self.taxonomy.labels.items():
            for pt, w in lab.publication_types.items():
                self._pubtypes.setdefault(pt.lower(), []).append((lid, w))

    # -- scoring --------------------------------------------------------------------------

    def scores(self, paper: Paper) -> dict[str, LabelScore]:
        """Every label's score and evidence for `paper`, before thresholds (used for tuning)."""
        return self._scores(paper, *_docs(paper))

    def _scores(self, paper: Paper, title_doc: Doc, abstract_doc: Doc) -> dict[str, LabelScore]:
        acc = _Accs()
        head, colon, _sub = clip(paper.title or "", MAX_TITLE_CHARS).partition(": ")
        subtitle_start = len(tokens(head)) if colon else len(title_doc.tokens)
        self._score_text(
            acc, title_doc, "the title", TITLE_FACTOR, context=False, rank=0, subtitle_start=subtitle_start
        )
        if abstract_doc.tokens:
            self._score_text(acc, abstract_doc, "the abstract", 1.0, context=True, rank=4)
        for kw in paper.keywords:
            self._score_keyword(acc, kw)
        self._score_mesh(acc, paper)
        # One publication type per label counts ("Clinical Trial" and "Randomized Controlled
        # Trial" on one record say the same thing): the most specific, i.e. the last listed best.
        best_pt: dict[str, tuple[float, str]] = {}
        for pt in paper.publication_types:
            for lid, w in self._pubtypes.get(pt.lower(), ()):
                if lid not in best_pt or w >= best_pt[lid][0]:
                    best_pt[lid] = (w, pt)
        for lid, (w, pt) in best_pt.items():
            c = w * PUBTYPE_FACTOR
            acc[lid].raw += c
            acc[lid].add("meta", c)
            acc[lid].parts.append((3, c, f"publication type {pt}"))
        if paper.journal and not relevance.is_lupus_journal(paper.journal):
            seen: set[str] = set()
            for hit in self._journals.find(Doc.from_text(paper.journal)):
                for lid, w in hit.payloads:
                    if lid not in seen:
                        seen.add(lid)
                        c = w * JOURNAL_FACTOR
                        acc[lid].raw += c
                        acc[lid].add("meta", c)
                        acc[lid].parts.append((5, c, f"published in {paper.journal}"))
        text = _paper_text(paper)
        lowered = text.lower()
        self._score_age(acc, text, lowered)
        paper_features = _paper_features(paper, abstract_doc, text, lowered)
        ids = self.taxonomy.ids
        # a label nothing was found for has an empty accumulator (see `_Accs`)
        raws = [a.raw for a in acc.values()] + ([0.0] if len(acc) < len(ids) else [])
        top = max(raws)
        firsts = sorted(a.title_at for a in acc.values() if a.title_at >= 0)
        paper = _PaperContext(
            top=top,
            first=firsts[0] if firsts else -1,
            n_sent=max(len(abstract_doc.sent_start), 1),
            n_title=max(len(title_doc.tokens), 1),
            features=paper_features,
        )
        # Every label nothing was found for scores the same but for its threshold: computed
        # once per paper instead of once per label (most of the fifteen labels, most papers).
        blank = self._label_score("", _Acc(), paper) if len(acc) < len(ids) else None
        out = {}
        for lid in ids:
            a = acc.get(lid)
            if a is not None:
                out[lid] = self._label_score(lid, a, paper)
            else:
                assert blank is not None
                features = dict(blank.features)
                features["rule"] = float(blank.score >= self.thresholds[lid])
                out[lid] = LabelScore(lid, blank.score, blank.raw, [], features, {})
        return out

    def _label_score(self, lid: str, a: _Acc, paper: _PaperContext) -> LabelScore:
        """One label's score, evidence and the features the learned layer reads."""
        a.parts.sort(key=lambda p: (p[0], -p[1]))
        score = round(1.0 - math.exp(-a.raw), 3)
        where = a.where
        top = paper.top
        features = {key: where.get(loc, 0.0) for key, loc in _LOCATION_FEATURES}
        features.update(
            raw=a.raw,
            title_weight=a.title_weight,
            abstract_weight=a.abstract_weight,
            coverage=len(a.sentences) / paper.n_sent,
            cues=float(a.cues),
            relative=a.raw / top if top > 0 else 0.0,
            top=float(a.raw == top and top > 0),
            # the title's subject comes first: "Malar rash in SLE: ... therapeutic associations"
            title_first=float(a.title_at >= 0 and a.title_at == paper.first),
            title_position=1.0 - a.title_at / paper.n_title if a.title_at >= 0 else 0.0,
            rule=float(score >= self.thresholds[lid]) if lid else 0.0,
            **paper.features,
        )
        evidence = [e for _r, _c, e in a.parts]
        # weak words are not shown as the reason when something decisive was found
        decisive = [e for e in evidence if e not in a.weak]
        return LabelScore(lid, score, a.raw, decisive or evidence, features, a.found)

    def _score_text(
        self,
        acc: dict[str, _Acc],
        doc: Doc,
        where: str,
        factor: float,
        *,
        context: bool,
        rank: int,
        subtitle_start: int = 0,
    ) -> None:
        """Adds what the cue mentions in `doc` weigh, and their evidence, to each label's `acc`."""
        found = self._tally_mentions(acc, doc, factor, context=context, subtitle_start=subtitle_start)
        _add_mentions(acc, found, where, context=context, rank=rank)

    def _tally_mentions(
        self, acc: dict[str, _Acc], doc: Doc, factor: float, *, context: bool, subtitle_start: int
    ) -> dict[str, dict[str, list[float]]]:
        """Which cue mentions count (not negated, excluded, inclusion criteria) and what each weighs."""
        # per label: phrase shown -> [contribution of first mention, count, is a drug, weight]
        found: dict[str, dict[str, list[float]]] = {}
        factors = _sentence_factors(doc) if context else None
        locations = sentence_locations(doc) if context else None
        labels = doc.sent_labels
        hits = self._cues.find(doc)
        if DRUG_STEM_LABEL in self.taxonomy.labels:
            hits = hits + self._drug_stem_hits(doc, hits)
        # the sentences where a mention may be negated, excluded or an inclusion criterion
        # (in_exclusion_sentence, is_negated, _inclusion_criterion), asked once, not per mention
        negation = doc.sentences_with(NEGATION_WORDS)
        exclusion = doc.sentences_with(EXCLUSION_SENTENCE) if context else frozenset()
        inclusion = doc.sentences_with(_INCLUSION_WORDS) if context else frozenset()
        for hit in hits:
            s = hit.sentence
            if (
                s in exclusion
                or (s in negation and is_negated(doc, hit))
                or (s in inclusion and _inclusion_criterion(doc, hit))
            ):
                continue
            sf = factors[s] if factors else 1.0
            for lid, w, phrase, kind in _per_label(hit.payloads):
                shown = matched_text(doc, hit) if "*" in phrase else phrase
                per = found.setdefault(lid, {})
                cur = per.get(shown)
                f = sf
                if kind == DESIGN and context and (not labels or labels[hit.sentence] != "BACKGROUND"):
                    f = max(sf, DESIGN_SECTION_FACTOR)
                if kind == DRUG and not context:
                    w = max(w, DRUG_TITLE_WEIGHT)
                c = w * factor * f
                a = acc[lid]
                if locations is None:
                    loc = "title" if hit.start < subtitle_start else "subtitle"
                    if a.title_at < 0 or hit.start < a.title_at:
                        a.title_at = hit.start
                else:
                    loc = locations[hit.sentence]
                a.found.setdefault(phrase, set()).add(loc)
                if locations is None:
                    a.add(loc, w * factor)
                    a.title_weight = max(a.title_weight, w)
                else:
                    a.add(loc, w)
                    a.abstract_weight = max(a.abstract_weight, w)
                    a.sentences.add(hit.sentence)
                if cur is None:
                    per[shown] = [c, 1, kind == DRUG, w]
                else:
                    cur[0] = max(cur[0], c)
                    cur[1] += 1
        return found

    def _drug_stem_hits(self, doc: Doc, known: list[Hit]) -> list[Hit]:
        """Drug names recognised by their INN stem that no cue already matched."""
        # most abstracts name no drug by its stem: asked of the distinct words first
        if not any(map(self._drug_names.__getitem__, doc.vocabulary)):
            return []
        named = list(map(self._drug_names.__getitem__, doc.lower))
        covered = {i for h in known for i in range(h.start, h.end)}
        out: list[Hit] = []
        for i in compress(range(len(named)), named):
            if i not in covered:
                w = doc.lower[i]
                out.append(Hit(w, ((DRUG_STEM_LABEL, DRUG_STEM_WEIGHT, w, DRUG),), i, i + 1, doc.sent[i]))
        return out

    def _score_keyword(self, acc: dict[str, _Acc], keyword: str) -> None:
        doc = Doc.from_text(keyword)
        seen: set[str] = set()
        for hit in self._cues.find(doc):
            for lid, w, _phrase, _kind in hit.payloads:
                if lid in seen or lid == NO_LABEL:
                    continue
                seen.add(lid)
                c = w * KEYWORD_FACTOR
                acc[lid].raw += c
                acc[lid].add("meta", c)
                acc[lid].parts.append((2, c, f"keyword '{keyword}'"))

    def _score_mesh(self, acc: dict[str, _Acc], paper: Paper) -> None:
        for m in paper.mesh:
            targets = self._mesh.get(m.ui or "") or self._mesh.get(m.descriptor.lower(), [])
            major = m.is_major
            for lid, w in targets:
                c = w * (MESH_MAJOR_FACTOR if major else MESH_MINOR_FACTOR)
                acc[lid].raw += c
                acc[lid].add("meta", c)
                acc[lid].parts.append((1, c, f"MeSH {m.descriptor}" + (" (major topic)" if major else "")))
            if m.descriptor.lower() in relevance.LUPUS_MESH or (m.ui or "") in relevance.LUPUS_MESH_UIS:
                for q in m.qualifiers:
                    spec = self.taxonomy.qualifiers.get(q.name.lower())
                    if spec:
                        lid, w = spec
                        qmajor = q.major
                        c = w * (QUALIFIER_MAJOR_FACTOR if qmajor else QUALIFIER_MINOR_FACTOR)
                        acc[lid].raw += c
                        acc[lid].add("meta", c)
                        acc[lid].parts.append(
                            (1, c, f"MeSH {m.descriptor}/{q.name}" + (" (major topic)" if qmajor else ""))
                        )

    def _score_age(self, acc: dict[str, _Acc], text: str, lowered: str) -> None:
        """A child's age in `text` ("a 9-year-old boy") counts for pediatrics. `lowered` is
        `text.lower()`: without "year" or "yr" in it the age pattern cannot match."""
        if "pediatrics" not in self.taxonomy.labels or ("year" not in lowered and "yr" not in lowered):
            return
        for m in (_AGE_ASCII if text.isascii() else _AGE).finditer(text):
            age = int(m.group(1))
            if age < PAEDIATRIC_AGE_LIMIT:
                acc["pediatrics"].raw += AGE_WEIGHT
                acc["pediatrics"].add("meta", AGE_WEIGHT)
                acc["pediatrics"].parts.append((4, AGE_WEIGHT, f"a patient aged {age} years"))
                return

    # -- the public call ------------------------------------------------------------------

    def classify(self, paper: Paper) -> Classification:
        """Decide whether `paper` is about lupus and, if so, which subspecialties, with evidence."""
        title_doc, abstract_doc = _docs(paper)
        rel = relevance.assess_docs(
            paper.title or "",
            paper.abstract or "",
            title_doc,
            abstract_doc,
            journal=paper.journal,
            mesh=paper.mesh,
            keywords=paper.keywords,
        )
        if not rel.is_lupus:
            return Classification(False, rel.score, rel.evidence, [])
        scores = self._scores(paper, title_doc, abstract_doc)
        if self.label_model is not None and len(abstract_doc.sent_start) >= MIN_SENTENCES:
            # the learned layer's probability is the label's score
            picked = self.label_model.choose({lid: s.features for lid, s in scores.items()})
            topics = [TopicLabel(lid, round(p, 3), scores[lid].evidence[:4]) for lid, p in picked]
        else:
            chosen = sorted(self.decide(scores), key=lambda s: -s.score)
            topics = [TopicLabel(s.label, s.score, s.evidence[:4]) for s in chosen]
        return Classification(True, rel.score, rel.evidence, topics)

    def decide(
        self, scores: dict[str, LabelScore], thresholds: dict[str, float] | None = None
    ) -> list[LabelScore]:
        """The labels a lupus paper gets from its scores: those past their threshold, at most
        `MAX_TOPICS`, strongest first; if none passes, the strongest one (a lupus paper has a
        subject). `thresholds` overrides the classifier's (the tuning script uses it)."""
        th = thresholds or self.thresholds

        def margin(s: LabelScore) -> float:
            # how far past its own threshold a label is, comparable across labels
            return s.raw / max(-math.log(1.0 - min(th[s.label], 0.999)), 1e-6)

        ranked = sorted(scores.values(), key=margin, reverse=True)
        chosen = [s for s in ranked if s.score >= th[s.label]][:MAX_TOPICS]
        if not chosen and ranked and ranked[0].raw > 0:
            chosen = [ranked[0]]
        return chosen


# -- evaluation ---------------------------------------------------------------------------


@dataclass(slots=True)
class LabelMetrics:
    label: str
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def support(self) -> int:
        return self.tp + self.fn

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclass(slots=True)
class EvalReport:
    """Per-label and overall figures of a classifier on a labelled set."""

    labels: list[LabelMetrics]
    n: int
    relevance_correct: int
    errors: list[dict[str, Any]] = field(default_factory=list)  # what was wrong, per paper

    @property
    def micro(self) -> LabelMetrics:
        m = LabelMetrics("micro")
        for lm in self.labels:
            m.tp += lm.tp
            m.fp += lm.fp
            m.fn += lm.fn
        return m

    @property
    def macro_f1(self) -> float:
        """Mean F1 over the labels that occur in the gold set or were predicted."""
        used = [lm for lm in self.labels if lm.tp + lm.fp + lm.fn]
        return sum(lm.f1 for lm in used) / len(used) if used else 0.0

    @property
    def relevance_accuracy(self) -> float:
        return self.relevance_correct / self.n if self.n else 0.0

    def format(self) -> str:
        """The report as a plain-text table."""
        lines = [f"{'label':<18} {'support':>7} {'P':>6} {'R':>6} {'F1':>6}"]
        for lm in self.labels:
            lines.append(
                f"{lm.label:<18} {lm.support:>7} {lm.precision:>6.3f} {lm.recall:>6.3f} {lm.f1:>6.3f}"
            )
        mi = self.micro
        lines.append(f"{'micro':<18} {mi.support:>7} {mi.precision:>6.3f} {mi.recall:>6.3f} {mi.f1:>6.3f}")
        lines.append(f"macro-F1 {self.macro_f1:.3f}")
        lines.append(f"micro-F1 {mi.f1:.3f}")
        lines.append(f"label precision {mi.precision:.3f}, label recall {mi.recall:.3f}")
        lines.append(f"relevance accuracy {self.relevance_accuracy:.3f} ({self.relevance_correct}/{self.n})")
        return "\n".join(lines)


def strip_mesh(paper: Paper) -> Paper:
    """The paper without MeSH headings (how a feed item, or a brand-new PubMed record, looks)."""
    paper.mesh = []
    return paper


def evaluate(
    records: Iterable[dict[str, Any]], classifier: Classifier, *, use_mesh: bool = False
) -> EvalReport:
    """Compare the classifier with gold labels (`gold_is_lupus`, `gold_topics`) on records.

    By default MeSH is removed first (text only: the targets are set for that case).
    """
    metrics = {lid: LabelMetrics(lid) for lid in classifier.taxonomy.ids}
    n = correct = 0
    errors: list[dict[str, Any]] = []
    for rec in records:
        paper = Paper.from_dict(rec)
        if not use_mesh:
            strip_mesh(paper)
        c = classifier.classify(paper)
        gold_lupus = bool(rec["gold_is_lupus"])
        gold = set(rec.get("gold_topics") or [])
        pred = {t.label for t in c.topics}
        n += 1
        correct += c.is_lupus == gold_lupus
        for lid, m in metrics.items():
            m.tp += lid in gold and lid in pred
            m.fp += lid in pred and lid not in gold
            m.fn += lid in gold and lid not in pred
        if c.is_lupus != gold_lupus or gold != pred:
            errors.append(
                {
                    "title": paper.title,
                    "gold_is_lupus": gold_lupus,
                    "is_lupus": c.is_lupus,
                    "missed": sorted(gold - pred),
                    "extra": sorted(pred - gold),
                }
            )
    return EvalReport(list(metrics.values()), n, correct, errors)


def relevance_guard(path: Path, classifier: Classifier) -> tuple[int, list[str]]:
    """How many records of a JSON-lines file of non-lupus papers there are, and the titles of
    those the classifier calls lupus (the regression guard for relevance)."""
    records = read_jsonl(path)
    called = []
    for rec in records:
        paper = Paper(
            source="pubmed",
            source_key=str(rec.get("pmid") or ""),
            title=rec.get("title") or "",
            abstract=rec.get("abstract") or "",
        )
        if classifier.classify(paper).is_lupus:
            called.append(paper.title)
    return len(records), called


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file (blank lines skipped)."""
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            out.append(json.loads(line))
    return out


def classification_dict(c: Classification) -> dict[str, Any]:
    """The fields `lupus-alerts classify` adds to a paper-schema line."""
    return {
        "is_lupus": c.is_lupus,
        "relevance_score": c.relevance_score,
        "relevance_evidence": list(c.relevance_evidence),
        "topics": [{"label": t.label, "score": t.score, "evidence": list(t.evidence)} for t in c.topics],
    }


__all__: Sequence[str] = (
    "Classifier",
    "EvalReport",
    "Label",
    "LabelScore",
    "Taxonomy",
    "TaxonomyError",
    "classification_dict",
    "evaluate",
    "load_taxonomy",
    "read_jsonl",
    "strip_mesh",
)
