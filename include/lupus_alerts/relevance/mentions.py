"""Each lupus mention of a title, abstract or keyword sorted by what it says: the disease, a
weak abbreviation, a lupus-only drug, or a mention that does not count (a look-alike, an
exclusion, a negation, a comparison or list, a differential diagnosis); and what an author
defined "(SLE)" as."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import pairwise

from lupus_alerts.phrases import Doc, Hit, in_exclusion_sentence, is_negated
from lupus_alerts.relevance.terms import (
    _COMPARATOR_WORDS,
    _DIFFERENTIAL_BIGRAMS,
    _DIFFERENTIAL_WORDS,
    _NOT_AN_OVERLAP_SYNDROME,
    _OTHER,
    _OVERLAP_WORDS,
    _POPULATION_AFTER,
    _POPULATION_BEFORE,
    _RESEMBLANCE_NOUNS,
    _SLE_REDEFINED,
    _TENTATIVE_DIAGNOSIS,
    _WEAK_CONTEXT,
    DIFFERENTIAL_WINDOW,
    OVERLAP_WINDOW,
    POPULATION_AFTER_WINDOW,
    POPULATION_BEFORE_WINDOW,
)


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
