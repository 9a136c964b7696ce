"""Parsing one feed document: from bytes (and the response headers) to a `FeedParseResult`.

Owns the document level, pure and testable on bytes alone: the refusal pre-scan (a body over
the size cap, XML entity declarations in any encoding, after `feed_entities` has expanded the
small internal ones it accepts), `feedparser` run on the bytes, every prism:doi/dc:identifier
per item read with lxml (feedparser keeps only the last of repeated elements), the channel's
ISSNs, and which items become papers (each converted by `extract`, then the lupus relevance
filter for general journals).
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import feedparser
from lxml import etree

from lupus_alerts import relevance
from lupus_alerts.config import FeedConfig
from lupus_alerts.feed_entities import EntityRefused, expand_internal_entities
from lupus_alerts.feeds.errors import FeedTooLargeError, UnsafeFeedError
from lupus_alerts.feeds.extract import _entry_to_paper
from lupus_alerts.feeds.fields import _text
from lupus_alerts.models import Paper

DEFAULT_MAX_BYTES = 10_000_000

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
