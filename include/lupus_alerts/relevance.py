"""Is a paper about lupus, in the lupus-erythematosus sense?

The word "lupus" and the abbreviation "SLE" are both ambiguous. *Lupus vulgaris* is tuberculosis
of the skin, *lupus pernio* is sarcoidosis, *Canis lupus* is the wolf, "SLE" is also St. Louis
encephalitis and slit-lamp examination, and the lupus anticoagulant is a coagulation test done
in many patients who do not have lupus. And a paper on rheumatoid arthritis that excludes
patients with SLE, or compares with them, is not a lupus paper. `assess` looks at every
mention, discards the ones that mean something else or sit in an exclusion, negation or
comparison, and weighs what is left by where it was found (title, MeSH, keywords, abstract).

The result carries the evidence in words a clinician reads, so the decision can be audited.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from lupus_alerts.models import MeshHeading
from lupus_alerts.phrases import (
    MAX_ABSTRACT_CHARS,
    MAX_TITLE_CHARS,
    Doc,
    Hit,
    PhraseSet,
    clip,
    in_exclusion_sentence,
    is_negated,
)
from lupus_alerts.text import normalize_journal

# Journals whose every paper is a lupus paper (normalised: lower case, "&" -> "and", no dots).
# As `text.normalize_journal` folds them: "Lupus Science & Medicine" -> "lupus science medicine".
LUPUS_JOURNALS = frozenset({"lupus", "lupus science medicine", "lupus sci med"})

# MeSH descriptors meaning lupus erythematosus (names as NLM spells them, with their UIs).
LUPUS_MESH = {
    "lupus erythematosus, systemic": "D008180",
    "lupus nephritis": "D008181",
    "lupus erythematosus, cutaneous": "D008178",
    "lupus erythematosus, discoid": "D008179",
    "lupus vasculitis, central nervous system": "D020945",
}
LUPUS_MESH_UIS = frozenset(LUPUS_MESH.values())
# MeSH descriptors of the look-alikes. When one is a major topic and the lupus descriptor is
# not, the lupus heading records a differential diagnosis (lupus vulgaris "mimicking discoid
# lupus"), not the subject.
TRAP_MESH = frozenset(
    {
        "lupus vulgaris",
        "tuberculosis, cutaneous",
        "lupus coagulation inhibitor",
        "wolves",
        "encephalitis, st. louis",
        "encephalitis virus, st. louis",
        "sarcoidosis",
    }
)

# What a mention is: "lupus" (spelled out), "abbrev" (SLE and friends: count alone), "weak"
# (LN, CLE, DLE: count only beside another lupus mention) or a trap (means something else).
_POSITIVE = {
    "lupus": [
        "lupus",
        "lupus erythematosus",
        "systemic lupus erythematosus",
        "systemic lupus erythematodes",
        "lupus erythematodes",
        "lupus nephritis",
        "lupus nephropathy",
        "lupus prone",
        "lupus mice",
        "neuropsychiatric lupus",
        "cutaneous lupus",
        "discoid lupus",
        "neonatal lupus",
        "drug induced lupus",
        "chilblain lupus",
        "lupus profundus",
        "lupus panniculitis",
        "lupus tumidus",
        "lupus erythematosus tumidus",
        "lupus erythematosus profundus",
    ],
    "abbrev": [
        "SLE",
        "NPSLE",
        "cSLE",
        "jSLE",
        "pSLE",
        "SCLE",
        "CCLE",
        "ACLE",
        "SLEDAI*",
        "BILAG",
        "SLICC",
        "CLASI",
    ],
    # Drugs licensed only for lupus: a trial of one is a lupus paper even if it never says so.
    "drug": ["anifrolumab", "voclosporin"],
    "weak": ["LN", "CLE", "DLE", "LE"],
    # "lupus-like disease" (a mouse model's, a monogenic one) is lupus; "lupus-like
    # manifestations" of a lymphoma are another disease resembling it (guidelines 2.2).
    "like": ["lupus like"],
}

# Each trap phrase, and what it actually means (said in the evidence).
_TRAPS = {
    "lupus vulgaris": "'lupus vulgaris' is tuberculosis of the skin, not lupus erythematosus",
    "lupus pernio": "'lupus pernio' is cutaneous sarcoidosis, not lupus erythematosus",
    "lupus miliaris disseminatus faciei": "'lupus miliaris disseminatus faciei' is a granulomatous "
    "facial rash, not lupus erythematosus",
    "lupus anticoagulant": "'lupus anticoagulant' is a coagulation test, not lupus itself",
    "lupus anticoagulants": "'lupus anticoagulant' is a coagulation test, not lupus itself",
    "lupus anticoagulant positive": "'lupus anticoagulant' is a coagulation test, not lupus itself",
    "lupus like anticoagulant": "'lupus anticoagulant' is a coagulation test, not lupus itself",
    "lupus inhibitor": "'lupus inhibitor' (lupus anticoagulant) is a coagulation test, not lupus itself",
    "lupus coagulation inhibitor": "'lupus anticoagulant' is a coagulation test, not lupus itself",
    "canis lupus": "'Canis lupus' is the wolf",
    "canis lupus familiaris": "'Canis lupus familiaris' is the dog as a species",
    "lupus molecular cloud*": "'Lupus' here is the constellation (astronomy)",
    "lupus cloud*": "'Lupus' here is the constellation (astronomy)",
    "lupus constellation": "'Lupus' here is the constellation (astronomy)",
    "lupus star forming": "'Lupus' here is the constellation (astronomy)",
    "lupus i iv": "'Lupus' here is the constellation (astronomy)",
    "lupoid hepatitis": "'lupoid hepatitis' is autoimmune hepatitis, not lupus",
    "c lupus": "'C. lupus' is the wolf",
    "st louis encephalitis": "'SLE' here means St. Louis encephalitis",
    "saint louis encephalitis": "'SLE' here means St. Louis encephalitis",
    "st louis encephalitis virus": "'SLE' here means St. Louis encephalitis",
    "SLE virus": "'SLE' here means St. Louis encephalitis",
    "SLEV": "'SLE' here means St. Louis encephalitis",
    "slit lamp": "'SLE' here means slit-lamp examination",
    "slit lamp examination": "'SLE' here means slit-lamp examination",
    "slit lamp exam": "'SLE' here means slit-lamp examination",
    "slit lamp examinations": "'SLE' here means slit-lamp examination",
}
# Traps that redefine the abbreviation SLE for the whole record.
_SLE_REDEFINED = frozenset(
    {
        "st louis encephalitis",
        "saint louis encephalitis",
        "st louis encephalitis virus",
        "SLE virus",
        "SLEV",
        "slit lamp",
        "slit lamp examination",
        "slit lamp exam",
        "slit lamp examinations",
    }
)

# A sentence that sets lupus beside another disease ("compared with SLE", "RA, SLE and SSc")
# is a comparison or a list, not the paper's subject.
_COMPARATOR_WORDS = frozenset(
    {
        "compared",
        "comparing",
        "comparison",
        "comparator",
        "versus",
        "vs",
        "than",
        "control",
        "controls",
        "such",
        "including",
        "include",
        "includes",
        "other",
        "like",
        "unlike",
        "similar",
        "mimic",
        "mimics",
        "mimicking",
        "differential",
        "comparative",
        "whereas",
        "while",
        "both",
    }
)
# "mimicking discoid lupus", "misdiagnosed as SLE", "distinct from drug-induced lupus": lupus is
# the differential diagnosis, not the disease.
_DIFFERENTIAL_WORDS = frozenset(
    {
        "mimicking",
        "mimic",
        "mimics",
        "mimicked",
        "misdiagnosed",
        "misdiagnosis",
        "masquerading",
        "simulating",
        "imitating",
        "resembling",
        "distinct",
        "distinguished",
        "distinguishing",
        "initially",
        "suggestive",  # "features suggestive of SLE"
    }
)
# "presenting as SLE", "mistaken for lupus": two words before the mention.
_DIFFERENTIAL_BIGRAMS = frozenset(
    {
        ("presenting", "as"),
        ("presented", "as"),
        ("misdiagnosed", "as"),
        ("mistaken", "for"),
        ("masquerading", "as"),
        ("disguised", "as"),
    }
)
# "suggested a clinical diagnosis of SLE", "a provisional diagnosis of lupus": the diagnosis
# that was considered, not the one made.
_TENTATIVE_DIAGNOSIS = frozenset(
    {"suggested", "suggesting", "suspected", "presumed", "presumptive", "provisional", "tentative", "working"}
)
DIFFERENTIAL_WINDOW = 5
# "an SLE and systemic sclerosis overlap", "overlap syndrome (SLE, MCTD and SSc)": lupus is
# half of the patient's disease, not one item of a list (guidelines 2.1, 2.7).
OVERLAP_WINDOW = 6
# "overlap between SLE and RA genes", "overlapping manifestations with SLE" are no syndrome
_NOT_AN_OVERLAP_SYNDROME = frozenset(
    {"between", "among", "across", "with", "manifestations", "features", "symptoms", "clinical", "signs"}
)
_OVERLAP_WORDS = frozenset({"overlap", "overlapping"})
# "lupus-like manifestations": features of another disease, not a lupus-like disease
_RESEMBLANCE_NOUNS = frozenset(
    {"manifestations", "manifestation", "features", "symptoms", "presentation", "picture", "findings"}
    | {"signs"}
)
# A mention that says who was studied: "patients with SLE", "SLE patients", "lupus-prone mice".
_POPULATION_BEFORE = frozenset(
    {
        "patients", "patient", "women", "woman", "men", "man", "children", "child", "adults",
        "adult", "adolescents", "adolescent", "individuals", "subjects", "participants", "cohort",
        "mice", "mouse", "boy", "girl", "pregnancies", "pregnant", "people", "cases", "case",
        "volunteers", "persons", "population", "model", "models", "modelling", "modeling", "those",
        "diagnosed",
    }
)  # fmt: skip
_POPULATION_AFTER = frozenset(
    {
        "patients", "patient", "cohort", "cohorts", "mice", "mouse", "women", "children",
        "pregnancies", "cases", "population", "participants", "subjects", "model", "models",
        "registry", "group", "groups",
    }
)  # fmt: skip
POPULATION_BEFORE_WINDOW = 4
POPULATION_AFTER_WINDOW = 2

_OTHER_DISEASES = [
    "rheumatoid arthritis",
    "RA",
    "osteoarthritis",
    "sjogren*",
    "sjögren*",
    "pSS",
    "systemic sclerosis",
    "SSc",
    "scleroderma",
    "multiple sclerosis",
    "psoria*",
    "PsA",
    "spondyl*",
    "myositis",
    "dermatomyositis",
    "polymyositis",
    "vasculitis",
    "AAV",
    "gout",
    "diabetes",
    "IgA nephropathy",
    "IgAN",
    "crohn*",
    "colitis",
    "inflammatory bowel disease",
    "IBD",
    "covid*",
    "sars cov 2",
    "sarcoidosis",
    "tuberculosis",
    "still*",
    "mixed connective tissue disease",
    "undifferentiated connective tissue disease",
    "connective tissue disease",
    "UCTD",
    "MCTD",
    "behcet*",
    "behçet*",
    "igg4",
    "hashimoto*",
    "graves",
    "myasthenia",
    "primary antiphospholipid syndrome",
    "PAPS",
    "kawasaki",
    "hiv",
    "lymphoma",
    "asthma",
    "atopic dermatitis",
    "dermatitis",
    "rosacea",
    "DM",  # dermatomyositis, or diabetes mellitus: another disease either way
    "IIM",
    "JDM",
    "SjD",
    "AOSD",
    "JIA",
    "juvenile idiopathic arthritis",
]

TITLE_WEIGHT = 3.0
ABSTRACT_WEIGHT = 1.0
# One clear mention that says who was studied ("a 19-year-old woman with SLE", "SLE
# patients") is enough: a case report may name the disease once (guidelines 2.7). A single
# passing mention (one predictor among several, one disease of a review's list) is not.
ABSTRACT_FIRST = 2.0
ABSTRACT_FIRST_PASSING = 1.5
ABSTRACT_CAP = 4  # beyond four mentions the abstract adds nothing
KEYWORD_WEIGHT = 2.0
# A drug licensed only for lupus suggests lupus but is also tried in other diseases.
DRUG_TITLE_WEIGHT = 1.5
DRUG_ABSTRACT_WEIGHT = 1.0
MESH_MAJOR_WEIGHT = 4.0
MESH_MINOR_WEIGHT = 2.0
JOURNAL_WEIGHT = 10.0
OTHER_DISEASE_TITLE_PENALTY = 1.5
# Lupus named in the title as one of a list of diseases ("NETs in gout, RA and SLE"): one of
# the paper's subjects, not the subject.
TITLE_LIST_WEIGHT = 1.5
# A title that names lupus only as what another disease mimicked ("lymphoma masquerading as
# SLE"): the abstract's mentions describe the same misdiagnosis.
DIFFERENTIAL_TITLE_PENALTY = 4.0
# Half of the score scale: raw evidence of 2 (e.g. two clear abstract mentions, or one
# keyword) is where a record becomes a lupus paper.
THRESHOLD = 0.5
_SCALE = 2.0


@dataclass(slots=True)
class Relevance:
    """Whether a record is about lupus, how strongly (0..1), and why."""

    is_lupus: bool
    score: float
    evidence: list[str] = field(default_factory=list)


def _build_phrases() -> PhraseSet[tuple[str, str]]:
    ps: PhraseSet[tuple[str, str]] = PhraseSet()
    for kind, phrases in _POSITIVE.items():
        for p in phrases:
            ps.add(p, (kind, p))
    for p in _TRAPS:
        ps.add(p, ("trap", p))
    return ps


_PHRASES = _build_phrases()
_OTHER = PhraseSet((p, p) for p in _OTHER_DISEASES)


def is_lupus_journal(name: str | None) -> bool:
    """True for the journals devoted to lupus (Lupus; Lupus Science & Medicine)."""
    return normalize_journal(name) in LUPUS_JOURNALS


def _mesh_name_major(m: Any) -> tuple[str, str | None, bool]:
    if isinstance(m, MeshHeading):
        return m.descriptor, m.ui, m.is_major
    if isinstance(m, str):
        return m, None, False
    if isinstance(m, dict):
        quals = m.get("qualifiers") or []
        major = bool(m.get("major")) or any(isinstance(q, dict) and q.get("major") for q in quals)
        return str(m.get("descriptor", "")), m.get("ui"), major
    raise TypeError(f"MeSH heading must be a MeshHeading, dict or str, not {type(m).__name__}")


@dataclass(slots=True)
class _Mentions:
    core: list[str] = field(default_factory=list)  # phrases that count
    weak: list[str] = field(default_factory=list)
    drugs: list[str] = field(default_factory=list)  # lupus-only drugs: weaker than the disease
    excluded: int = 0
    negated: int = 0
    compared: int = 0
    differential: int = 0
    listed: list[str] = field(default_factory=list)  # in a list of diseases without comparison
    overlap: int = 0  # core mentions that are part of an overlap syndrome
    population: int = 0  # core mentions that say who was studied
    traps: list[str] = field(default_factory=list)


def _redefines_sle(hits: list[Hit[tuple[str, str]]]) -> bool:
    return any(h.payloads[0][0] == "trap" and h.payloads[0][1] in _SLE_REDEFINED for h in hits)


_SLE_DEFINED = re.compile(r"\(SLEs?\)")
_WORD = re.compile(r"[A-Za-z]+")


def sle_expansion(text: str) -> str | None:
    """What an author defined "(SLE)" as, when it is not lupus ("sea-level equivalent (SLE)").

    The words just before "(SLE)" whose initials spell S, L, E are the definition; if they do
    not include "lupus", the abbreviation means something else in this record.
    """
    for m in _SLE_DEFINED.finditer(text):
        words = _WORD.findall(text[max(0, m.start() - 80) : m.start()])
        for n in (3, 4):  # "slit lamp examination", "St Louis encephalitis", "the ... of"
            cand = words[-n:]
            if (
                len(cand) == n
                and "".join(w[0] for w in cand if len(w) > 2 or w[0].isupper()).lower() == "sle"
            ):
                if not any(w.lower() in ("lupus", "erythematosus") for w in cand):
                    return " ".join(cand)
                return None
    return None


# Words that make a two-letter abbreviation mean lupus: "kidney failure from LN", "DLE lesions".
_KIDNEY_WORDS = frozenset(
    {"kidney", "renal", "dialysis", "haemodialysis", "hemodialysis", "nephritis", "glomerular", "proteinuria"}
)
_SKIN_WORDS = frozenset(
    {"skin", "cutaneous", "rash", "lesions", "lesion", "scarring", "alopecia", "dermatology"}
)
_WEAK_CONTEXT = {"LN": _KIDNEY_WORDS, "CLE": _SKIN_WORDS, "DLE": _SKIN_WORDS}


def _scan(
    doc: Doc,
    hits: list[Hit[tuple[str, str]]],
    *,
    context: bool,
    redefined: bool,
    organ_words: frozenset[str] = frozenset(),
) -> _Mentions:
    """Sort the lupus mentions in `doc`.

    Comparisons ("IgG4-RD compared with SLE") are discounted everywhere; with `context`
    (abstracts), exclusions and negations too. `redefined` says that "SLE" means something else
    in this record (the encephalitis, the slit lamp), so only spelled-out mentions of lupus
    count. `organ_words` are the record's words: "LN" beside kidney words, "CLE"/"DLE" beside
    skin words, are read as lupus.
    """
    out = _Mentions()
    if not hits:
        return out
    other_by_sentence: dict[int, int] | None = None
    for h in hits:
        kind, phrase = h.payloads[0]
        if kind == "trap":
            out.traps.append(phrase)
            continue
        if redefined and kind not in ("lupus", "like"):
            continue  # "SLE" means the encephalitis or the slit lamp in this record
        if _in_overlap(doc, h):
            out.core.append(phrase if kind in ("lupus", "like") else doc.tokens[h.start])
            out.overlap += 1
            continue
        if _is_differential(doc, h):
            out.differential += 1
            continue
        if context:
            if in_exclusion_sentence(doc, h):
                out.excluded += 1
                continue
            if is_negated(doc, h):
                out.negated += 1
                continue
        if other_by_sentence is None:
            other_by_sentence = {}
            for o in _OTHER.find(doc):
                other_by_sentence[o.sentence] = other_by_sentence.get(o.sentence, 0) + 1
        setting = _comparison(doc, h, other_by_sentence.get(h.sentence, 0))
        if setting == "compared":
            out.compared += 1
            continue
        if setting == "list":
            out.compared += 1
            if kind != "weak":
                out.listed.append(phrase if kind in ("lupus", "like") else doc.tokens[h.start])
            continue
        if kind == "like":
            if h.end < len(doc.lower) and doc.lower[h.end] in _RESEMBLANCE_NOUNS:
                out.differential += 1
                continue
            out.core.append(phrase)
        elif kind == "weak" and _WEAK_CONTEXT.get(phrase, frozenset()) & organ_words:
            out.core.append(doc.tokens[h.start])
        elif kind == "weak":
            out.weak.append(doc.tokens[h.start])
            continue
        elif kind == "drug":
            out.drugs.append(phrase)
            continue
        else:
            out.core.append(phrase if kind in ("lupus", "like") else doc.tokens[h.start])
        out.population += _defines_population(doc, h)
    return out


def _sentence_bounds(doc: Doc, s: int) -> tuple[int, int]:
    end = doc.sent_start[s + 1] if s + 1 < len(doc.sent_start) else len(doc.lower)
    return doc.sent_start[s], end


def _in_overlap(doc: Doc, hit: Hit) -> bool:
    """The mention is part of an overlap syndrome's name ("SLE/SSc overlap", "overlap
    syndrome of SLE and ...")."""
    if hit.sentence not in doc.sentences_with(_OVERLAP_WORDS):
        return False
    s0, s1 = _sentence_bounds(doc, hit.sentence)
    lower = doc.lower
    for j in range(max(s0, hit.start - OVERLAP_WINDOW), min(s1, hit.end + OVERLAP_WINDOW)):
        if lower[j] in _OVERLAP_WORDS:
            nxt = lower[j + 1] if j + 1 < s1 else ""
            return nxt not in _NOT_AN_OVERLAP_SYNDROME
    return False


