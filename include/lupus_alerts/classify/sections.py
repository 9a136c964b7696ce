"""Where in a paper a cue was found: the abstract's sections (structured, written inline, or
by place in an unstructured abstract), how much each sentence counts, and each sentence's
location for the learned layer."""

from __future__ import annotations

import re
from itertools import pairwise

from lupus_alerts.models import Paper
from lupus_alerts.phrases import MAX_ABSTRACT_CHARS, MAX_TITLE_CHARS, Doc, clip

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
