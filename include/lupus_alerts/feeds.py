"""Journal feeds: fetch a publisher's RSS/Atom politely, parse it safely, turn items into Papers.

Two layers, kept apart so the parser is testable on bytes alone:

- `parse_feed_bytes` is pure: a refusal pre-scan (oversized bodies, XML entity declarations),
  then `feedparser.parse` on the bytes with the response headers, then one `Paper` per item
  (DOI found in the publisher's usual places, HTML reduced to text, authors split, dates parsed)
  and, for general journals, the lupus relevance filter.
- `poll_feed` does the I/O for one configured feed: a conditional GET with `requests` (ETag /
  Last-Modified kept in `store.feed_state`), a total deadline and a size cap while streaming,
  redirects recorded, papers upserted, and the outcome stored. A feed failure is recorded and
  returned, never raised: one broken publisher must not stop the others.

Decisions and the publisher formats are documented in docs/feeds.md.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import feedparser
import requests
import sqlalchemy as sa
import urllib3
from lxml import etree
from sqlalchemy.engine import Engine

from lupus_alerts import dedupe, relevance, store
from lupus_alerts.config import FeedConfig, Settings
from lupus_alerts.doi import find_doi, normalize_doi
from lupus_alerts.feed_entities import EntityRefused, expand_internal_entities
from lupus_alerts.models import Author, Paper

DEFAULT_MAX_BYTES = 10_000_000
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.8, text/xml;q=0.8, */*;q=0.1"
)
_CHUNK = 64 * 1024
MAX_SOURCE_KEY = 1024  # store.paper_sources.source_key

DC_NS = "http://purl.org/dc/elements/1.1/"
# PRISM has been published under several namespace URIs; publishers use all of them.
PRISM_NAMESPACES = (
    "http://prismstandard.org/namespaces/basic/2.0/",
    "http://prismstandard.org/namespaces/basic/2.1/",
    "http://prismstandard.org/namespaces/basic/3.0/",
    "http://prismstandard.org/namespaces/1.2/basic/",
    "http://purl.org/rss/1.0/modules/prism/",
)
_ITEM_TAGS = {
    "item",  # RSS 0.9x/2.0 (no namespace)
    "{http://purl.org/rss/1.0/}item",
    "{http://my.netscape.com/rdf/simple/0.9/}item",
    "{http://www.w3.org/2005/Atom}entry",
    "{http://purl.org/atom/ns#}entry",  # Atom 0.3
}


class FeedError(Exception):
    """A feed could not be fetched or used; the message says why, for the operator."""


class UnsafeFeedError(FeedError):
    """The body declares XML entities (an expansion bomb or external entity): refused unparsed."""


class FeedTooLargeError(FeedError):
    """The body is larger than the configured cap: refused before (or while) reading it."""


@dataclass(slots=True)
class FeedParseResult:
    """What one feed document yielded.

    `items` counts every entry parsed, `kept` those that became `papers` (after the relevance
    filter), `rejected` those the filter dropped, `dois` the kept papers with a DOI.
    """

    papers: list[Paper] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    bozo: bool = False
    items: int = 0
    dois: int = 0
    kept: int = 0
    rejected: int = 0
    feed_title: str | None = None
    version: str = ""  # feedparser's name for the format: "rss20", "rss10", "atom10", ...
    rejected_titles: list[str] = field(default_factory=list)


@dataclass(slots=True)
class FeedOutcome:
    """The result of polling (or checking) one feed; also what is stored in `feed_state`.

    `status` is "ok", "not_modified" or "error"; `http_status` the final HTTP status (None when
    no response arrived); `error` the reason for "error".
    """

    feed_id: str
    status: str
    url: str
    http_status: int | None = None
    items: int = 0
    kept: int = 0
    rejected: int = 0
    dois: int = 0
    new: int = 0
    updated: int = 0
    not_modified: bool = False
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    final_url: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    bytes: int = 0
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status != "error"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- parsing -----------------------------------------------------------------------------------


def parse_feed_bytes(
    data: bytes,
    *,
    feed: FeedConfig | None = None,
    headers: Mapping[str, str] | None = None,
    seen_at: datetime | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    filter_relevance: bool | None = None,
) -> FeedParseResult:
    """Parse one RSS 0.9x/1.0/2.0 or Atom document into Papers.

    Raises `FeedTooLargeError` for a body over `max_bytes`. Small internal entities declared in
    the DOCTYPE are expanded first (`feed_entities`, within limits); a document that declares
    anything else, or more, raises `UnsafeFeedError` before any parser sees it. Anything else
    malformed yields what can be recovered, with `bozo` set and a warning. `filter_relevance`
    defaults to "the feed is not all-lupus" (and to off when no feed is given, e.g. parsing a
    file from the command line).
    """
    data = _admit_body(data, headers, max_bytes)
    seen_at = seen_at or datetime.now(UTC).replace(tzinfo=None)
    if filter_relevance is None:
        filter_relevance = feed is not None and not feed.all_lupus

    parsed = _feedparse(data, headers)
    result = _new_result(parsed)
    entries = parsed.entries
    extras = _item_identifiers(data, len(entries))
    channel = parsed.feed
    source = f"feed:{feed.id}" if feed else f"feed:{_slug(result.feed_title or 'unknown')}"
    channel_journal = channel.get("prism_publicationname") or _text(channel.get("title", "")) or None
    _collect_papers(
        result,
        entries,
        extras,
        source=source,
        journal=feed.name if feed else None,
        channel_journal=channel_journal,
        issns=_channel_issns(channel),
        seen_at=seen_at,
        filter_relevance=filter_relevance,
    )
    result.kept = len(result.papers)
    result.dois = sum(1 for p in result.papers if p.doi)
    return result


def _admit_body(data: bytes, headers: Mapping[str, str] | None, max_bytes: int) -> bytes:
    """Whether the body may be parsed at all: refuse it if too large or unsafe, else expand its entities."""
    if len(data) > max_bytes:
        raise FeedTooLargeError(f"feed body is {len(data)} bytes, over the {max_bytes}-byte cap")
    try:
        data = expand_internal_entities(data)
    except EntityRefused as e:
        raise UnsafeFeedError(f"feed refused: {e}") from None
    refuse_unsafe_xml(data, headers)
    return data


def _feedparse(data: bytes, headers: Mapping[str, str] | None) -> Any:
    """How feedparser is run: with the response headers, and without its HTML sanitizing."""
    return feedparser.parse(
        data,
        # feedparser looks headers up in lower case (content-type, content-location).
        response_headers={k.lower(): v for k, v in (headers or {}).items()},
        # Every HTML field is reduced to plain text by html_to_text (tags, scripts and styles
        # dropped), so feedparser's own HTML sanitizer and URI rewriting would be a third of
        # the parse time spent on markup that is thrown away.
        sanitize_html=False,
        resolve_relative_uris=False,
    )


def _new_result(parsed: Any) -> FeedParseResult:
    """The document-level verdict before any item: format, title, and whether it is malformed or empty."""
    result = FeedParseResult(
        bozo=bool(parsed.get("bozo")),
        version=parsed.get("version") or "",
        feed_title=_text(parsed.feed.get("title", "")) or None,
    )
    if result.bozo:
        exc = parsed.get("bozo_exception")
        result.warnings.append(f"malformed feed ({type(exc).__name__}): {exc}")
    if not parsed.entries and not result.version:
        result.warnings.append("no RSS or Atom items found in the document")
    return result


def _collect_papers(
    result: FeedParseResult,
    entries: Sequence[Mapping[str, Any]],
    extras: list[dict[str, list[str]]] | None,
    *,
    source: str,
    journal: str | None,
    channel_journal: str | None,
    issns: list[str],
    seen_at: datetime,
    filter_relevance: bool,
) -> None:
    """Which items become papers: every one that converts, less those the relevance filter rejects."""
    for index, entry in enumerate(entries):
        result.items += 1
        try:
            paper = _entry_to_paper(
                entry,
                extra=extras[index] if extras is not None else None,
                source=source,
                journal=journal,
                channel_journal=channel_journal,
                issns=issns,
                seen_at=seen_at,
            )
        except (ValueError, TypeError, LookupError, AttributeError, ArithmeticError) as e:
            # One odd item must not cost the rest of the feed; say which one.
            result.warnings.append(f"item {index + 1} skipped: {e}")
            continue
        if filter_relevance:
            verdict = relevance.assess(paper.title, paper.abstract, journal=paper.journal)
            if not verdict.is_lupus:
                result.rejected += 1
                result.rejected_titles.append(paper.title)
                continue
        result.papers.append(paper)


_ENTITY_DECL = re.compile(rb"<!\s*ENTITY", re.IGNORECASE)
_DOCTYPE = re.compile(rb"<!\s*DOCTYPE", re.IGNORECASE)
_XML_DECL_ENCODING = re.compile(rb"""^\s*<\?xml[^>]{0,200}?encoding\s*=\s*["']([A-Za-z0-9._:-]{1,40})["']""")
_CHARSET = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9._:-]{1,40})", re.IGNORECASE)
# Byte patterns of "<?" / "<" that give away an encoding that is not ASCII-compatible.
_SIGNATURES = (
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\x00\x00\x00<", "utf-32-be"),
    (b"<\x00\x00\x00", "utf-32-le"),
    (b"\xfe\xff", "utf-16-be"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\x00<", "utf-16-be"),
    (b"<\x00", "utf-16-le"),
    (b"\x4c\x6f\xa7\x94", "cp037"),  # "<?xm" in EBCDIC
)


_ASCII = bytes(range(128))
_ASCII_TEXT = _ASCII.decode("ascii")


def refuse_unsafe_xml(data: bytes, headers: Mapping[str, str] | None = None) -> None:
    """Raise `UnsafeFeedError` if the document declares entities, in whatever encoding.

    Runs after `feed_entities.expand_internal_entities` has expanded (and removed) the small
    internal entities it accepts, so any declaration still present is one it did not accept, or
    one hidden from it (another encoding, outside the prolog): declarations are how
    billion-laughs bombs and external entity reads work, so the document is refused. The
    scan is a regex over the bytes (linear time, no parser); a document in an encoding that is
    not ASCII-compatible (UTF-16/32 by signature; UTF-7, EBCDIC, ... by declaration or HTTP
    charset) is also scanned as a decoded copy, since feedparser converts it before parsing.
    """
    for view in _ascii_views(data, headers):
        if _DOCTYPE.search(view) and _ENTITY_DECL.search(view):
            raise UnsafeFeedError("feed declares XML entities in its DOCTYPE (possible entity bomb): refused")


def _ascii_views(data: bytes, headers: Mapping[str, str] | None) -> Iterator[bytes]:
    yield data
    encodings: list[str] = [enc for sig, enc in _SIGNATURES if data.startswith(sig)][:1]
    if m := _XML_DECL_ENCODING.match(data):
        encodings.append(m.group(1).decode("ascii"))
    for key, value in (headers or {}).items():
        if key.lower() == "content-type" and (m := _CHARSET.search(value)):
            encodings.append(m.group(1))
    seen: set[str] = set()
    for name in encodings:
        try:
            codec = codecs.lookup(name)
        except LookupError:
            continue  # feedparser will not decode with an unknown codec either
        if codec.name in seen:
            continue
        seen.add(codec.name)
        # ASCII-compatible means every ASCII byte decodes to itself (UTF-8, Latin-n, cp125x):
        # then the raw scan already saw the markup. UTF-7 and EBCDIC fail this.
        try:
            ascii_compatible = _ASCII.decode(codec.name, errors="replace") == _ASCII_TEXT
        except (UnicodeError, LookupError, TypeError):
            ascii_compatible = False
        if not ascii_compatible:
            yield data.decode(codec.name, errors="replace").encode("utf-8", errors="replace")


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


def _item_identifiers(data: bytes, expected: int) -> list[dict[str, list[str]]] | None:
    """Every prism:doi and dc:identifier per item, in document order, read with lxml.

    Returns None when the document cannot be read strictly or its item count differs from
    feedparser's, so the two can never be misaligned; then feedparser's values are used alone.
    """
    if expected == 0:
        return None
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, recover=False
    )
    try:
        root = etree.fromstring(data, parser)
    except (etree.XMLSyntaxError, ValueError):
        return None
    items = [el for el in root.iter() if isinstance(el.tag, str) and el.tag in _ITEM_TAGS]
    if len(items) != expected:
        return None
    found: list[dict[str, list[str]]] = []
    for item in items:
        ids: dict[str, list[str]] = {"prism_doi": [], "dc_identifier": []}
        for child in item:
            if not isinstance(child.tag, str):
                continue
            text = (child.text or "").strip()
            if not text:
                continue
            if child.tag == f"{{{DC_NS}}}identifier":
                ids["dc_identifier"].append(text)
            elif any(child.tag == f"{{{ns}}}doi" for ns in PRISM_NAMESPACES):
                ids["prism_doi"].append(text)
        found.append(ids)
    return found


