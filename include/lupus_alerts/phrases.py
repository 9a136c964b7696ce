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

import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import compress
from operator import itemgetter
from typing import Any, Generic, TypeVar

P = TypeVar("P")

_TOKEN = re.compile(r"[^\W_]+")
# A sentence ends at . ! ? followed by space and a capital, digit or bracket; abbreviations
# that end in a full stop ("St. Louis", "vs. placebo", "et al. showed") do not end one.
# The stop is matched, not looked behind for, so that the engine skips in C to the next stop
# instead of trying the pattern at every character; the stop stays with its sentence.
_SENT_END = re.compile(r"[.!?;]\s+(?=[A-Z0-9(\[])")
_NO_BREAK_AFTER = re.compile(r"(?:\b(?:st|vs|al|fig|figs|dr|no|e\.g|i\.e|approx|ca|cf|mr|ms)\.)$", re.I)
# On ASCII text the word characters are these (Python's \w is Unicode's letters and digits);
# an explicit range is tested faster than the Unicode category.
_TOKEN_ASCII = re.compile(r"[A-Za-z0-9]+")

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
NEGATION_WORDS = NEG_BEFORE | NEG_AFTER | {"not"} | {second for _first, second in NEG_BEFORE_BIGRAMS}
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


def _sentence_pieces(text: str) -> list[str]:
    """`text` cut at every sentence end: the stop ends its piece, the spaces after it go."""
    pieces = []
    start = 0
    for m in _SENT_END.finditer(text):
        pieces.append(text[start : m.start() + 1])
        start = m.end()
    pieces.append(text[start:])
    return pieces


def split_clauses(text: str) -> list[str]:
    """Split running text into the units the classifier scopes its cues by: sentences, and
    clauses after a semicolon ("no nephritis; renal biopsy showed ..." are two), keeping
    abbreviations such as "St. Louis" whole. Not for showing prose: `text.split_sentences`
    splits sentences only (a digest's snippet must not end at a semicolon)."""
    out: list[list[str]] = []
    tail = ""  # the end of the current sentence, enough to see an abbreviation
    for part in _sentence_pieces(text):
        # an abbreviation ends the tail: no match starts before its last 8 characters
        if out and _NO_BREAK_AFTER.search(tail, max(0, len(tail) - 8)):
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
    _vocabulary: frozenset[str] | None = field(default=None, repr=False, compare=False)

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
                words = (_TOKEN_ASCII if sentence.isascii() else _TOKEN).findall(sentence)
                if not words:
                    continue
                sent_start.append(len(tokens))
                labels.append(label)
                sent.extend([len(sent_start) - 1] * len(words))
                tokens.extend(words)
        return cls(tokens, list(map(str.lower, tokens)), sent, sent_start, labels)

    def sentence_tokens(self, s: int) -> list[str]:
        """The lower-cased tokens of sentence `s`."""
        end = self.sent_start[s + 1] if s + 1 < len(self.sent_start) else len(self.lower)
        return self.lower[self.sent_start[s] : end]

    def sentences_with(self, words: frozenset[str]) -> frozenset[int]:
        """The sentences holding any of `words` (lower case), found in one pass and remembered,
        so asking it for every hit in a long sentence costs no rescan."""
        found = self._flags.get(words)
        if found is None:
            if words.isdisjoint(self.vocabulary):
                found = frozenset()  # the common case for most word sets: no pass over the tokens
            else:
                # the tokens are tested and their sentences picked in C (map, compress)
                found = frozenset(compress(self.sent, map(words.__contains__, self.lower)))
            self._flags[words] = found
        return found

    @property
    def vocabulary(self) -> frozenset[str]:
        """The distinct lower-cased tokens, computed once."""
        if self._vocabulary is None:
            self._vocabulary = frozenset(self.lower)
        return self._vocabulary

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

    def __init__(self, phrase: str, payloads: tuple[P, ...], start: int, end: int, sentence: int) -> None:
        # A frozen dataclass's own __init__ sets each field through object.__setattr__, which
        # cost more than the rest of the matcher per hit; the slots' descriptors set them
        # directly. The instance stays frozen to its users.
        _SET_PHRASE(self, phrase)
        _SET_PAYLOADS(self, payloads)
        _SET_START(self, start)
        _SET_END(self, end)
        _SET_SENTENCE(self, sentence)


_SET_PHRASE, _SET_PAYLOADS, _SET_START, _SET_END, _SET_SENTENCE = (
    Hit.__dict__[name].__set__ for name in ("phrase", "payloads", "start", "end", "sentence")
)


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


# What a phrase set found at one position: the matching entries (each with its rank among the
# token's candidates), the phrase to report and the payloads of all of them, in rank order.
_Found = tuple[tuple[tuple[int, _Entry[Any]], ...], str, tuple[Any, ...]]
# The candidates of one token of a given length: all of them when the phrase is one word long
# ("always"); otherwise looked up by their following word (or words), case-insensitively
# (ci) or as written (cs), and the rest (a following word matched by prefix) checked one by one.
_Group = tuple[
    int,
    "_Found | None",
    dict[str | tuple[str, ...], _Found],
    dict[str | tuple[str, ...], _Found],
    tuple[tuple[int, _Entry[Any]], ...],
]


def _found(pairs: Iterable[tuple[int, _Entry[P]]]) -> _Found:
    ordered = tuple(sorted(pairs, key=itemgetter(0)))
    return ordered, ordered[0][1].phrase, tuple(p for _k, e in ordered for p in e.payloads)


