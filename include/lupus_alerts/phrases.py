"""Fast phrase matching over tokenised sentences, with negation and exclusion context.

Both the relevance check and the subspecialty classifier look for short phrases ("lupus
nephritis", "ISN/RPS class", "anifrolumab") in titles and abstracts. Running one regular
expression per label over every abstract is slow in Python (the engine tries each
alternative at each position), so text is tokenised once and phrases are looked up by their
first token in a dictionary: the cost is one dictionary probe per token, whatever the number
of phrases. That is what keeps the classifier above 2,000 papers a second on one core.

Phrase syntax (used in `data/taxonomy.yaml`):

- words are matched as whole tokens, case-insensitively: ``lupus nephritis``;
- punctuation inside a phrase is ignored, so ``ISN/RPS`` and ``CAR-T`` match "ISN RPS", "CAR T";
- a trailing ``*`` on a word matches any word starting so: ``nephrit*``;
- a phrase written in capitals only (``SLE``, ``LN``, ``APS``) is an abbreviation and matched
  case-sensitively, so "ln" in "ln(x)" or "aps" in prose are not taken for it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

P = TypeVar("P")

_TOKEN = re.compile(r"[^\W_]+")
# A sentence ends at . ! ? followed by space and a capital, digit or bracket; abbreviations
# that end in a full stop ("St. Louis", "vs. placebo", "et al. showed") do not end one.
_SENT_END = re.compile(r"(?<=[.!?;])\s+(?=[A-Z0-9(\[])")
_NO_BREAK_AFTER = re.compile(r"(?:\b(?:st|vs|al|fig|figs|dr|no|e\.g|i\.e|approx|ca|cf|mr|ms)\.)$", re.I)

# NegEx-style cues (Chapman et al. 2001), kept deliberately short: a negated phrase must be a
# statement about patients ("no renal involvement"), not a result ("no significant difference").
NEG_BEFORE = frozenset(
    {"no", "without", "absence", "absent", "free", "negative", "denied", "excluding", "except", "non"}
)
NEG_BEFORE_BIGRAMS = frozenset(
    {("did", "not"), ("does", "not"), ("do", "not"), ("rule", "out"), ("ruled", "out")}
)
PSEUDO_NEG = frozenset(
    {
        ("no", "significant"),
        ("no", "difference"),
        ("no", "differences"),
        ("no", "association"),
        ("no", "correlation"),
        ("no", "longer"),
        ("no", "change"),
        ("no", "increase"),
        ("no", "decrease"),
        ("and", "without"),
        ("or", "without"),
        ("free", "survival"),
        ("not", "only"),
    }
)
NEG_TERMINATORS = frozenset(
    {"but", "however", "although", "though", "whereas", "while", "yet", "which", "who"}
)
NEG_AFTER = frozenset({"excluded", "absent", "ineligible", "ruled"})
# every word that can make a negation (a sentence without one needs no window check)
_NEGATION_WORDS = NEG_BEFORE | NEG_AFTER | {"not"} | {second for _first, second in NEG_BEFORE_BIGRAMS}
EXCLUSION_SENTENCE = frozenset({"excluded", "exclusion", "exclude", "excluding", "ineligible"})
NEG_WINDOW = 5
# The classifier reads at most this much of a record. PubMed titles are a few hundred
# characters and abstracts rarely pass 5,000; beyond these caps a "title" or "abstract" is a
# feed item's body or a parsing accident, and reading it would only cost time (a 580 KB feed
# item once took 44 s of a poll). Work below the caps is linear in the text.
MAX_TITLE_CHARS = 1_000
MAX_ABSTRACT_CHARS = 20_000
# An abbreviation that does not end a sentence is at most 7 characters ("approx."): the end of
# a sentence is checked on this much of its tail, not on the whole growing sentence.
_TAIL = 16
CACHE_SIZE = 200_000  # distinct tokens remembered per phrase set (their candidate phrases)
NEG_AFTER_WINDOW = 4


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters (see `MAX_TITLE_CHARS`, `MAX_ABSTRACT_CHARS`)."""
    return text if len(text) <= limit else text[:limit]


def tokens(text: str) -> list[str]:
    """The words of `text` as the matcher sees them (punctuation dropped)."""
    return _TOKEN.findall(text)


def split_clauses(text: str) -> list[str]:
    """Split running text into the units the classifier scopes its cues by: sentences, and
    clauses after a semicolon ("no nephritis; renal biopsy showed ..." are two), keeping
    abbreviations such as "St. Louis" whole. Not for showing prose: `text.split_sentences`
    splits sentences only (a digest's snippet must not end at a semicolon)."""
    out: list[list[str]] = []
    tail = ""  # the end of the current sentence, enough to see an abbreviation
    for part in _SENT_END.split(text):
        if out and _NO_BREAK_AFTER.search(tail):
            out[-1].append(part)
            tail = f"{tail} {part}"[-_TAIL:]
        else:
            out.append([part])
            tail = part[-_TAIL:]
    return [s for s in (" ".join(pieces) for pieces in out) if s.strip()]


