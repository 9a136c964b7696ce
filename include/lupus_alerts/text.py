"""Titles and journal names folded for comparison: one normaliser of each, used wherever
papers are matched (dedupe) or journals recognised (relevance)."""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterable

_TAG = re.compile(r"<[^>]{0,200}>")
_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)
_PARENTHETICAL = re.compile(r"\([^)]*\)|\[[^\]]*\]")
_JOURNAL_STOPWORDS = frozenset({"the", "of", "and", "for", "in", "on", "de", "la", "le", "der", "und"})


def normalize_title(title: str | None) -> str:
    """Title folded for matching: markup and entities removed, accents folded, lower-case,
    every non-alphanumeric character dropped ("<i>In vivo</i> B-cell..." -> "invivobcell...")."""
    if not title:
        return ""
    text = html.unescape(_TAG.sub(" ", title)) if ("<" in title or "&" in title) else title
    if not text.isascii():  # most titles are ASCII: skip the per-character Unicode work
        text = unicodedata.normalize("NFKD", text)
        text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return _NON_WORD.sub("", text.casefold())


def normalize_journal(name: str | None) -> str:
    """Journal name folded for comparison: "The Lancet. Rheumatology (London)" -> "lancet rheumatology"."""
    if not name:
        return ""
    text = _PARENTHETICAL.sub(" ", html.unescape(name)).replace("&", " and ")
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()
    words = [w for w in _NON_WORD.sub(" ", text).split() if w not in _JOURNAL_STOPWORDS]
    return " ".join(words)


def journals_compatible(a: Iterable[str | None], b: Iterable[str | None]) -> bool:
    """Whether two sets of names (full titles, ISO abbreviations) can name the same journal.

    True when either side names no journal, when normalised names are equal, or when one is an
    abbreviation of the other word by word ("lupus sci med" ~ "lupus science medicine").
    """
    na = {n for n in map(normalize_journal, a) if n}
    nb = {n for n in map(normalize_journal, b) if n}
    if not na or not nb:
        return True
    return any(_abbreviates(x, y) or _abbreviates(y, x) for x in na for y in nb)


def _abbreviates(short: str, full: str) -> bool:
    sw, fw = short.split(), full.split()
    return len(sw) == len(fw) and all(f.startswith(s) for s, f in zip(sw, fw, strict=True))


# A full stop ends a sentence unless it belongs to an abbreviation or a number ("e.g.", "vs.",
# "et al.", "Fig. 2", "3.5"); the next sentence starts with a capital, digit or bracket.
_ABBREV = re.compile(
    r"(?:\b(?:e\.g|i\.e|et al|vs|approx|ca|cf|Fig|Figs|Dr|Drs|Prof|No|Nos|Ref|Vol|St|Jr|Sr|Inc|Ltd|Co|resp)"
    r"|\b[A-Z])\.$"
)
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_WS = re.compile(r"\s+")


def split_sentences(text: str) -> list[str]:
    """Split prose into sentences, keeping abbreviations and decimals inside their sentence."""
    text = _WS.sub(" ", text).strip()
    out: list[str] = []
    start = 0
    for m in _SENTENCE_END.finditer(text):
        candidate = text[start : m.end()].strip()
        if _ABBREV.search(candidate.rstrip("\"')]")):
            continue
        out.append(candidate)
        start = m.end()
    if start < len(text):
        out.append(text[start:].strip())
    return [s for s in out if s]
