"""PubMed XML (EFetch `db=pubmed&retmode=xml`) to `Paper`s, and the PubMed ingest of one window.

The parser streams with lxml `iterparse`, clearing each record once it is read, so memory stays
flat however large the file. It never loads the DTD, never touches the network and never expands
entities: EFetch files declare a remote DTD that must not be fetched. Element names and their
meaning follow NLM's PubMed DTD (pubmed_250101.dtd): `PubmedArticleSet` holds `PubmedArticle`,
`PubmedBookArticle` and `DeleteCitation`; a bare `PubmedArticle` document is read as well.

A record that cannot be read is yielded as a `ParseProblem` (PMID and reason) and skipped; a
batch never fails because of one record. That includes a record libxml2 refuses to parse (not
well-formed, nested deeper than 256 levels, a text node over 10 MB; XML_PARSE_HUGE stays off):
the stream cannot go on past it, so the rest of the document is cut into records by their tags
and each is parsed alone (when the source can be read again: bytes, a path, a seekable file).

The ingest half (`decide_window`, `record_window`, `ingest_window`) chooses the creation-date
window from the stored watermark, runs the E-utilities client over it and upserts the papers.
See docs/pubmed.md.
"""

from __future__ import annotations

import calendar
import io
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from lxml import etree

from lupus_alerts.doi import normalize_doi
from lupus_alerts.models import AbstractSection, Author, MeshHeading, MeshQualifier, Notice, Paper

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from lupus_alerts.config import Settings
    from lupus_alerts.eutils import EutilsClient

PUBMED_URL = "https://pubmed.ncbi.nlm.nih.gov/{pmid}/"
MATHML_NS = "http://www.w3.org/1998/Math/MathML"
_RECORD_TAGS = ("PubmedArticle", "PubmedBookArticle", "DeleteCitation")

# CommentsCorrections RefType -> models.NOTICE_KINDS; the other RefTypes (CommentIn,
# RepublishedFrom, ...) are not notices a reader must see.
NOTICE_REFTYPES = {
    "RetractionIn": "retraction_in",
    "RetractionOf": "retraction_of",
    "ErratumIn": "erratum_in",
    "ErratumFor": "erratum_for",
    "ExpressionOfConcernIn": "expression_of_concern_in",
    "ExpressionOfConcernFor": "expression_of_concern_for",
    "UpdateIn": "update_in",
    "UpdateOf": "update_of",
}
RETRACTED_TYPE = "Retracted Publication"

_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_abbr) if name}
# A season names a quarter; the best single date is its first month (northern hemisphere, the
# convention of the journals that use seasons). Winter is the January issue of its year.
_SEASONS = {"spring": 3, "summer": 6, "fall": 9, "autumn": 9, "winter": 1}
_MEDLINE_DATE = re.compile(
    r"(?P<year>\d{4})(?:\s*(?P<mon>[A-Za-z]+)(?:\s+(?P<day>\d{1,2})\b)?)?",
)
_DOI_IN_TEXT = re.compile(r"\b(10\.\d{4,9}/\S+[^\s.,;)\]])", re.IGNORECASE)


@dataclass(slots=True)
class DeletedCitation:
    """A `DeleteCitation` element: PMIDs NLM has withdrawn from PubMed."""

    pmids: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ParseProblem:
    """A record (or the document) that could not be read, and why."""

    pmid: str | None
    reason: str


PubmedItem = Paper | DeletedCitation | ParseProblem


class PubmedParseError(ValueError):
    """A record lacks what every PubMed record has (e.g. its PMID)."""


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


# -- record parts ----------------------------------------------------------------------------
# Each part walks its element's children once and dispatches on the tag: far cheaper than one
# ElementPath `find` per field, and the parser's speed is a requirement (docs/benchmarks.md).