def _is_differential(doc: Doc, hit: Hit) -> bool:
    """Lupus as the diagnosis that was considered or mimicked, not the one made: "mimicking
    SLE", "presenting as lupus", "suggested a diagnosis of SLE", "SLE was suspected"."""
    s0, s1 = _sentence_bounds(doc, hit.sentence)
    lower = doc.lower
    window = lower[max(s0, hit.start - DIFFERENTIAL_WINDOW) : hit.start]
    if any(w in _DIFFERENTIAL_WORDS for w in window):
        return True
    if any(pair in _DIFFERENTIAL_BIGRAMS for pair in pairwise(window)):
        return True
    if "diagnosis" in window and any(w in _TENTATIVE_DIAGNOSIS for w in window):
        return True
    after = lower[hit.end : min(s1, hit.end + 3)]
    return len(after) >= 2 and after[0] in ("was", "were") and "suspected" in after[1:]


def _comparison(doc: Doc, hit: Hit, n_other: int) -> str:
    """ "compared" when the mention's sentence sets lupus beside another disease with a
    comparing word ("compared with SLE", "RA and SLE controls"), "list" when it only lists
    diseases ("gout, RA and SLE"), else ""."""
    if n_other == 0:
        return ""
    if hit.sentence in doc.sentences_with(_COMPARATOR_WORDS):
        return "compared"
    return "list" if n_other >= 2 else ""


