"""One feed item to one `Paper`: the DOI, the link, the abstract, the authors, the dates, the key.

Owns the publishers' conventions for where each field lives (docs/feeds.md): the DOI from
prism:doi, dc:identifier, the guid, the links or the text; the abstract as the longest HTML
field without a citation line; ScienceDirect's metadata lines; only http(s) links kept
(`safe_link`); the item's key within its feed, hashed when over-long. Single field values
(text, names, dates) are read by `fields`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from lupus_alerts.doi import find_doi, normalize_doi
from lupus_alerts.feeds.fields import (
    _text,
    html_to_text,
    parse_author,
    parse_date_text,
    split_authors,
    strip_citation_line,
)
from lupus_alerts.models import Author, Paper

MAX_SOURCE_KEY = 1024  # store.paper_sources.source_key


def _entry_to_paper(
    entry: Mapping[str, Any],
    *,
    extra: dict[str, list[str]] | None,
    source: str,
    journal: str | None,
    channel_journal: str | None,
    issns: list[str],
    seen_at: datetime,
) -> Paper:
    title = _text(entry.get("title", "")) or _text(entry.get("dc_title", ""))
    summary_html = entry.get("summary", "") or ""
    contents = [c.get("value", "") for c in entry.get("content", []) or []]
    # Only absolute http(s) links are kept: a `javascript:` or `data:` link is never shown as a
    # link here, but the next consumer of the store (an Atom feed, an API) might trust it.
    link = safe_link(entry.get("link"))
    guid = (entry.get("id") or "").strip() or None
    abstract, sd_meta = _entry_abstract(summary_html, contents)

    doi = extract_doi(entry, extra=extra)
    if not title and not doi:
        raise ValueError("item has neither a title nor a DOI")

    authors = _entry_authors(entry, sd_meta)
    online_text, epub, pub_date, pub_date_text = _entry_dates(entry, sd_meta, seen_at)
    item_journal = (
        journal
        or _text(entry.get("prism_publicationname", ""))
        or sd_meta.get("source")
        or _dc_source_journal(entry.get("dc_source", ""))
        or channel_journal
    )
    types, keywords = _entry_types_and_keywords(entry)
    return Paper(
        source=source,
        source_key=_entry_source_key(guid, link, title, online_text),
        title=title or "(untitled)",
        doi=doi,
        abstract=abstract,
        authors=authors,
        journal=item_journal,
        issns=list(issns),
        pub_date=pub_date,
        pub_date_text=pub_date_text,
        epub_date=epub,
        publication_types=types,
        keywords=keywords,
        language=entry.get("language") or None,
        url=link or safe_link(guid),
        fetched_at=seen_at,
    )


def _entry_abstract(summary_html: str, contents: list[str]) -> tuple[str, dict[str, str]]:
    """The abstract is the longest text of the item's HTML fields; also any ScienceDirect metadata lines."""
    sd_meta = _sciencedirect_meta(summary_html)
    if sd_meta:
        summary_html = sd_meta.pop("rest", "")
    # Publishers split the item between description, dc:description and content:encoded
    # (Wiley: a citation line in one, the abstract in another); the longest text is the abstract.
    # Atypon-hosted journals (Wiley, SAGE, T&F, ...) open the description with a citation line
    # ("Lupus, Ahead of Print.") that is not part of the abstract.
    abstract = max(
        (strip_citation_line(html_to_text(t)) for t in [summary_html, *contents]), key=len, default=""
    )
    return abstract, sd_meta


def _entry_authors(entry: Mapping[str, Any], sd_meta: Mapping[str, str]) -> list[Author]:
    """The item's authors: its author elements, else the ScienceDirect author line."""
    author_names: list[str] = []
    for a in entry.get("authors", []) or []:
        name = a.get("name") if isinstance(a, Mapping) else None
        if name:
            author_names.extend(split_authors(_text(name)))
    if not author_names and sd_meta.get("authors"):
        author_names = split_authors(sd_meta["authors"])
    return [parse_author(n) for n in author_names]