def _author(a: etree._Element) -> Author:
    # LastName, ForeName, Initials and Suffix are plain #PCDATA in the DTD (no markup inside),
    # so their text is read directly; CollectiveName and Affiliation may hold markup.
    last = fore = initials = collective = suffix = orcid = None
    affs: list[str] = []
    for c in a:
        tag = c.tag
        if tag == "LastName":
            last = c.text.strip() if c.text else None
        elif tag == "ForeName":
            fore = c.text.strip() if c.text else None
        elif tag == "Initials":
            initials = c.text.strip() if c.text else None
        elif tag == "AffiliationInfo":
            for x in c:
                if x.tag == "Affiliation" and (t := _text(x)):
                    affs.append(t)
        elif tag == "CollectiveName":
            collective = _text(c) or None
        elif tag == "Suffix":
            suffix = _plain(c)
        elif tag == "Affiliation":  # pre-2013 records put it directly on Author
            t = _text(c)
            if t and t not in affs:
                affs.append(t)
        elif tag == "Identifier" and (c.get("Source") or "").upper() == "ORCID" and c.text:
            orcid = c.text.strip().rsplit("/", 1)[-1]
    if last and suffix:
        last = f"{last} {suffix}"
    return Author(last, fore, initials, collective, affs, orcid)


def _authors(author_list: etree._Element | None) -> list[Author]:
    if author_list is None:
        return []
    # ValidYN="N" marks an author name the journal later corrected: not an author.
    return [_author(a) for a in author_list if a.tag == "Author" and a.get("ValidYN", "Y") != "N"]


def _abstract(abstract: etree._Element | None) -> tuple[str, list[AbstractSection]]:
    if abstract is None:
        return "", []
    sections: list[AbstractSection] = []
    for at in abstract:
        if at.tag != "AbstractText":
            continue  # CopyrightInformation is not part of the abstract
        text = _text(at)
        label = (at.get("Label") or "").strip()
        if text or label:
            sections.append(AbstractSection(text=text, label=label, category=at.get("NlmCategory") or ""))
    whole = "\n".join(f"{s.label}: {s.text}" if s.label else s.text for s in sections)
    return whole, sections


def _mesh(heading_list: etree._Element | None) -> list[MeshHeading]:
    if heading_list is None:
        return []
    out: list[MeshHeading] = []
    for mh in heading_list:
        # The DTD fixes MeshHeading as (DescriptorName, QualifierName*), both plain #PCDATA:
        # one pass over the children, the first being the descriptor (this loop is hot).
        heading: MeshHeading | None = None
        for c in mh:
            t = c.text
            if heading is None:
                if c.tag != "DescriptorName":
                    break
                heading = MeshHeading(t.strip() if t else "", c.get("UI"), c.get("MajorTopicYN") == "Y")
                out.append(heading)
            elif c.tag == "QualifierName":
                heading.qualifiers.append(
                    MeshQualifier(t.strip() if t else "", c.get("UI"), c.get("MajorTopicYN") == "Y")
                )
    return out


def _notices(cc_list: etree._Element | None) -> list[Notice]:
    if cc_list is None:
        return []
    out: list[Notice] = []
    for cc in cc_list:
        kind = NOTICE_REFTYPES.get(cc.get("RefType") or "")
        if kind is None or cc.tag != "CommentsCorrections":
            continue
        ref = pmid = None
        for c in cc:
            if c.tag == "RefSource":
                ref = _text(c) or None
            elif c.tag == "PMID":
                pmid = _plain(c)
        m = _DOI_IN_TEXT.search(ref or "")
        out.append(
            Notice(kind=kind, ref_source=ref, pmid=pmid, doi=_normalize_doi(m.group(1)) if m else None)
        )
    return out


def _article_id(id_list: etree._Element | None, id_type: str) -> str | None:
    if id_list is None:
        return None
    for aid in id_list.iterchildren("ArticleId"):
        if aid.get("IdType") == id_type and aid.text and aid.text.strip():
            return aid.text.strip()
    return None


def _article_ids(id_list: etree._Element | None) -> dict[str, str]:
    """IdType -> value for an ArticleIdList, first of each type (one pass)."""
    ids: dict[str, str] = {}
    if id_list is not None:
        for aid in id_list.iterchildren("ArticleId"):
            t = aid.text
            if t and (t := t.strip()):
                ids.setdefault(aid.get("IdType") or "", t)
    return ids


def _elocation_doi(parent: etree._Element) -> str | None:
    # ValidYN defaults to "Y" in the DTD; the DTD is not loaded, so a missing attribute is "Y".
    for e in parent.iterfind("ELocationID"):
        if e.get("EIdType") == "doi" and e.get("ValidYN", "Y") == "Y":
            doi = _normalize_doi(_text(e))
            if doi:
                return doi
    return None