def _defines_population(doc: Doc, hit: Hit) -> bool:
    """The mention says who was studied: "women with SLE", "SLE patients", "lupus-prone mice"."""
    s0, s1 = _sentence_bounds(doc, hit.sentence)
    lower = doc.lower
    before = lower[max(s0, hit.start - POPULATION_BEFORE_WINDOW) : hit.start]
    after = lower[hit.end : min(s1, hit.end + POPULATION_AFTER_WINDOW)]
    return any(w in _POPULATION_BEFORE for w in before) or any(w in _POPULATION_AFTER for w in after)


_LUPUS_DRUGS = frozenset(_POSITIVE["drug"])


def _most_telling(phrases: list[str]) -> str:
    """The mention to quote: a name of the disease before a drug, the longest first
    ("systemic lupus erythematosus" over "lupus"), said in words."""
    best = max(phrases, key=lambda p: (p not in _LUPUS_DRUGS, len(p)))
    return f"'{best}' (a drug used only in lupus)" if best in _LUPUS_DRUGS else f"'{best}'"


def assess(
    title: str,
    abstract: str = "",
    *,
    journal: str | None = None,
    mesh: Sequence[Any] = (),
    keywords: Sequence[str] = (),
) -> Relevance:
    """Decide whether a record is about lupus erythematosus, with a 0..1 score and evidence.

    `mesh` holds `MeshHeading`s, paper-schema dicts or bare descriptor names. A record in a
    lupus journal is a lupus paper by definition. Only the first `MAX_TITLE_CHARS` of the title
    and `MAX_ABSTRACT_CHARS` of the abstract are read.
    """
    title, abstract = clip(title or "", MAX_TITLE_CHARS), clip(abstract or "", MAX_ABSTRACT_CHARS)
    return assess_docs(
        title,
        abstract,
        Doc.from_text(title or ""),
        Doc.from_sections([("", abstract)]),
        journal=journal,
        mesh=mesh,
        keywords=keywords,
    )


