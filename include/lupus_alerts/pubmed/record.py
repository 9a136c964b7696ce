"""One record element as a `Paper` (or a `DeletedCitation` or `ParseProblem`).

Owns the shape of `PubmedArticle` (MedlineCitation, Article, Journal, PubmedData) and of
`PubmedBookArticle` (BookDocument, Book), read in one pass over each element's children, and
`parse_record`, which never raises: an unreadable record becomes a `ParseProblem`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from lxml import etree

from lupus_alerts.models import Paper
from lupus_alerts.pubmed.fields import _first_text, _normalize_doi, _plain, _text, _ymd, parse_pub_date
from lupus_alerts.pubmed.items import DeletedCitation, ParseProblem, PubmedItem, PubmedParseError
from lupus_alerts.pubmed.parts import (
    _abstract,
    _article_id,
    _article_ids,
    _authors,
    _checked_pmid,
    _elocation_doi,
    _is_retracted,
    _keywords,
    _mesh,
    _notices,
    _pmid,
)

PUBMED_URL = "https://pubmed.ncbi.nlm.nih.gov/{pmid}/"


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
