"""The decision: what the title's, MeSH's, keywords' and abstract's mentions weigh, the score
and whether it makes a lupus paper, and the evidence for a clinician (or why not)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lupus_alerts.models import MeshHeading
from lupus_alerts.phrases import MAX_ABSTRACT_CHARS, MAX_TITLE_CHARS, Doc, Hit, clip
from lupus_alerts.relevance.mentions import _Mentions, _redefines_sle, _scan, sle_expansion
from lupus_alerts.relevance.terms import (
    _LUPUS_DRUGS,
    _OTHER,
    _PHRASES,
    _TRAPS,
    LUPUS_JOURNALS,
    LUPUS_MESH,
    LUPUS_MESH_UIS,
    TRAP_MESH,
)
from lupus_alerts.text import normalize_journal

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