# -- text, authors, dates ----------------------------------------------------------------------

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


def _channel_issns(channel: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    for key in ("prism_issn", "prism_eissn"):
        v = (channel.get(key) or "").strip()
        if re.fullmatch(r"\d{4}-?\d{3}[\dXx]", v):
            v = v.upper()
            v = v if "-" in v else f"{v[:4]}-{v[4:]}"
            if v not in out:
                out.append(v)
    return out


def _slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s[:64] or "unknown"


def _fallback_key(title: str, date_text: str | None) -> str:
    """A stable key for an item with neither guid nor link (rare, but seen in broken feeds)."""
    digest = hashlib.sha1(f"{title}\n{date_text or ''}".encode()).hexdigest()[:16]
    return f"sha1:{digest}"


# -- fetching ----------------------------------------------------------------------------------


@dataclass(slots=True)
class FetchResult:
    """One HTTP exchange for a feed (no parsing)."""

    status: int
    body: bytes
    headers: dict[str, str]
    final_url: str
    redirects: list[tuple[int, str]]  # (status, location) of each hop

    @property
    def not_modified(self) -> bool:
        return self.status == 304


def fetch_feed(
    url: str,
    *,
    session: requests.Session,
    user_agent: str,
    timeout_s: float,
    max_bytes: int,
    etag: str | None = None,
    last_modified: str | None = None,
) -> FetchResult:
    """GET a feed with conditional headers, a total deadline and a size cap.

    Raises `requests.RequestException` for network failures and timeouts (including a body
    that trickles in past the deadline), `FeedTooLargeError` when the body exceeds `max_bytes`.
    """
    headers = {"User-Agent": user_agent, "Accept": ACCEPT, "Accept-Encoding": "gzip, deflate"}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    deadline = time.monotonic() + timeout_s
    with session.get(url, headers=headers, timeout=timeout_s, stream=True, allow_redirects=True) as resp:
        redirects = [(r.status_code, r.headers.get("Location", "")) for r in resp.history]
        declared = resp.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > max_bytes:
            raise FeedTooLargeError(f"Content-Length {declared} is over the {max_bytes}-byte cap")
        chunks: list[bytes] = []
        total = 0
        if resp.status_code != 304:
            try:
                # read1 returns what has arrived (up to _CHUNK bytes, decompressed), so the
                # deadline and the cap are checked as data trickles in, not after a 64 KB wait.
                while chunk := resp.raw.read1(_CHUNK, decode_content=True):
                    total += len(chunk)
                    if total > max_bytes:
                        raise FeedTooLargeError(f"body exceeded the {max_bytes}-byte cap while streaming")
                    chunks.append(chunk)
                    # requests' timeout is per socket read; a slow-drip body needs a total deadline.
                    if time.monotonic() > deadline:
                        raise requests.Timeout(f"body not complete within {timeout_s:g} s")
            except urllib3.exceptions.ReadTimeoutError as e:
                raise requests.Timeout(str(e)) from e
            except (urllib3.exceptions.ProtocolError, urllib3.exceptions.DecodeError) as e:
                raise requests.ConnectionError(f"body not received in full: {e}") from e
        return FetchResult(
            status=resp.status_code,
            body=b"".join(chunks),
            headers=dict(resp.headers),
            final_url=resp.url,
            redirects=redirects,
        )


def check_feed(
    settings: Settings, feed: FeedConfig, *, session: requests.Session | None = None
) -> FeedOutcome:
    """Fetch and parse one feed unconditionally without touching the store (`feeds check`).

    Not conditional on purpose: storing validators without storing the items would make the
    next real poll get a 304 and miss them.
    """
    return _fetch_and_parse(settings, feed, session=session, etag=None, last_modified=None, now=None)[0]


def poll_feed(
    settings: Settings,
    engine: Engine,
    feed: FeedConfig,
    *,
    session: requests.Session | None = None,
    now: datetime | None = None,
) -> FeedOutcome:
    """Poll one feed: conditional GET, parse, upsert the kept papers, record the outcome.

    A feed failure (network, HTTP error, size cap, unsafe or unreadable document) is recorded in
    `feed_state` and returned with status "error"; it is not raised. Database errors are.
    """
    now = now or store.utcnow()
    state = _load_state(engine, feed.id)
    etag = last_modified = None
    if state and state["url"] == feed.url:
        # Validators belong to the URL they came from; a changed URL starts afresh.
        etag, last_modified = state["etag"], state["last_modified"]
    outcome, parsed = _fetch_and_parse(
        settings, feed, session=session, etag=etag, last_modified=last_modified, now=now
    )
    with _writer_lock(engine):
        if parsed is not None and parsed.papers:
            stats = dedupe.upsert_papers(engine, parsed.papers, now=now)
            outcome.new, outcome.updated = int(stats.new), int(stats.updated)
        _save_state(engine, feed, outcome, state, now)
    return outcome


_SQLITE_WRITERS: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()
_SQLITE_WRITERS_GUARD = threading.Lock()


def _writer_lock(engine: Engine) -> contextlib.AbstractContextManager[object]:
    """Serialise this process's writes to a SQLite store.

    SQLite admits one writer at a time and makes the others wait in its busy handler, which
    sleeps in growing steps (up to 100 ms); with several polling threads that idles the whole
    pool. A lock hands the store over at once. Other databases need no lock.
    """
    if engine.dialect.name != "sqlite":
        return contextlib.nullcontext()
    with _SQLITE_WRITERS_GUARD:
        return _SQLITE_WRITERS.setdefault(engine, threading.Lock())


def poll_feeds(
    settings: Settings,
    engine: Engine,
    feeds: Iterable[FeedConfig] | None = None,
    concurrency: int | None = None,
    *,
    now: datetime | None = None,
) -> list[FeedOutcome]:
    """Poll several feeds with at most `concurrency` at once; outcomes in the given order.

    For the CLI and the benchmark; Airflow maps one task per feed instead.
    """
    return _map_bounded(
        lambda feed, session: poll_feed(settings, engine, feed, session=session, now=now),
        list(settings.feeds if feeds is None else feeds),
        concurrency or settings.feed_settings.concurrency,
    )


def check_feeds(
    settings: Settings, feeds: Iterable[FeedConfig] | None = None, concurrency: int | None = None
) -> list[FeedOutcome]:
    """`check_feed` for several feeds, at most `concurrency` at once; outcomes in order."""
    return _map_bounded(
        lambda feed, session: check_feed(settings, feed, session=session),
        list(settings.feeds if feeds is None else feeds),
        concurrency or settings.feed_settings.concurrency,
    )


def _map_bounded(
    fn: Callable[[FeedConfig, requests.Session], FeedOutcome], feeds: list[FeedConfig], concurrency: int
) -> list[FeedOutcome]:
    if not feeds:
        return []
    local = threading.local()
    sessions: list[requests.Session] = []

    def one(feed: FeedConfig) -> FeedOutcome:
        # requests.Session is not documented as thread-safe: one per worker thread.
        if not hasattr(local, "session"):
            local.session = requests.Session()
            sessions.append(local.session)
        return fn(feed, local.session)

    try:
        with ThreadPoolExecutor(
            max_workers=max(1, min(concurrency, len(feeds))), thread_name_prefix="feed"
        ) as pool:
            return list(pool.map(one, feeds))
    finally:
        for session in sessions:
            session.close()


def _fetch_and_parse(
    settings: Settings,
    feed: FeedConfig,
    *,
    session: requests.Session | None,
    etag: str | None,
    last_modified: str | None,
    now: datetime | None,
) -> tuple[FeedOutcome, FeedParseResult | None]:
    fs = settings.feed_settings
    outcome = FeedOutcome(feed_id=feed.id, status="error", url=feed.url)
    started = time.monotonic()
    own_session = session is None
    sess = session or requests.Session()
    parsed: FeedParseResult | None = None
    try:
        fetched = fetch_feed(
            feed.url,
            session=sess,
            user_agent=fs.user_agent,
            timeout_s=fs.timeout_s,
            max_bytes=fs.max_bytes,
            etag=etag,
            last_modified=last_modified,
        )
        outcome.http_status = fetched.status
        outcome.final_url = fetched.final_url
        outcome.bytes = len(fetched.body)
        if fetched.not_modified:  # a 304 may refresh the validators; otherwise they stand
            outcome.etag = fetched.headers.get("ETag") or etag
            outcome.last_modified = fetched.headers.get("Last-Modified") or last_modified
        else:  # validators belong to the representation just received, absent ones included
            outcome.etag = fetched.headers.get("ETag")
            outcome.last_modified = fetched.headers.get("Last-Modified")
        for status, location in fetched.redirects:
            if status in (301, 308):
                outcome.warnings.append(
                    f"feed moved permanently ({status}) to {location or fetched.final_url}: update its URL"
                )
        if fetched.not_modified:
            outcome.status, outcome.not_modified = "not_modified", True
        elif not 200 <= fetched.status < 300:
            outcome.error = f"HTTP {fetched.status}"
        else:
            parsed = parse_feed_bytes(
                fetched.body, feed=feed, headers=fetched.headers, seen_at=now, max_bytes=fs.max_bytes
            )
            outcome.items, outcome.kept, outcome.rejected = parsed.items, parsed.kept, parsed.rejected
            outcome.dois = parsed.dois
            outcome.warnings.extend(parsed.warnings)
            if parsed.items == 0 and parsed.bozo:
                outcome.error = "not a readable feed: " + "; ".join(parsed.warnings)
                parsed = None
            else:
                outcome.status = "ok"
    except FeedError as e:
        outcome.error = str(e)
    except requests.Timeout as e:
        outcome.error = f"timed out after {fs.timeout_s:g} s: {e}"
    except requests.RequestException as e:
        outcome.error = _describe_request_error(e)
    finally:
        if own_session:
            sess.close()
        outcome.elapsed = time.monotonic() - started
    if outcome.status == "error":
        outcome.etag, outcome.last_modified = etag, last_modified
    return outcome, parsed


def _describe_request_error(e: requests.RequestException) -> str:
    """A short reason ("ConnectionError: Failed to resolve 'x.org' ...") instead of requests'
    nested pool/retry wording."""
    inner = e.args[0] if e.args else None
    reason = getattr(inner, "reason", None) or inner or e
    text = re.sub(r"^<[^>]*>:\s*", "", str(reason))
    return f"{type(e).__name__}: {text}"


# -- feed state --------------------------------------------------------------------------------


def _load_state(engine: Engine, feed_id: str) -> dict[str, Any] | None:
    fs = store.feed_state
    with engine.connect() as conn:
        row = conn.execute(sa.select(fs).where(fs.c.feed_id == feed_id)).mappings().first()
    return dict(row) if row else None


def _save_state(
    engine: Engine, feed: FeedConfig, outcome: FeedOutcome, previous: Mapping[str, Any] | None, now: datetime
) -> None:
    fs = store.feed_state
    failed = outcome.status == "error"
    values: dict[str, Any] = {
        "url": feed.url,
        "final_url": outcome.final_url,
        "last_status": outcome.http_status,
        "last_error": outcome.error,
        "last_warning": "; ".join(outcome.warnings)[:4000] or None,
        "last_polled_at": now,
        "consecutive_failures": ((previous or {}).get("consecutive_failures") or 0) + 1 if failed else 0,
    }
    if not failed:
        values["last_success_at"] = now
        values["etag"] = outcome.etag
        values["last_modified"] = outcome.last_modified
        if not outcome.not_modified:
            values["items_last"] = outcome.items
            values["dois_last"] = outcome.dois
    with engine.begin() as conn:
        updated = conn.execute(sa.update(fs).where(fs.c.feed_id == feed.id).values(**values)).rowcount
        if not updated:
            conn.execute(sa.insert(fs).values(feed_id=feed.id, **values))