@dataclass(slots=True)
class Doc:
    """Tokens of one field (title, abstract, ...) with the sentence each token belongs to."""

    tokens: list[str]
    lower: list[str]
    sent: list[int]
    sent_start: list[int]  # first token index of each sentence
    sent_labels: list[str] = field(default_factory=list)  # section category per sentence, "" if none
    # word set -> the sentences containing one of its words, computed once per set
    _flags: dict[frozenset[str], frozenset[int]] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_text(cls, text: str, label: str = "") -> Doc:
        """Tokenise `text`; every sentence gets the section `label` (e.g. "CONCLUSIONS")."""
        return cls.from_sections([(label, text)])

    @classmethod
    def from_sections(cls, sections: Iterable[tuple[str, str]]) -> Doc:
        """Tokenise several (section category, text) pieces into one document."""
        tokens: list[str] = []
        sent: list[int] = []
        sent_start: list[int] = []
        labels: list[str] = []
        for label, text in sections:
            for sentence in split_clauses(text):
                words = _TOKEN.findall(sentence)
                if not words:
                    continue
                sent_start.append(len(tokens))
                labels.append(label)
                sent.extend([len(sent_start) - 1] * len(words))
                tokens.extend(words)
        return cls(tokens, [t.lower() for t in tokens], sent, sent_start, labels)

    def sentence_tokens(self, s: int) -> list[str]:
        """The lower-cased tokens of sentence `s`."""
        end = self.sent_start[s + 1] if s + 1 < len(self.sent_start) else len(self.lower)
        return self.lower[self.sent_start[s] : end]

    def sentences_with(self, words: frozenset[str]) -> frozenset[int]:
        """The sentences holding any of `words` (lower case), found in one pass and remembered,
        so asking it for every hit in a long sentence costs no rescan."""
        found = self._flags.get(words)
        if found is None:
            sent = self.sent
            found = self._flags[words] = frozenset(sent[i] for i, w in enumerate(self.lower) if w in words)
        return found

    def sentence_text(self, s: int) -> str:
        end = self.sent_start[s + 1] if s + 1 < len(self.sent_start) else len(self.tokens)
        return " ".join(self.tokens[self.sent_start[s] : end])


@dataclass(frozen=True, slots=True)
class Hit(Generic[P]):
    """One phrase found in a document: token span [start, end) and the phrase's payloads."""

    phrase: str
    payloads: tuple[P, ...]
    start: int
    end: int
    sentence: int


@dataclass(slots=True)
class _Entry(Generic[P]):
    phrase: str
    words: tuple[str, ...]  # lower-cased unless case-sensitive
    prefix: tuple[bool, ...]
    case_sensitive: bool
    payloads: list[P]


def phrase_words(phrase: str) -> tuple[tuple[str, ...], tuple[bool, ...], bool]:
    """Parse a phrase into its words, per-word prefix flags and whether it is case-sensitive."""
    raw = re.findall(r"[^\W_]+\*?", phrase)
    if not raw:
        raise ValueError(f"empty phrase: {phrase!r}")
    letters = [c for c in phrase if c.isalpha()]
    case_sensitive = sum(c.isupper() for c in letters) >= 2 and all(
        c.isupper() or not c.isascii() for c in letters
    )
    words = tuple(w.rstrip("*") if case_sensitive else w.rstrip("*").lower() for w in raw)
    prefix = tuple(w.endswith("*") for w in raw)
    return words, prefix, case_sensitive


