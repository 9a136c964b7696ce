"""How a paper's fields read in a digest: the title link, the author list, the abstract snippet,
dates and periods, journal names as readers know them, the subject line, and the length caps that
keep a digest under Gmail's clipping limit. Pure functions of plain values."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any
from urllib.parse import quote

from lupus_alerts.text import split_sentences

# Caps that keep a 50-paper digest under Gmail's 102 KB clipping limit whatever the records
# hold (tests/unit/test_digest_render.py renders a worst case).
SNIPPET_MAX_CHARS = 300
SNIPPET_MAX_SENTENCES = 3
TITLE_MAX_CHARS = 200
JOURNAL_MAX_CHARS = 70
AUTHOR_MAX_CHARS = 30
MAX_BADGES = 3
# The listed topic shows two pieces of evidence, the other badges one each.
EVIDENCE_PRIMARY = 2
EVIDENCE_OTHER = 1
EVIDENCE_MAX_CHARS = 80
EVIDENCE_LINE_MAX_CHARS = 160
SUBJECT_TOPICS = 3


def paper_url(doi: str | None, pmid: str | None, url: str | None) -> str | None:
    """The title link: doi.org for a DOI, else PubMed for a PMID, else the journal's link."""
    if doi:
        return "https://doi.org/" + quote(doi, safe="/:;()._-")
    if pmid and str(pmid).isdigit():
        return f"https://pubmed.ncbi.nlm.nih.gov/{pmid}/"
    if url and url.startswith(("http://", "https://")):
        return url
    return None


def _author_name(a: Mapping[str, Any]) -> str:
    if a.get("collective_name"):
        return str(a["collective_name"])
    last, initials, fore = a.get("last_name"), a.get("initials"), a.get("fore_name")
    if last and initials:
        return f"{last} {initials}"
    return " ".join(p for p in (last, fore) if p)


def authors_text(authors: Sequence[Mapping[str, Any]], limit: int = 3) -> str:
    """The first `limit` authors, then "et al." if there are more."""
    names = [truncate_words(n, AUTHOR_MAX_CHARS) for n in (_author_name(a) for a in authors) if n]
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[:limit]) + ", et al."


_WS = re.compile(r"\s+")


def truncate_words(text: str, max_chars: int) -> str:
    """`text` cut at a word boundary to at most max_chars, with "…" when cut."""
    text = _WS.sub(" ", text).strip()
    if len(text) <= max_chars:
        return text
    cut = text[: max_chars - 1]
    space = cut.rfind(" ")
    if space > max_chars // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:.-…") + "…"


def abstract_snippet(
    abstract: str,
    sections: Sequence[Mapping[str, Any]] = (),
    *,
    max_sentences: int = SNIPPET_MAX_SENTENCES,
    max_chars: int = SNIPPET_MAX_CHARS,
) -> str:
    """Two or three whole sentences of the abstract, never cut mid-word, at most max_chars.

    A structured abstract is summarised by its conclusions (what a clinician scans for),
    prefixed "Conclusions:"; otherwise the abstract's opening sentences are used.
    """
    prefix = ""
    text = abstract or ""
    for s in sections:
        cat = str(s.get("category") or "").upper()
        label = str(s.get("label") or "").lower()
        if s.get("text") and (cat == "CONCLUSIONS" or "conclusion" in label or "interpretation" in label):
            prefix, text = "Conclusions: ", str(s["text"])
            break
    else:
        if sections and any(s.get("label") for s in sections):
            text = " ".join(str(s.get("text") or "") for s in sections)
    sentences = split_sentences(text)
    if not sentences:
        return ""
    budget = max_chars - len(prefix)
    chosen: list[str] = []
    for s in sentences[:max_sentences]:
        if chosen and len(" ".join([*chosen, s])) > budget:
            break
        chosen.append(s)
    return prefix + truncate_words(" ".join(chosen), budget)


def format_date(d: date | None) -> str:
    """ "27 Nov 2026" (no leading zero), or "" for no date."""
    return f"{d.day} {d:%b %Y}" if d else ""


def period_text(period: str) -> str:
    """A ledger period ("2026-11-27", "2026-W48") as a reader sees it."""
    try:
        if "-W" in period:
            year, week = period.split("-W")
            monday = date.fromisocalendar(int(year), int(week), 1)
            sunday = date.fromisocalendar(int(year), int(week), 7)
            return f"week of {format_date(monday)} – {format_date(sunday)}"
        return format_date(date.fromisoformat(period))
    except ValueError:
        return period


def subject_line(
    paper_count: int,
    topic_counts: Sequence[tuple[str, int]],
    day: date,
    *,
    update_count: int = 0,
    max_topics: int = SUBJECT_TOPICS,
) -> str:
    """ "Lupus digest · 12 new papers (Nephrology 4, Dermatology 3, …) · 27 Nov 2026"."""
    if paper_count:
        noun = "paper" if paper_count == 1 else "papers"
        head = f"{paper_count} new {noun}"
        if topic_counts:
            shown = ", ".join(f"{n} {c}" for n, c in topic_counts[:max_topics])
            more = ", …" if len(topic_counts) > max_topics else ""
            head += f" ({shown}{more})"
    else:
        head = "no new papers"
    if update_count:
        head += f" · {update_count} update{'s' if update_count != 1 else ''}"
    return f"Lupus digest · {head} · {format_date(day)}"


# NLM writes journal titles in sentence case with the place of publication for disambiguation:
# "Arthritis & rheumatology (Hoboken, N.J.)", "Kidney international". Readers know them as
# "Arthritis & Rheumatology" and "Kidney International".
_PLACE_QUALIFIER = re.compile(r"\s*\((?:[^()]*,\s*)?(?:[A-Z][a-z]*\.?\s?)+\)\s*$")
_SMALL_WORDS = frozenset(
    {"a", "an", "and", "at", "de", "der", "du", "et", "for", "in", "of", "on", "the", "to", "und"}
)


def display_journal(name: str) -> str:
    """A journal's name as readers know it: NLM's place qualifier dropped, and NLM's sentence
    case turned into title case. Names already cased by their publisher ("Lupus Science &
    Medicine", "npj Digital Medicine", "The Lancet. Rheumatology") are left as they are."""
    text = _PLACE_QUALIFIER.sub("", name.strip()) or name.strip()
    segments = re.split(r"(\.\s+|:\s+)", text)  # "Nature reviews. Rheumatology" has two
    words = [w for seg in segments[::2] for w in seg.split()[1:]]
    if any(ch.isupper() for w in words for ch in w):
        return text  # cased by the publisher, not sentence case
    out = []
    for k, seg in enumerate(segments):
        if k % 2:
            out.append(seg)
            continue
        ws = seg.split(" ")
        out.append(
            " ".join(
                w if i == 0 or w in _SMALL_WORDS or not w[:1].isalpha() else w[:1].upper() + w[1:]
                for i, w in enumerate(ws)
            )
        )
    return "".join(out)