def _keywords(parent: etree._Element) -> list[str]:
    seen: dict[str, None] = {}
    for kw in parent.iterfind("KeywordList/Keyword"):
        t = _text(kw)
        if t:
            seen.setdefault(t, None)
    return list(seen)


def _pmid(record: etree._Element, path: str) -> str:
    return _checked_pmid((record.findtext(path) or "").strip())


def _checked_pmid(pmid: str | None) -> str:
    """A PMID is a number (ASCII digits): it becomes part of the record's PubMed link."""
    if not pmid:
        raise PubmedParseError("record has no PMID")
    if not (pmid.isascii() and pmid.isdigit()):
        raise PubmedParseError(f"PMID {pmid!r} is not a number")
    return pmid


def _is_retracted(pub_types: Iterable[str], notices: Iterable[Notice]) -> bool:
    return RETRACTED_TYPE in pub_types or any(n.kind == "retraction_in" for n in notices)


@dataclass(slots=True)
class _CitationParts:
    """What a `MedlineCitation` holds, gathered in one pass over its children."""

    pmid: str | None = None
    article: etree._Element | None = None
    mesh_list: etree._Element | None = None
    cc_list: etree._Element | None = None
    medline_ta: str | None = None
    linking: str | None = None
    keywords: dict[str, None] = field(default_factory=dict)  # in order, first of each


@dataclass(slots=True)
class _ArticleParts:
    """What an `Article` holds, gathered in one pass over its children (and its Journal's)."""

    title: str | None = None
    vernacular: str | None = None
    language: str | None = None
    journal_title: str | None = None
    journal_iso: str | None = None
    doi: str | None = None
    epub: date | None = None
    abstract_el: etree._Element | None = None
    author_list: etree._Element | None = None
    issns: list[str] = field(default_factory=list)
    pub_types: list[str] = field(default_factory=list)
    pub_date: date | None = None
    pub_text: str | None = None


def _article_record_parts(record: etree._Element) -> tuple[etree._Element, etree._Element | None]:
    """The record's MedlineCitation (required) and the article's own ArticleIdList, if any."""
    citation = id_list = None
    for c in record:
        if c.tag == "MedlineCitation":
            citation = c
        elif c.tag == "PubmedData":
            # The article's own ArticleIdList only: ReferenceList/Reference/ArticleIdList
            # lists what it cites.
            for d in c:
                if d.tag == "ArticleIdList":
                    id_list = d
    if citation is None:
        raise PubmedParseError("PubmedArticle has no MedlineCitation")
    return citation, id_list


def _read_citation(citation: etree._Element) -> _CitationParts:
    """The citation's PMID, Article, MeSH, notices, keywords and journal names (a repeat wins)."""
    parts = _CitationParts()
    keywords = parts.keywords
    for c in citation:
        tag = c.tag
        if tag == "PMID":
            parts.pmid = _plain(c)
        elif tag == "Article":
            parts.article = c
        elif tag == "MeshHeadingList":
            parts.mesh_list = c
        elif tag == "CommentsCorrectionsList":
            parts.cc_list = c
        elif tag == "KeywordList":
            for kw in c:
                if kw.tag == "Keyword" and (t := _text(kw)):
                    keywords.setdefault(t, None)
        elif tag == "MedlineJournalInfo":
            for d in c:
                if d.tag == "MedlineTA":
                    parts.medline_ta = _plain(d)
                elif d.tag == "ISSNLinking":
                    parts.linking = _plain(d)
    return parts


def _read_article(article: etree._Element) -> _ArticleParts:
    """The article's titles, DOI (first valid ELocationID), first language, dates, journal."""
    parts = _ArticleParts()
    for c in article:
        tag = c.tag
        if tag == "ArticleTitle":
            parts.title = _text(c)
        elif tag == "VernacularTitle":
            parts.vernacular = _text(c)
        elif tag == "ELocationID":
            # ValidYN defaults to "Y" in the DTD, which is not loaded: a missing attribute is "Y".
            if parts.doi is None and c.get("EIdType") == "doi" and c.get("ValidYN", "Y") == "Y":
                parts.doi = _normalize_doi(_text(c))
        elif tag == "Abstract":
            parts.abstract_el = c
        elif tag == "AuthorList":
            parts.author_list = c
        elif tag == "Language":
            if parts.language is None:
                parts.language = _plain(c)
        elif tag == "PublicationTypeList":
            parts.pub_types = [t for t in (_plain(p) for p in c) if t]
        elif tag == "ArticleDate":
            if parts.epub is None and c.get("DateType", "Electronic") == "Electronic":
                parts.epub = _ymd(c)
        elif tag == "Journal":
            _read_journal(c, parts)
    return parts