def _title_weight(t: _Mentions, raw: float, evidence: list[str]) -> float:
    """`raw` plus what the title's mentions weigh: the disease, else a list, else a weak one; a drug."""
    if t.core:
        raw += TITLE_WEIGHT
        overlap = ", as part of an overlap syndrome" if t.overlap == len(t.core) else ""
        evidence.append(f"{_most_telling(t.core)} in the title{overlap}")
    elif t.listed:
        raw += TITLE_LIST_WEIGHT
        evidence.append(f"{_most_telling(t.listed)} in the title, among other diseases")
    elif t.weak:
        raw += TITLE_WEIGHT / 3
    if t.drugs and not t.core:
        raw += DRUG_TITLE_WEIGHT
        evidence.append(f"{_most_telling(t.drugs)} in the title")
    return raw


def _mesh_weight(mesh: Sequence[Any], raw: float, evidence: list[str]) -> float:
    """`raw` plus the best lupus MeSH heading's weight, unless a look-alike is the major topic."""
    best_mesh: tuple[bool, str] | None = None
    trap_major: str | None = None
    for m in mesh:
        name, ui, major = _mesh_name_major(m)
        is_lupus_heading = name.lower() in LUPUS_MESH or bool(ui and ui in LUPUS_MESH_UIS)
        if is_lupus_heading and (best_mesh is None or (major and not best_mesh[0])):
            best_mesh = (major, name)
        if major and name.lower() in TRAP_MESH:
            trap_major = name
    if best_mesh and trap_major and not best_mesh[0]:
        evidence.append(f"MeSH {trap_major} is the major topic; {best_mesh[1]} is not")
        best_mesh = None
    if best_mesh:
        raw += MESH_MAJOR_WEIGHT if best_mesh[0] else MESH_MINOR_WEIGHT
        evidence.append(f"MeSH {best_mesh[1]}" + (" (major topic)" if best_mesh[0] else ""))
    return raw


