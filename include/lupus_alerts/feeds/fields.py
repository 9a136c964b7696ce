"""The text of one field of a feed item: HTML reduced to text, citation lines, authors, dates.

Owns the readers that turn one publisher string into a value: `html_to_text` (tags, scripts
and control characters dropped), `strip_citation_line` (Atypon's leading "Journal, Ahead of
Print."), `split_authors` and `parse_author` (the ways publishers pack names into one
element), and `parse_date_text` (RFC 822, W3CDTF and the prose dates, never raising).
"""

from __future__ import annotations

import contextlib
import re
from datetime import date
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from typing import Any

from lupus_alerts.models import Author

_BLOCK_TAGS = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "blockquote"}
_SKIP_TAGS = {"script", "style", "head", "title"}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self._skip += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(value: str) -> str:
    """Plain text from a feed's HTML (or text) field: tags dropped, entities decoded, no
    control characters, paragraphs kept as single newlines and runs of spaces collapsed."""
    if not value:
        return ""
    if "<" in value or "&" in value:
        extractor = _TextExtractor()
        extractor.feed(value)
        extractor.close()
        value = "".join(extractor.parts)
    value = _CONTROL.sub("", value)
    lines = [_SPACES.sub(" ", line).strip() for line in value.split("\n")]
    return "\n".join(line for line in lines if line)


# The citation line Atypon's Literatum (Wiley, SAGE, Taylor & Francis, ACR, ...) puts before an
# item's abstract, on a line of its own: "Lupus, Ahead of Print.", "Arthritis & rheumatology
# (Hoboken, N.J.), Ahead of Print.", "Arthritis Care & Research, EarlyView.", "ChemBioChem,
# Volume 27, Issue 11, 15 June 2026.", "Lupus, Volume 35, Issue 2, Page 123-130, February 2026."
_CITATION_LINE = re.compile(
    r"[^\n]{1,200}?,\s*(?:Ahead of Print|Early\s?View|Accepted Article"
    r"|Volume\s+\d+(?:,\s*Issue\s+[^,\n]+)?(?:,\s*Page\s+[^,\n]+)?(?:,\s*[^,\n]{1,40})?)\.\s*(?:\n|$)",
    re.IGNORECASE,
)


def strip_citation_line(text: str) -> str:
    """`text` without a publisher's leading citation line (see `_CITATION_LINE`): the line
    must end where the citation ends, so a first sentence that merely mentions a volume stays."""
    m = _CITATION_LINE.match(text)
    return text[m.end() :].lstrip() if m else text


def _text(value: Any) -> str:
    """Single-line safe text (titles, names)."""
    return " ".join(html_to_text(str(value or "")).split())


_INITIALS = re.compile(r"^(?:[A-Z][a-z]?\.?[\s-]*){1,4}$")
_PARTICLES = {
    "van",
    "von",
    "de",
    "der",
    "den",
    "da",
    "di",
    "du",
    "la",
    "le",
    "del",
    "della",
    "dos",
    "ter",
    "ten",
    "bin",
    "al",
    "el",
}
_AND = re.compile(r"\s+(?:and|&)\s+|\s*&\s*", re.IGNORECASE)
_ET_AL = re.compile(r",?\s*\bet\s+al\.?\s*$", re.IGNORECASE)


def split_authors(text: str) -> list[str]:
    """Split one author string into names.

    Publishers pack authors into a single dc:creator in several ways: "A B, C D and E F"
    (Wiley, Elsevier), "Last, F., Last, G." (bioRxiv, HighWire), "Last F; Last G". A comma
    followed by initials alone joins "Last, F." back into one name.
    """
    text = _ET_AL.sub("", " ".join(text.split())).strip(" ,;")
    if not text:
        return []
    if ";" in text:
        pieces = [p.strip() for p in text.split(";")]
        names = []
        for p in pieces:
            names.extend(q.strip() for q in _AND.split(p))
        return [n for n in names if n]
    raw = [p.strip() for p in text.split(",")]
    pieces = []
    for p in raw:
        pieces.extend(q.strip() for q in _AND.split(p))
    pieces = [p for p in pieces if p]
    names: list[str] = []
    i = 0
    while i < len(pieces):
        cur = pieces[i]
        nxt = pieces[i + 1] if i + 1 < len(pieces) else None
        if nxt is not None and _INITIALS.match(nxt) and not _INITIALS.match(cur):
            names.append(f"{cur}, {nxt}")
            i += 2
        else:
            names.append(cur)
            i += 1
    return names