def _read_journal(journal: etree._Element, parts: _ArticleParts) -> None:
    """Into `parts`: the journal's ISSNs (all, in order), title, ISO abbreviation and issue date."""
    for d in journal:
        dtag = d.tag
        if dtag == "ISSN":
            if v := _plain(d):
                parts.issns.append(v)
        elif dtag == "Title":
            parts.journal_title = _text(d) or None
        elif dtag == "ISOAbbreviation":
            parts.journal_iso = _text(d) or None
        elif dtag == "JournalIssue":
            for e in d:
                if e.tag == "PubDate":
                    parts.pub_date, parts.pub_text = parse_pub_date(e)


def parse_article(record: etree._Element) -> Paper:
    """One `PubmedArticle` element as a Paper (raises PubmedParseError when unreadable)."""
    citation, id_list = _article_record_parts(record)
    cit = _read_citation(citation)
    pmid = _checked_pmid(cit.pmid)
    if cit.article is None:
        raise PubmedParseError("MedlineCitation has no Article")
    art = _read_article(cit.article)
    ids = _article_ids(id_list)
    doi = art.doi
    if doi is None:
        doi = _normalize_doi(ids.get("doi"))
    issns = art.issns
    if cit.linking and cit.linking not in issns:
        issns.append(cit.linking)
    abstract, sections = _abstract(art.abstract_el)
    notices = _notices(cit.cc_list)
    return Paper(
        source="pubmed",
        source_key=pmid,
        title=art.title or art.vernacular or "",
        doi=doi,
        pmid=pmid,
        pmcid=ids.get("pmc"),
        abstract=abstract,
        abstract_sections=sections,
        authors=_authors(art.author_list),
        journal=art.journal_title or cit.medline_ta,
        journal_iso=art.journal_iso,
        issns=issns,
        pub_date=art.pub_date,
        pub_date_text=art.pub_text,
        epub_date=art.epub,
        publication_types=art.pub_types,
        mesh=_mesh(cit.mesh_list),
        keywords=list(cit.keywords),
        language=art.language,
        url=PUBMED_URL.format(pmid=pmid),
        notices=notices,
        is_retracted=_is_retracted(art.pub_types, notices),
    )


def parse_book_article(record: etree._Element) -> Paper:
    """One `PubmedBookArticle` (a book or chapter, e.g. GeneReviews) as a Paper."""
    doc = record.find("BookDocument")
    if doc is None:
        raise PubmedParseError("PubmedBookArticle has no BookDocument")
    pmid = _pmid(doc, "PMID")
    book = doc.find("Book")
    id_list = record.find("PubmedBookData/ArticleIdList")
    doi = _elocation_doi(doc) or _normalize_doi(_article_id(doc.find("ArticleIdList"), "doi"))
    doi = doi or _normalize_doi(_article_id(id_list, "doi"))
    book_title = _first_text(book, "BookTitle") if book is not None else None
    title = _first_text(doc, "ArticleTitle") or _first_text(doc, "VernacularTitle") or book_title or ""
    abstract, sections = _abstract(doc.find("Abstract"))
    pub_date, pub_text = parse_pub_date(book.find("PubDate") if book is not None else None)
    authors = []
    for al in doc.iterfind("AuthorList"):
        if al.get("Type", "authors") == "authors":
            authors.extend(_authors(al))
    if not authors and book is not None:
        for al in book.iterfind("AuthorList"):
            authors.extend(_authors(al))
    pub_types = [t for t in (_text(p) for p in doc.iterfind("PublicationType")) if t]
    isbn = [i.text.strip() for i in (book.iterfind("Isbn") if book is not None else ()) if i.text]
    return Paper(
        source="pubmed",
        source_key=pmid,
        title=title,
        doi=doi,
        pmid=pmid,
        pmcid=_article_id(id_list, "pmc"),
        abstract=abstract,
        abstract_sections=sections,
        authors=authors,
        journal=book_title,
        issns=isbn,
        pub_date=pub_date,
        pub_date_text=pub_text,
        publication_types=pub_types,
        keywords=_keywords(doc),
        language=(doc.findtext("Language") or "").strip() or None,
        url=PUBMED_URL.format(pmid=pmid),
    )