def _entry_dates(
    entry: Mapping[str, Any], sd_meta: Mapping[str, str], seen_at: datetime
) -> tuple[str | None, date | None, date, str | None]:
    """The online date text, the epub date, and the publication date (cover, else online, else seen)."""
    online_text = _first_text(entry, ("published", "dc_date", "updated", "prism_publicationdate"))
    cover_text = _first_text(entry, ("prism_coverdate", "prism_publicationdate"))
    if sd_meta.get("date"):
        # "Available online 18 November 2025" is the online date; "February 2026" the issue's.
        if "online" in sd_meta["date"].lower():
            online_text = online_text or sd_meta["date"]
        else:
            cover_text = cover_text or sd_meta["date"]
    epub = parse_date_text(online_text) if online_text else None
    cover = parse_date_text(cover_text) if cover_text else None
    pub_date_text = cover_text or online_text
    pub_date = cover or epub
    if pub_date is None:
        # No usable date: the day we first saw the item is the best we know.
        pub_date = seen_at.date()
        pub_date_text = None
    return online_text, epub, pub_date, pub_date_text


def _entry_types_and_keywords(entry: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """The prism:section is the publication type; the tags other than it are keywords."""
    types = [entry["prism_section"].strip()] if entry.get("prism_section") else []
    keywords = [
        t["term"].strip()
        for t in entry.get("tags", []) or []
        if t.get("term") and t["term"].strip() not in types
    ]
    return types, keywords


def _entry_source_key(guid: str | None, link: str | None, title: str, online_text: str | None) -> str:
    """The item's key within its feed: guid, else link, else title and date; hashed if over-long."""
    source_key = guid or link or _fallback_key(title, online_text)
    if len(source_key) > MAX_SOURCE_KEY:
        # paper_sources.source_key is bounded; a hash of an over-long guid is just as stable.
        source_key = "sha1:" + hashlib.sha1(source_key.encode()).hexdigest()
    return source_key


_URL_CONTROLS = re.compile(r"[\x00-\x1f\x7f]")


def safe_link(value: Any) -> str | None:
    """`value` if it is an absolute http(s) URL with a host, else None.

    Tabs and newlines inside are removed first (browsers ignore them, so `java&#9;script:` is
    `javascript:` to a browser); any other control character refuses the link.
    """
    if not isinstance(value, str):
        return None
    v = re.sub(r"[\t\n\r]", "", value).strip()
    if not v or _URL_CONTROLS.search(v):
        return None
    try:
        parts = urlsplit(v)
        host = parts.hostname
    except ValueError:  # e.g. an unbalanced "[" in the host
        return None
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    return v


# -- DOI extraction ----------------------------------------------------------------------------

# Link path tails that are views of the article, not part of its DOI (Frontiers ".../full",
# Atypon ".../abstract", Lancet ".../fulltext").
_VIEW_SUFFIXES = {"full", "abstract", "fulltext", "pdf", "epdf", "html", "meta", "summary", "figures"}
_URL_DOI = re.compile(r"(10\.\d{4,9}/[^\s?#]+)")


def extract_doi(entry: Mapping[str, Any], *, extra: Mapping[str, list[str]] | None = None) -> str | None:
    """The item's DOI, from (in order) prism:doi, dc:identifier, guid/id, the links, the text.

    `extra` carries every prism:doi / dc:identifier value of the item read straight from the
    XML, because feedparser keeps only the last of repeated elements (HighWire puts
    "info:doi/..." and "hwp:master-id:..." side by side).
    """
    extra = extra or {}
    prism = list(extra.get("prism_doi", [])) or _as_list(entry.get("prism_doi"))
    for value in prism:
        if doi := _identifier_doi(value):
            return doi
    identifiers = list(extra.get("dc_identifier", [])) or _as_list(entry.get("dc_identifier"))
    for value in identifiers:
        if doi := _identifier_doi(value):
            return doi
    guid = (entry.get("id") or "").strip()
    if guid:
        doi = _url_doi(guid) if guid.startswith(("http://", "https://")) else _identifier_doi(guid)
        if doi:
            return doi
    hrefs = [entry.get("link") or ""] + [lk.get("href", "") for lk in entry.get("links", []) or []]
    for href in hrefs:
        if href and (doi := _url_doi(href.strip())):
            return doi
    texts = [entry.get("summary", "") or ""] + [c.get("value", "") for c in entry.get("content", []) or []]
    for text in texts:
        # The raw HTML, not its text: a DOI may be only in an href (find_doi reads HTML).
        if text and (doi := find_doi(text)):
            return doi
    return None


def _identifier_doi(value: str) -> str | None:
    """A DOI from an identifier field: "doi:", "doi: ", "info:doi/", "urn:doi:", a URL, or bare."""
    v = _text(value).strip()
    if not v:
        return None
    if v.startswith(("http://", "https://")):
        return _url_doi(v)
    low = v.lower()
    for prefix in ("info:doi/", "urn:doi:", "doi:"):
        if low.startswith(prefix):
            v = v[len(prefix) :].strip()
            break
    else:
        if not low.startswith("10."):
            return None  # e.g. "hwp:master-id:...", a PII, an ISSN
    return normalize_doi(v)


def _url_doi(url: str) -> str | None:
    """A DOI embedded in an article URL: doi.org, /doi/(abs/)10.…, /article(s)/10.…, ?id=10.…"""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    path = unquote(parts.path)
    if host.endswith("doi.org"):
        return normalize_doi(path.lstrip("/"))
    m = _URL_DOI.search(path)
    if m:
        segments = m.group(1).rstrip("/").split("/")
        while len(segments) > 2 and segments[-1].lower() in _VIEW_SUFFIXES:
            segments.pop()
        # OUP article URLs append the site's own numeric article id after the DOI.
        if host.endswith("academic.oup.com") and len(segments) > 3 and segments[-1].isdigit():
            segments.pop()
        return normalize_doi("/".join(segments))
    for _key, value in parse_qsl(parts.query):
        if value.startswith("10.") and (doi := normalize_doi(value)):
            return doi
    return None


_SD_FIELD = re.compile(r"^\s*(Publication date|Source|Author\(s\))\s*:\s*(.*)$", re.IGNORECASE)


def _sciencedirect_meta(summary_html: str) -> dict[str, str]:
    """ScienceDirect puts metadata, not an abstract, in the description:
    "Publication date: …", "Source: …", "Author(s): …". Returns those fields (empty if absent)
    and what is left over as "rest"."""
    if "Publication date" not in summary_html and "Author(s)" not in summary_html:
        return {}
    meta: dict[str, str] = {}
    rest: list[str] = []
    for line in html_to_text(summary_html).split("\n"):
        m = _SD_FIELD.match(line)
        if not m:
            rest.append(line)
            continue
        key = {"publication date": "date", "source": "source", "author(s)": "authors"}[m[1].lower()]
        value = m[2].strip()
        if key == "source":
            value = value.split(",")[0].strip()  # "Seminars in …, Volume 70" -> the journal
        meta[key] = value
    if not meta:
        return {}
    meta["rest"] = "\n".join(rest).strip()
    return meta


def _dc_source_journal(value: str) -> str | None:
    """The journal name from a dc:source citation ("Fluids", "The Journal of Pediatrics 203, (2018)",
    "Nature Reviews Rheumatology, Published online: ...")."""
    text = _text(value)
    text = re.split(r",|\s\d|\|", text, maxsplit=1)[0].strip()
    return text or None


def _first_text(entry: Mapping[str, Any], keys: Sequence[str]) -> str | None:
    for k in keys:
        v = entry.get(k)
        if isinstance(v, str) and v.strip():
            return v.strip()
    return None


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return [str(value)]


def _fallback_key(title: str, date_text: str | None) -> str:
    """A stable key for an item with neither guid nor link (rare, but seen in broken feeds)."""
    digest = hashlib.sha1(f"{title}\n{date_text or ''}".encode()).hexdigest()[:16]
    return f"sha1:{digest}"