def _keyword_weight(
    kw_hits_all: list[tuple[str, Doc, list[Hit[tuple[str, str]]]]],
    redefined: bool,
    raw: float,
    evidence: list[str],
    traps: list[str],
) -> float:
    """`raw` plus the keyword weight when a keyword names lupus (once, however many do)."""
    kw_hits: list[str] = []
    for kw, kw_doc, hits in kw_hits_all:
        k = _scan(kw_doc, hits, context=False, redefined=redefined)
        traps.extend(k.traps)
        if k.core:
            kw_hits.append(kw)
    if kw_hits:
        raw += KEYWORD_WEIGHT
        evidence.append(f"keyword '{kw_hits[0]}'")
    return raw


def _abstract_weight(a: _Mentions, t: _Mentions, raw: float, evidence: list[str]) -> float:
    """`raw` plus what the abstract's mentions weigh: the first most, then capped repeats; drugs."""
    n_core = len(a.core)
    if n_core:
        # The first clear mention weighs most: a case report may name the patient's disease
        # only once. A lone mention that does not say who was studied is a passing one.
        first = ABSTRACT_FIRST if a.population else ABSTRACT_FIRST_PASSING
        raw += first + ABSTRACT_WEIGHT * (min(n_core, ABSTRACT_CAP) - 1)
        what = _most_telling(a.core)
        evidence.append(f"{what} in the abstract" + (f" ({n_core} mentions)" if n_core > 1 else ""))
    if a.drugs and not n_core:
        raw += DRUG_ABSTRACT_WEIGHT
        evidence.append(f"{_most_telling(a.drugs)} in the abstract")
    if a.weak and (n_core or t.core):
        raw += 0.5 * min(len(a.weak), 2)
    return raw