class PhraseSet(Generic[P]):
    """A set of phrases, each carrying payloads (e.g. (label, weight)), found by token lookup."""

    def __init__(self, entries: Iterable[tuple[str, P]] = ()) -> None:
        self._entries: dict[tuple[tuple[str, ...], tuple[bool, ...], bool], _Entry[P]] = {}
        self._exact: dict[str, list[_Entry[P]]] = {}
        self._exact_cs: dict[str, list[_Entry[P]]] = {}
        self._prefix: dict[int, dict[str, list[_Entry[P]]]] = {}
        self._cache: dict[str, tuple[_Entry[P], ...]] = {}
        for phrase, payload in entries:
            self.add(phrase, payload)

    def add(self, phrase: str, payload: P) -> None:
        """Add a phrase; the same phrase added twice accumulates payloads."""
        words, prefix, cs = phrase_words(phrase)
        key = (words, prefix, cs)
        entry = self._entries.get(key)
        if entry is not None:
            entry.payloads.append(payload)
            return
        self._cache.clear()
        entry = _Entry(phrase, words, prefix, cs, [payload])
        self._entries[key] = entry
        if prefix[0]:
            self._prefix.setdefault(len(words[0]), {}).setdefault(words[0], []).append(entry)
        elif cs:
            self._exact_cs.setdefault(words[0], []).append(entry)
        else:
            self._exact.setdefault(words[0], []).append(entry)

    def __len__(self) -> int:
        return len(self._entries)

    def _candidates(self, token: str, low: str) -> tuple[_Entry[P], ...]:
        """Entries whose first word matches `token` (exactly, case-sensitively or by prefix)."""
        cands: list[_Entry[P]] = []
        cands += self._exact.get(low, ())
        cands += self._exact_cs.get(token, ())
        for length, table in self._prefix.items():
            if len(low) >= length:
                cands += table.get(low[:length], ())
        # longest phrases first, so the first full match at a position is the one kept
        cands.sort(key=lambda e: -len(e.words))
        return tuple(cands)

    def find(self, doc: Doc) -> list[Hit[P]]:
        """Leftmost-longest, non-overlapping matches of the phrases in `doc`."""
        hits: list[Hit[P]] = []
        tokens, lower, sent = doc.tokens, doc.lower, doc.sent
        n = len(tokens)
        cache = self._cache
        i = 0
        while i < n:
            tok = tokens[i]
            cands = cache.get(tok)
            if cands is None:
                if len(cache) >= CACHE_SIZE:
                    cache.clear()  # a crude bound: the working vocabulary refills it quickly
                cands = cache[tok] = self._candidates(tok, lower[i])
            if not cands:
                i += 1
                continue
            best: list[_Entry[P]] = []
            best_end = i
            for e in cands:
                nw = len(e.words)
                end = i + nw
                if end < best_end:
                    break  # sorted longest first: nothing longer is left
                if end > n or sent[end - 1] != sent[i]:
                    continue
                if nw > 1:
                    src = tokens if e.case_sensitive else lower
                    ok = True
                    for k in range(1, nw):
                        w = src[i + k]
                        if (not w.startswith(e.words[k])) if e.prefix[k] else (w != e.words[k]):
                            ok = False
                            break
                    if not ok:
                        continue
                if end > best_end:
                    best, best_end = [e], end
                else:  # same span, another phrase ("pathogen*" and "pathogenes*")
                    best.append(e)
            if best:
                payloads = (
                    tuple(best[0].payloads) if len(best) == 1 else tuple(p for e in best for p in e.payloads)
                )
                hits.append(Hit(best[0].phrase, payloads, i, best_end, sent[i]))
                i = best_end
            else:
                i += 1
        return hits


def is_negated(doc: Doc, hit: Hit) -> bool:
    """True when the phrase is negated ("no nephritis", "nephritis was absent") in its sentence."""
    if hit.sentence not in doc.sentences_with(_NEGATION_WORDS):
        return False  # most sentences hold no negation word at all: one set lookup
    s0 = doc.sent_start[hit.sentence]
    lower = doc.lower
    lo = max(s0, hit.start - NEG_WINDOW)
    for j in range(hit.start - 1, lo - 1, -1):
        w = lower[j]
        if w in NEG_TERMINATORS:
            break
        nxt = lower[j + 1] if j + 1 < len(lower) else ""
        prev = lower[j - 1] if j - 1 >= s0 else ""
        if (w, nxt) in PSEUDO_NEG or (prev, w) in PSEUDO_NEG:
            continue
        if w in NEG_BEFORE or (prev, w) in NEG_BEFORE_BIGRAMS:
            return True
        if w == "not" and prev not in ("does", "did", "do", "whether"):
            # "was not diagnosed with", "not have"; "does not" is caught by the bigram above
            return True
    s_end = doc.sent_start[hit.sentence + 1] if hit.sentence + 1 < len(doc.sent_start) else len(lower)
    for j in range(hit.end, min(s_end, hit.end + NEG_AFTER_WINDOW)):
        if lower[j] in NEG_TERMINATORS:
            break
        if lower[j] in NEG_AFTER:
            return True
    return False


def in_exclusion_sentence(doc: Doc, hit: Hit) -> bool:
    """True when the phrase sits in a sentence about exclusion criteria."""
    return hit.sentence in doc.sentences_with(EXCLUSION_SENTENCE)


def matched_text(doc: Doc, hit: Hit) -> str:
    """How to quote a hit in evidence: the phrase as written, with `*` words as found in the text."""
    if "*" not in hit.phrase:
        return hit.phrase
    raw = re.findall(r"[^\W_]+\*?", hit.phrase)
    out = [doc.lower[hit.start + k] if w.endswith("*") else w for k, w in enumerate(raw)]
    return " ".join(out)
