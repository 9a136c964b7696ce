"""One field's value in PubMed XML: text with inline markup flattened, DOIs, and dates.

Owns how an element's text is read (sub/sup/i/b/u keep their text, MathML keeps its tokens,
whitespace collapsed), DOI normalisation with the project's rules (`lupus_alerts.doi`), and
PubMed's date forms: Year/Month/Day, Season and MedlineDate ("1998 Dec-1999 Jan"), each read
as its best single date plus the original text.
"""

from __future__ import annotations

import calendar
import re
from datetime import date

from lxml import etree

from lupus_alerts.doi import normalize_doi

MATHML_NS = "http://www.w3.org/1998/Math/MathML"

_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_abbr) if name}
# A season names a quarter; the best single date is its first month (northern hemisphere, the
# convention of the journals that use seasons). Winter is the January issue of its year.
_SEASONS = {"spring": 3, "summer": 6, "fall": 9, "autumn": 9, "winter": 1}
_MEDLINE_DATE = re.compile(
    r"(?P<year>\d{4})(?:\s*(?P<mon>[A-Za-z]+)(?:\s+(?P<day>\d{1,2})\b)?)?",
)


# -- DOI -------------------------------------------------------------------------------------


def _normalize_doi(text: str | None) -> str | None:
    """Normalise a DOI with the project's rules (lupus_alerts.doi), so sources agree on keys."""
    if not text:
        return None
    # Lower-casing first changes nothing in the result (DOIs are case-insensitive and the
    # canonical form is lower case) but lets normalize_doi take its fast path for the plain
    # DOIs PubMed carries.
    return normalize_doi(text.strip().lower())


# -- text ------------------------------------------------------------------------------------


def _text(el: etree._Element | None) -> str:
    """All text inside `el` with inline markup flattened and whitespace collapsed.

    <sub>/<sup>/<i>/<b>/<u> keep their text (CO<sub>2</sub> reads CO2); MathML keeps its token
    text, joined without the indentation between tokens (R<sup>2</sup> reads R2).
    """
    if el is None:
        return ""
    if not len(el):  # the common case, no markup inside: skip the tree walk
        t = el.text
        return " ".join(t.split()) if t else ""
    parts: list[str] = []
    _collect(el, parts, top=True)
    return " ".join("".join(parts).split())


def _collect(el: etree._Element, parts: list[str], *, top: bool = False) -> None:
    tag = el.tag
    if isinstance(tag, str) and tag.startswith("{" + MATHML_NS):
        parts.append("".join(t.strip() for t in el.itertext()))
    else:
        if el.text:
            parts.append(el.text)
        for child in el:
            if isinstance(child.tag, str):
                _collect(child, parts)
            elif child.tail:  # comments and processing instructions: keep only their tail
                parts.append(child.tail)
    if not top and el.tail:
        parts.append(el.tail)


def _first_text(el: etree._Element, path: str) -> str | None:
    found = el.find(path)
    if found is None:
        return None
    t = _text(found)
    return t or None


def _plain(el: etree._Element) -> str | None:
    """An element's stripped text, or None when empty (for identifiers and codes)."""
    t = el.text
    if t:
        t = t.strip()
    return t or None


# -- dates -----------------------------------------------------------------------------------


def _month(value: str | None) -> int | None:
    if not value:
        return None
    v = value.strip().lower()
    if v.isdigit():
        m = int(v)
        return m if 1 <= m <= 12 else None
    return _MONTHS.get(v[:3])


def _safe_date(year: int, month: int | None, day: int | None) -> date | None:
    month = month or 1
    day = day or 1
    try:
        return date(year, month, day)
    except ValueError:
        try:  # a day past the month's end (e.g. "Feb 30"): keep year and month
            return date(year, month, 1)
        except ValueError:
            return None


def _date_parts(el: etree._Element) -> dict[str, str]:
    """Child tag -> stripped text, for the small date elements (one pass, no ElementPath)."""
    parts: dict[str, str] = {}
    for c in el:
        t = c.text
        if t:
            parts[c.tag] = t.strip()
    return parts


def parse_pub_date(el: etree._Element | None) -> tuple[date | None, str | None]:
    """A PubDate (Year/Month/Day, Season, or MedlineDate) as (best date, original text)."""
    if el is None:
        return None, None
    parts = _date_parts(el)
    medline = parts.get("MedlineDate")
    if medline:
        return parse_medline_date(medline), " ".join(medline.split())
    year = parts.get("Year", "")
    month = parts.get("Month", "")
    day = parts.get("Day", "")
    season = parts.get("Season", "")
    text = " ".join(p for p in (year, month or season, day) if p) or None
    if not year.isdigit():
        return None, text
    m = _month(month) or _SEASONS.get(season.lower())
    return _safe_date(int(year), m, int(day) if day.isdigit() else None), text


def parse_medline_date(text: str) -> date | None:
    """The first date a MedlineDate names: "1998 Dec-1999 Jan" -> 1998-12-01, "1947-1948" -> 1947-01-01."""
    m = _MEDLINE_DATE.search(text)
    if not m:
        return None
    mon = m.group("mon")
    month = _month(mon) if mon else None
    if month is None and mon:
        month = _SEASONS.get(mon.lower())
    day = int(m.group("day")) if m.group("day") and month else None
    return _safe_date(int(m.group("year")), month, day)


def _ymd(el: etree._Element | None) -> date | None:
    if el is None:
        return None
    parts = _date_parts(el)
    year = parts.get("Year", "")
    if not year.isdigit():
        return None
    day = parts.get("Day", "")
    return _safe_date(int(year), _month(parts.get("Month")), int(day) if day.isdigit() else None)