def _title_penalty(t: _Mentions, title: str, title_doc: Doc, raw: float) -> float:
    """`raw` less a penalty when the title makes lupus a misdiagnosis or names another disease."""
    if t.differential and not (t.core or t.listed):
        # "lymphoma masquerading as SLE": lupus was the misdiagnosis, and so is every abstract
        # mention that echoes it
        raw -= DIFFERENTIAL_TITLE_PENALTY
    elif not (t.core or t.listed) and title and (t.traps or _OTHER.find(title_doc)):
        # The title names another disease (or a look-alike) and not lupus: lupus is a side issue.
        raw -= OTHER_DISEASE_TITLE_PENALTY
    return raw


def _why_not(
    t: _Mentions,
    a: _Mentions,
    traps: list[str],
    expansion: str | None,
    title: str,
    title_doc: Doc,
    evidence: list[str],
) -> None:
    """Says, for a record judged not about lupus, why the mentions that were found did not count."""
    evidence.extend(dict.fromkeys(_TRAPS[trap] for trap in traps))
    if expansion:
        evidence.append(f"'SLE' here means {expansion}")
    if a.excluded:
        evidence.append("lupus is mentioned only as an exclusion criterion")
    if a.compared or t.compared:
        evidence.append("lupus is mentioned only as a comparison group or in a list of diseases")
    if a.differential or t.differential:
        evidence.append("lupus is mentioned only as a differential diagnosis or misdiagnosis")
    if (t.drugs or a.drugs) and title and _OTHER.find(title_doc):
        evidence.append("a lupus drug, but the title names another disease")
    if a.negated:
        evidence.append("lupus is mentioned only as absent ('no', 'without')")
    if len(a.core) == 1 and not a.population and not t.core:
        evidence.append("lupus is mentioned only once, in passing")
    if not evidence:
        evidence.append("no mention of lupus erythematosus")