def parse_record(record: etree._Element) -> PubmedItem:
    """One record element (article, book article or DeleteCitation), never raising."""
    tag = record.tag
    try:
        if tag == "DeleteCitation":
            return DeletedCitation(
                [p.text.strip() for p in record.iterfind("PMID") if p.text and p.text.strip()]
            )
        if tag == "PubmedBookArticle":
            return parse_book_article(record)
        return parse_article(record)
    except (PubmedParseError, ValueError, TypeError, AttributeError, IndexError, KeyError) as e:
        path = "BookDocument/PMID" if tag == "PubmedBookArticle" else "MedlineCitation/PMID"
        pmid = (record.findtext(path) or "").strip() or None
        return ParseProblem(pmid, f"{type(e).__name__}: {e}")


# -- streaming -------------------------------------------------------------------------------


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


# -- ingest ----------------------------------------------------------------------------------

WATERMARK_NAME = "pubmed"
MAX_PROBLEMS_REPORTED = 50


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def read_watermark(engine: Engine, name: str = WATERMARK_NAME) -> datetime | None:
    """The stored end of the last successful window, or None on a fresh store."""
    import sqlalchemy as sa

    from lupus_alerts.store import watermarks

    with engine.connect() as conn:
        return conn.execute(sa.select(watermarks.c.value).where(watermarks.c.name == name)).scalar()


def decide_window(
    engine: Engine,
    *,
    run_end: datetime,
    overlap_days: int,
    initial_lookback_days: int,
    name: str = WATERMARK_NAME,
) -> tuple[datetime, datetime]:
    """The creation-date window a run searches: (last window's end - overlap, run_end).

    On a fresh store the window starts `initial_lookback_days` before `run_end`. The window
    depends only on the stored watermark and the run's own end, never on the clock, so a rerun
    searches the same window. The overlap re-reads records PubMed created late in the last
    window (upserts make re-reading harmless). Pass the result to `ingest_window` with
    `overlap_days=0`, since it is already applied.
    """
    end = _naive_utc(run_end)
    mark = read_watermark(engine, name)
    if mark is None:
        return end - timedelta(days=initial_lookback_days), end
    start = min(mark, end) - timedelta(days=overlap_days)
    return start, end


def record_window(engine: Engine, end: datetime, name: str = WATERMARK_NAME) -> datetime:
    """Advance the watermark to `end` after a successful window; it never moves backwards.

    Returns the watermark now stored.
    """
    import sqlalchemy as sa

    from lupus_alerts.store import utcnow, watermarks

    end = _naive_utc(end)
    with engine.begin() as conn:
        current = conn.execute(sa.select(watermarks.c.value).where(watermarks.c.name == name)).scalar()
        if current is None:
            conn.execute(sa.insert(watermarks).values(name=name, value=end, updated_at=utcnow()))
            return end
        if end > current:
            conn.execute(
                sa.update(watermarks).where(watermarks.c.name == name).values(value=end, updated_at=utcnow())
            )
            return end
        return current


def _stat(stats: Any, key: str) -> int:
    if stats is None:
        return 0
    if isinstance(stats, dict):
        return int(stats.get(key) or 0)
    return int(getattr(stats, key, 0) or 0)


def _new_summary(search_start: datetime, search_end: datetime) -> dict[str, Any]:
    """The summary before the first batch: the days searched, and every count at zero."""
    return {
        "search_start": search_start.date().isoformat(),
        "search_end": search_end.date().isoformat(),
        "hits": None,
        "fetched": 0,
        "parsed": 0,
        "deleted": 0,
        "problems": [],
        "problem_count": 0,
        "new": 0,
        "updated": 0,
        "unchanged": 0,
        "merged": 0,
        "notices_new": 0,
        "batches": 0,
    }