def _following(words: tuple[str, ...]) -> str | tuple[str, ...]:
    """The key of a phrase's words after the first: the word itself when there is one (no
    tuple to build per lookup), else their tuple."""
    return words[1] if len(words) == 2 else words[1:]


def _tail_matches(e: _Entry[P], src: list[str], i: int) -> bool:
    """Whether the words after the first of `e` follow position `i` of `src`."""
    for k in range(1, len(e.words)):
        w = src[i + k]
        if (not w.startswith(e.words[k])) if e.prefix[k] else (w != e.words[k]):
            return False
    return True


V = TypeVar("V")


class TokenMemo(dict[str, V]):
    """What `build` says of each token, computed on the token's first sight and remembered for
    at most `CACHE_SIZE` tokens; `list(map(memo.__getitem__, tokens))` asks it of a whole
    document at C speed."""

    __slots__ = ("_build",)

    def __init__(self, build: Callable[[str], V]) -> None:
        super().__init__()
        self._build = build

    def __missing__(self, token: str) -> V:
        if len(self) >= CACHE_SIZE:
            self.clear()  # a crude bound: the working vocabulary refills it quickly
        value = self[token] = self._build(token)
        return value


class PhraseSet(Generic[P]):
    """A set of phrases, each carrying payloads (e.g. (label, weight)), found by token lookup."""

    def __init__(self, entries: Iterable[tuple[str, P]] = ()) -> None:
        self._entries: dict[tuple[tuple[str, ...], tuple[bool, ...], bool], _Entry[P]] = {}
        self._exact: dict[str, list[_Entry[P]]] = {}
        self._exact_cs: dict[str, list[_Entry[P]]] = {}
        self._prefix: dict[int, dict[str, list[_Entry[P]]]] = {}
        self._cache: TokenMemo[tuple[_Group, ...]] = TokenMemo(self._plan)
        for phrase, payload in entries:
            self.add(phrase, payload)

    def add(self, phrase: str, payload: P) -> None:
        """Add a phrase; the same phrase added twice accumulates payloads."""
        words, prefix, cs = phrase_words(phrase)
        key = (words, prefix, cs)
        self._cache.clear()  # the plans hold the entries' payloads
        entry = self._entries.get(key)
        if entry is not None:
            entry.payloads.append(payload)
            return
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

    def _plan(self, token: str) -> tuple[_Group, ...]:
        """`token`'s candidates by length, longest first, each length ready to be matched with
        one dictionary probe instead of a comparison per phrase."""
        by_len: dict[int, list[tuple[int, _Entry[P]]]] = {}
        for rank, e in enumerate(self._candidates(token, token.lower())):
            by_len.setdefault(len(e.words), []).append((rank, e))
        plan: list[_Group] = []
        for nw, pairs in by_len.items():  # already longest first
            if nw == 1:
                plan.append((nw, _found(pairs), {}, {}, ()))
                continue
            keyed: tuple[dict[str | tuple[str, ...], list[tuple[int, _Entry[P]]]], ...] = ({}, {})
            others = []
            for rank, e in pairs:
                if any(e.prefix[1:]):
                    others.append((rank, e))
                else:
                    keyed[e.case_sensitive].setdefault(_following(e.words), []).append((rank, e))
            ci, cs = ({k: _found(v) for k, v in d.items()} for d in keyed)
            plan.append((nw, None, ci, cs, tuple(others)))
        return tuple(plan)

    def find(self, doc: Doc) -> list[Hit[P]]:
        """Leftmost-longest, non-overlapping matches of the phrases in `doc`."""
        hits: list[Hit[P]] = []
        tokens, lower, sent = doc.tokens, doc.lower, doc.sent
        n = len(tokens)
        # Most tokens start no phrase. Their plans are looked up for the whole document at
        # once (map and compress run in C) and only the positions where a phrase can start
        # are visited: a per-token Python loop was most of the matcher's time.
        at = list(map(self._cache.__getitem__, tokens))
        nxt = 0  # the first position not inside a phrase already found
        for i in compress(range(n), at):
            if i < nxt:
                continue
            si = sent[i]
            for nw, always, ci, cs, others in at[i]:
                end = i + nw
                if end > n or sent[end - 1] != si:
                    continue
                found = always
                if found is None:
                    found = ci.get(lower[i + 1] if nw == 2 else tuple(lower[i + 1 : end])) if ci else None
                    if cs or others:
                        pairs = list(found[0]) if found else []
                        if cs and (more := cs.get(tokens[i + 1] if nw == 2 else tuple(tokens[i + 1 : end]))):
                            pairs += more[0]
                        pairs += [
                            (k, e)
                            for k, e in others
                            if _tail_matches(e, tokens if e.case_sensitive else lower, i)
                        ]
                        if not pairs:
                            continue
                        if found is None or len(pairs) > len(found[0]):
                            found = _found(pairs)
                    elif found is None:
                        continue
                hits.append(Hit(found[1], found[2], i, end, si))
                nxt = end
                break
        return hits


def is_negated(doc: Doc, hit: Hit) -> bool:
    """True when the phrase is negated ("no nephritis", "nephritis was absent") in its sentence."""
    if hit.sentence not in doc.sentences_with(NEGATION_WORDS):
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
    out = [
        doc.lower[hit.start + k] if w.endswith("*") else w for k, w in enumerate(_written_words(hit.phrase))
    ]
    return " ".join(out)


@functools.lru_cache(maxsize=4096)
def _written_words(phrase: str) -> tuple[str, ...]:
    """The words of a phrase as written, a trailing `*` kept (phrases come from a fixed list)."""
    return tuple(re.findall(r"[^\W_]+\*?", phrase))