def assess_docs(
    title: str,
    abstract: str,
    title_doc: Doc,
    abstract_doc: Doc,
    *,
    journal: str | None = None,
    mesh: Sequence[Any] = (),
    keywords: Sequence[str] = (),
) -> Relevance:
    """`assess` on already tokenised title and abstract (the classifier tokenises them once)."""
    title, abstract = clip(title, MAX_TITLE_CHARS), clip(abstract, MAX_ABSTRACT_CHARS)
    evidence: list[str] = []
    raw = 0.0

    if is_lupus_journal(journal):
        raw += JOURNAL_WEIGHT
        evidence.append(f"published in {journal}, a lupus journal")

    kw_docs = [(kw, Doc.from_text(kw)) for kw in keywords]
    title_hits = _PHRASES.find(title_doc)
    abstract_hits = _PHRASES.find(abstract_doc) if abstract else []
    kw_hits_all = [(kw, d, _PHRASES.find(d)) for kw, d in kw_docs]
    expansion = sle_expansion(f"{title} {abstract}")
    redefined = _redefines_sle(title_hits) or _redefines_sle(abstract_hits) or expansion is not None
    organ_words = title_doc.vocabulary | abstract_doc.vocabulary
    t = _scan(title_doc, title_hits, context=False, redefined=redefined, organ_words=organ_words)
    traps = list(t.traps)
    raw = _title_weight(t, raw, evidence)
    raw = _mesh_weight(mesh, raw, evidence)
    raw = _keyword_weight(kw_hits_all, redefined, raw, evidence, traps)
    a = _scan(abstract_doc, abstract_hits, context=True, redefined=redefined, organ_words=organ_words)
    traps.extend(a.traps)
    raw = _abstract_weight(a, t, raw, evidence)
    raw = _title_penalty(t, title, title_doc, raw)

    raw = max(raw, 0.0)
    score = raw / (raw + _SCALE)
    is_lupus = score >= THRESHOLD
    if not is_lupus:
        _why_not(t, a, traps, expansion, title, title_doc, evidence)
    return Relevance(is_lupus=is_lupus, score=round(score, 3), evidence=evidence)