def parse_author(name: str) -> Author:
    """An Author from one name: "Last, F. M.", "Last FM", "First M. Last", "Erik van Widenfelt"."""
    name = name.strip()
    if "," in name:
        last, _, fore = name.partition(",")
        last, fore = last.strip(), fore.strip()
        return Author(last_name=last or None, fore_name=fore or None, initials=_initials(fore) or None)
    tokens = name.split()
    if len(tokens) == 1:
        return Author(last_name=tokens[0])
    if _INITIALS.match(tokens[-1]) and tokens[-1].replace(".", "").isupper() and len(tokens[-1]) <= 4:
        # Vancouver style "Smith JA"
        return Author(last_name=" ".join(tokens[:-1]), initials=tokens[-1].replace(".", ""))
    split_at = len(tokens) - 1
    while split_at > 1 and tokens[split_at - 1].lower() in _PARTICLES:
        split_at -= 1
    fore = " ".join(tokens[:split_at])
    return Author(last_name=" ".join(tokens[split_at:]), fore_name=fore, initials=_initials(fore) or None)


def _initials(fore: str) -> str:
    return "".join(part[0].upper() for part in re.split(r"[\s.\-]+", fore) if part and part[0].isalpha())


_MONTHS = {
    m: i
    for i, names in enumerate(
        [
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ],
        start=1,
    )
    for m in names
}
_ISO_DAY = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_DAY_MONTH_YEAR = re.compile(r"\b(\d{1,2})\s+([A-Za-z]{3,9})\.?,?\s+(\d{4})\b")
_MONTH_DAY_YEAR = re.compile(r"\b([A-Za-z]{3,9})\.?\s+(\d{1,2}),?\s+(\d{4})\b")
_MONTH_YEAR = re.compile(r"\b([A-Za-z]{3,9})\.?\s+(\d{4})\b")


# What a date built from hostile text can raise: ValueError (year 0, month 13), OverflowError
# (email.utils on a 20-digit year or zone: "Python int too large to convert to C long"),
# TypeError and IndexError (email.utils on odd token counts).
_BAD_DATE = (ValueError, OverflowError, TypeError, IndexError)


def parse_date_text(text: str) -> date | None:
    """A calendar date from a feed's date string: RFC 822, ISO 8601/W3CDTF, "2018-12-17-08:00",
    "21 November 2024", "Nov 21, 2024", "February 2025" (first of the month). None if none.

    Never raises: a date that cannot be read costs only the date (the caller falls back to the
    day the item was first seen), never the item or the feed.
    """
    text = " ".join((text or "").split())
    if not text:
        return None
    with contextlib.suppress(*_BAD_DATE):
        return parsedate_to_datetime(text).date()
    for attempt in (_iso_day, _day_month_year, _month_day_year, _month_year, _year_month):
        with contextlib.suppress(*_BAD_DATE):
            if (found := attempt(text)) is not None:
                return found
    return None


def _iso_day(text: str) -> date | None:
    m = _ISO_DAY.search(text)
    return date(int(m[1]), int(m[2]), int(m[3])) if m else None


def _day_month_year(text: str) -> date | None:
    m = _DAY_MONTH_YEAR.search(text)
    return date(int(m[3]), _MONTHS[m[2].lower()], int(m[1])) if m and m[2].lower() in _MONTHS else None


def _month_day_year(text: str) -> date | None:
    m = _MONTH_DAY_YEAR.search(text)
    return date(int(m[3]), _MONTHS[m[1].lower()], int(m[2])) if m and m[1].lower() in _MONTHS else None


def _month_year(text: str) -> date | None:
    m = _MONTH_YEAR.search(text)
    return date(int(m[2]), _MONTHS[m[1].lower()], 1) if m and m[1].lower() in _MONTHS else None


def _year_month(text: str) -> date | None:
    m = re.fullmatch(r"(\d{4})(?:-(\d{2}))?", text)
    return date(int(m[1]), int(m[2] or 1), 1) if m else None
