"""DOI normalisation: every way a DOI is written in the wild, to one canonical key.

The canonical form is the bare DOI in lower case, `10.<registrant>/<suffix>`. DOIs are
case-insensitive by definition (DOI Handbook 2.4), so lower-casing loses nothing and lets the
store's unique index on `papers.doi` do the matching.

Accepted forms (any letter case, surrounding whitespace, HTML entities, percent-encoding):
`10.1002/art.1`, `doi:10.1002/art.1`, `DOI: 10.1002/art.1`, `info:doi/10.1002/art.1`,
`urn:doi:10.1002/art.1`, `https://doi.org/10.1002%2Fart.1`, `http://dx.doi.org/...`,
publisher links that embed the DOI (`https://onlinelibrary.wiley.com/doi/abs/10.1002/art.1?af=R`),
MEDLINE's `10.1002/art.1 [doi]`, and any of these followed by sentence punctuation.

What is kept: the suffix is opaque to the DOI system, so every printable character survives,
including the `<>;()[]:` of SICI-style DOIs
(`10.1002/(sici)1097-0258(19980815/30)17:15/16<1661::aid-sim968>3.0.co;2-2`).
What is dropped: trailing `. , ; : ! ? ' " /` and *unbalanced* closing brackets, because in
running text and citation lists those belong to the sentence, not to the DOI (a DOI that truly
ends in `)` has its `(` inside it, so balanced parentheses are kept). Rules and their reasons
are in docs/dedupe.md.
"""

from __future__ import annotations

import html
import re
from urllib.parse import unquote

# Registrant codes are "10." + digits, optionally with sub-divisions ("10.1000.10"); Crossref's
# own recommendation is 4-9 digits. The look-behind stops "210.1000/x" matching from the middle.
_DOI_START = re.compile(r"(?<!\d)10\.\d{4,9}(?:\.\d+)*/")
_CANONICAL = re.compile(r"10\.\d{4,9}(?:\.\d+)*/\S+")
# A whole identifier that is a URL: its query string and fragment are not part of the DOI.
_URL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:)?//", re.IGNORECASE)
_MEDLINE_SUFFIX = re.compile(r"\s*\[doi\]\s*$", re.IGNORECASE)
# Whitespace that str.strip() misses and that feeds and copy-paste inject around identifiers.
_INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff\u00ad"
_TRAILING_PUNCT = ".,;:!?'\"/"
_CLOSERS = {")": "(", "]": "[", "}": "{", ">": "<"}
# In free text a candidate ends at whitespace, a quote, or the start of an HTML tag ("<a", "</",
# "<!"); a "<" followed by a digit or ":" is SICI and stays.
_FREE_TEXT_CANDIDATE = re.compile(
    r"(?:https?://[^\s\"'<>]*?)?(?<!\d)10\.\d{4,9}(?:\.\d+)*(?:/|%2f)(?:[^\s\"'<]|<(?![a-z/!?]))+",
    re.IGNORECASE,
)
_MAX_PASSES = 8
# Already canonical and made only of characters no step below would touch: returned as is.
# (Most DOIs the store sees were normalised before; this keeps re-checking them cheap.)
_PLAIN_CANONICAL = re.compile(r"10\.\d{4,9}(?:\.\d+)*/[a-z0-9\-._;()/:<>]*[a-z0-9]")


def normalize_doi(text: str | None) -> str | None:
    """The canonical lower-case `10.xxxx/...` form of a DOI written in any common way.

    `text` is one identifier field (a feed's `dc:identifier`, an ELocationID, a doi.org link,
    a publisher link with the DOI in its path). Returns None when it holds no DOI. Idempotent:
    `normalize_doi(normalize_doi(x)) == normalize_doi(x)`.
    """
    if not isinstance(text, str):
        return None
    if _PLAIN_CANONICAL.fullmatch(text):
        return text
    current = text
    # Entities and percent-escapes can be nested ("&amp;lt;", "%2526"), and decoding one layer
    # can reveal another, so decode until nothing changes; that fixed point is what makes the
    # function idempotent. Up to _MAX_PASSES layers are undone (one more pass confirms the
    # fixed point); a DOI buried deeper is not one anybody wrote, and a half-decoded answer
    # would not be idempotent, so it is None.
    for _ in range(_MAX_PASSES + 1):
        result = _normalize_once(current)
        if result is None or result == current:
            return result
        current = result
    return None


def find_doi(text: str | None) -> str | None:
    """The first DOI inside free text (an abstract, an HTML description, a citation), normalised.

    Looks at doi.org and publisher links as well as bare `10.xxxx/...` strings, in order of
    appearance. Returns None when the text holds no DOI.
    """
    if not isinstance(text, str) or "10." not in text:
        return None
    # Descriptions in feeds are often HTML escaped once more ("&lt;a href=...&gt;"); unescaping
    # first turns that into real tags, which the candidate pattern stops at.
    unescaped = html.unescape(text)
    for match in _FREE_TEXT_CANDIDATE.finditer(unescaped):
        doi = normalize_doi(match.group(0))
        if doi:
            return doi
    return None


def _normalize_once(text: str) -> str | None:
    s = _strip(text)
    s = html.unescape(s)
    s = _strip(s)
    if _URL.match(s):
        # Cut query and fragment before percent-decoding: an encoded "%3F" belongs to the DOI,
        # a literal "?" starts the URL's query.
        s = s.split("#", 1)[0].split("?", 1)[0]
    s = unquote(s)
    s = _MEDLINE_SUFFIX.sub("", s)
    start = _DOI_START.search(s)
    if start is None:
        return None
    doi = s[start.start() :].split(None, 1)[0]
    doi = _trim_trailing(doi).lower()
    return doi if _is_canonical(doi) else None


def _is_canonical(doi: str) -> bool:
    # DOI names are printable characters (ISO 26324); a control character is not part of one.
    return _CANONICAL.fullmatch(doi) is not None and doi.isprintable()


def _strip(s: str) -> str:
    for ch in _INVISIBLE:
        s = s.replace(ch, "")
    return s.strip()


def _trim_trailing(doi: str) -> str:
    while doi:
        last = doi[-1]
        unbalanced = last in _CLOSERS and doi.count(_CLOSERS[last]) < doi.count(last)
        if last not in _TRAILING_PUNCT and not unbalanced:
            break
        doi = doi[:-1]
    return doi