def _batch_papers(body: bytes, fetched_at: datetime, summary: dict[str, Any]) -> list[Paper]:
    """The batch's papers, stamped `fetched_at`; its deletions and (capped) problems are counted."""
    papers: list[Paper] = []
    for item in parse_pubmed(body):
        if isinstance(item, Paper):
            item.fetched_at = fetched_at
            papers.append(item)
        elif isinstance(item, DeletedCitation):
            summary["deleted"] += len(item.pmids)
        else:
            summary["problem_count"] += 1
            if len(summary["problems"]) < MAX_PROBLEMS_REPORTED:
                summary["problems"].append({"pmid": item.pmid, "reason": item.reason})
    return papers


def _check_hits(summary: dict[str, Any], hits: int | None) -> None:
    """Records ESearch's count, and a problem when EFetch returned fewer records than it."""
    summary["hits"] = hits
    if hits is not None and summary["fetched"] < hits:
        # PubMed can withdraw a record between the search and the fetch; anything more
        # than that must be visible in the run's summary.
        summary["problem_count"] += 1
        summary["problems"].append(
            {
                "pmid": None,
                "reason": f"ESearch counted {hits} records, EFetch returned {summary['fetched']}",
            }
        )


def _settle_watermark(engine: Engine, summary: dict[str, Any], end: datetime, record: bool) -> None:
    """Whether the watermark moves to `end`: only when every record the window held is stored."""
    # Records the window held that are not in the store now: unreadable ones, and ones ESearch
    # counted that EFetch did not return. The watermark says "everything before me is stored",
    # so it stays put; the next run over this window tries them again.
    summary["expected"] = max(summary["hits"] or 0, summary["fetched"])
    summary["unstored"] = max(0, summary["expected"] - summary["parsed"])
    summary["watermark"] = None
    if record and not summary["unstored"]:
        summary["watermark"] = record_window(engine, end).isoformat()


def ingest_window(
    settings: Settings,
    engine: Engine,
    *,
    start: datetime,
    end: datetime,
    client: EutilsClient | None = None,
    overlap_days: int | None = None,
    record: bool = True,
) -> dict[str, Any]:
    """Search PubMed for records created from `start` (less the overlap) to `end`, upsert them.

    The search runs on inclusive creation days (`[crdt]` is day-granular), widened backwards by
    `overlap_days` (default `settings.pubmed.overlap_days`). Batches are fetched in a background
    thread while the previous one is parsed and upserted. Unreadable records are counted and
    listed (capped) in the summary, never fatal; E-utilities failures raise `EutilsError`. The
    `pubmed` watermark advances to `end` (when `record`) only if every record the window held
    was stored: never past a record that was not.

    Returns {"search_start", "search_end", "hits" (ESearch's count), "fetched", "parsed",
    "deleted", "problems", "problem_count", "new", "updated", "unchanged", "merged",
    "notices_new", "requests", "calls", "batches", "expected" (records the window held),
    "unstored" (of those, not stored), "watermark" (the stored watermark, ISO, or None when it
    was not advanced)} (the upsert counts are `dedupe.UpsertStats`').
    """
    from lupus_alerts.dedupe import upsert_papers
    from lupus_alerts.eutils import EutilsClient, count_records
    from lupus_alerts.store import utcnow

    overlap = settings.pubmed.overlap_days if overlap_days is None else overlap_days
    s = _naive_utc(start) - timedelta(days=overlap)
    e = _naive_utc(end)
    own = client is None
    c = client or EutilsClient.from_settings(settings.pubmed)
    summary = _new_summary(s, e)
    requests_before = c.requests_made
    calls_before = dict(c.calls)
    fetched_at = utcnow()
    try:
        for body in c.prefetch_window(settings.pubmed.query, s.date(), e.date()):
            summary["batches"] += 1
            summary["fetched"] += count_records(body)
            papers = _batch_papers(body, fetched_at, summary)
            summary["parsed"] += len(papers)
            if papers:
                stats = upsert_papers(engine, papers)
                for key in ("new", "updated", "unchanged", "merged", "notices_new"):
                    summary[key] += _stat(stats, key)
        _check_hits(summary, c.last_window_hits)
    finally:
        summary["requests"] = c.requests_made - requests_before
        summary["calls"] = {k: v - calls_before.get(k, 0) for k, v in c.calls.items()}
        if own:
            c.close()
    _settle_watermark(engine, summary, e, record)
    return summary
