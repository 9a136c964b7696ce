"""A PubMed XML document streamed record by record, within libxml2's limits.

Owns the document: lxml `iterparse` with no DTD, no network and no entity expansion, each
record cleared once read so memory stays flat; libxml2's limits kept (256 levels, 10 MB text
nodes; XML_PARSE_HUGE off); and the salvage after a record libxml2 refuses, which cuts the rest
of a re-readable source into records by their tags and parses each alone.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from lxml import etree

from lupus_alerts.models import Paper
from lupus_alerts.pubmed.items import DeletedCitation, ParseProblem, PubmedItem
from lupus_alerts.pubmed.record import parse_record

_RECORD_TAGS = ("PubmedArticle", "PubmedBookArticle", "DeleteCitation")


def _open(source: bytes | str | os.PathLike[str] | BinaryIO) -> tuple[BinaryIO, bool]:
    """A binary stream for `source`, and whether this function opened it (and must close it)."""
    if isinstance(source, bytes | bytearray | memoryview):
        return io.BytesIO(bytes(source)), True
    if isinstance(source, str):
        # A string is XML text when it looks like markup, otherwise a path.
        if source.lstrip().startswith("<"):
            return io.BytesIO(source.encode("utf-8")), True
        return open(source, "rb"), True
    if isinstance(source, os.PathLike):
        return open(Path(source), "rb"), True
    return source, False


def parse_pubmed(source: bytes | str | os.PathLike[str] | BinaryIO) -> Iterator[PubmedItem]:
    """Stream PubMed XML: one Paper, DeletedCitation or ParseProblem per record, in order.

    `source` is XML bytes, XML text (a str starting with "<"), a path, or a binary file object.
    Works on a `PubmedArticleSet` (EFetch output, baseline/update files) and on a document
    whose root is a single `PubmedArticle` or `PubmedBookArticle`.
    """
    stream, owned = _open(source)
    try:
        yield from _iter_records(stream)
    finally:
        if owned:
            stream.close()


def _record_parser() -> etree.XMLParser:
    # The same settings as the stream: no DTD, no network, no entities, and libxml2's limits
    # (256 levels, 10 MB text nodes) kept, since XML_PARSE_HUGE would lift them for everyone.
    return etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_comments=True
    )


def _iter_records(stream: BinaryIO) -> Iterator[PubmedItem]:
    context = etree.iterparse(
        stream,
        events=("end",),
        tag=_RECORD_TAGS,
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_comments=True,
    )
    last_pmid: str | None = None
    read = 0
    try:
        for _event, el in context:
            item = parse_record(el)
            if isinstance(item, Paper):
                last_pmid = item.pmid
            read += 1
            yield item
            # Free the record and every finished sibling before it, so memory stays flat.
            el.clear(keep_tail=True)
            parent = el.getparent()
            if parent is not None:
                while el.getprevious() is not None:
                    del parent[0]
    except etree.XMLSyntaxError as e:
        data = _reread(stream)
        if data is None:
            after = f" (after PMID {last_pmid})" if last_pmid else ""
            yield ParseProblem(None, f"XML not well-formed{after}: {e}")
            return
        # The stream cannot go on past the error; the records after it can, each on its own.
        yield from _salvage(data, skip=read, error=e, last_pmid=last_pmid)


def _reread(stream: BinaryIO) -> bytes | None:
    """The whole document again, when the stream can be rewound (bytes, files); else None."""
    try:
        if not stream.seekable():
            return None
        stream.seek(0)
        return stream.read()
    except (OSError, ValueError):
        return None


_RECORD_START = re.compile(
    rb"<!--.*?-->|<!\[CDATA\[.*?\]\]>|<(PubmedArticle|PubmedBookArticle|DeleteCitation)(?=[\s/>])", re.S
)
_FIRST_PMID = re.compile(rb"<PMID\b[^>]*>\s*([^<\s]{1,32})\s*</PMID>")


def record_spans(data: bytes) -> list[tuple[int, int]]:
    """(start, end) byte offsets of each record element, found without parsing the document.

    A record runs from its start tag to its own end tag; one whose end tag never comes before
    the next record (a cut-off document) runs up to the next record. Comments and CDATA are
    skipped, so a record tag written inside them is not taken for one.
    """
    starts = [(m.start(), m.group(1)) for m in _RECORD_START.finditer(data) if m.group(1)]
    spans = []
    for i, (start, tag) in enumerate(starts):
        limit = starts[i + 1][0] if i + 1 < len(starts) else len(data)
        end = re.compile(rb"</" + tag + rb"\s*>").search(data, start, limit)
        spans.append((start, end.end() if end else limit))
    return spans


def _salvage(
    data: bytes, *, skip: int, error: etree.XMLSyntaxError, last_pmid: str | None
) -> Iterator[PubmedItem]:
    """The records after the first `skip`, each parsed alone; an unreadable one is a problem."""
    failed = False
    for start, end in record_spans(data)[skip:]:
        chunk = data[start:end]
        try:
            el = etree.fromstring(chunk, _record_parser())
        except etree.XMLSyntaxError as e:
            failed = True
            m = _FIRST_PMID.search(chunk)
            pmid = m.group(1).decode("utf-8", "replace") if m else None
            after = f" (after PMID {last_pmid})" if last_pmid else ""
            yield ParseProblem(pmid, f"XML not well-formed in this record{after}: {e}")
            continue
        item = parse_record(el)
        if isinstance(item, Paper):
            last_pmid = item.pmid
        yield item
    if not failed:
        # Every record was read: the document broke between records. Say so all the same.
        yield ParseProblem(None, f"XML not well-formed between records: {error}")


def parse_pubmed_bytes(data: bytes) -> tuple[list[Paper], list[DeletedCitation], list[ParseProblem]]:
    """Parse a whole EFetch response into its three kinds of item."""
    papers: list[Paper] = []
    deleted: list[DeletedCitation] = []
    problems: list[ParseProblem] = []
    for item in parse_pubmed(data):
        if isinstance(item, Paper):
            papers.append(item)
        elif isinstance(item, DeletedCitation):
            deleted.append(item)
        else:
            problems.append(item)
    return papers, deleted, problems
