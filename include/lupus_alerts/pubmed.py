"""PubMed XML (EFetch `db=pubmed&retmode=xml`) to `Paper`s, and the PubMed ingest of one window.

The parser streams with lxml `iterparse`, clearing each record once it is read, so memory stays
flat however large the file. It never loads the DTD, never touches the network and never expands
entities: EFetch files declare a remote DTD that must not be fetched. Element names and their
meaning follow NLM's PubMed DTD (pubmed_250101.dtd): `PubmedArticleSet` holds `PubmedArticle`,
`PubmedBookArticle` and `DeleteCitation`; a bare `PubmedArticle` document is read as well.

A record that cannot be read is yielded as a `ParseProblem` (PMID and reason) and skipped; a
batch never fails because of one record. XML that is not well-formed ends the stream with one
`ParseProblem` after every record read before the break.

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
    """Normalise a DOI with the dedupe engineer's rules when available (lupus_alerts.doi)."""
    if not text:
        return None
    try:
        from lupus_alerts.doi import normalize_doi
    except ImportError:  # doi.py not there yet: the minimal equivalent
        return _local_normalize_doi(text)
    return normalize_doi(text)


def _local_normalize_doi(text: str) -> str | None:
    t = text.strip()
    t = re.sub(r"^(?:https?://(?:dx\.)?doi\.org/|doi:\s*|info:doi/)", "", t, flags=re.IGNORECASE)
    t = t.strip().lower()
    return t if re.match(r"^10\.\d{4,9}/\S+$", t) else None


# -- text ------------------------------------------------------------------------------------


def _text(el: etree._Element | None) -> str:
    """All text inside `el` with inline markup flattened and whitespace collapsed.

    <sub>/<sup>/<i>/<b>/<u> keep their text (CO<sub>2</sub> reads CO2); MathML keeps its token
    text, joined without the indentation between tokens (R<sup>2</sup> reads R2).
    """
    if el is None:
        return ""
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


def parse_pub_date(el: etree._Element | None) -> tuple[date | None, str | None]:
    """A PubDate (Year/Month/Day, Season, or MedlineDate) as (best date, original text)."""
    if el is None:
        return None, None
    medline = el.findtext("MedlineDate")
    if medline:
        return parse_medline_date(medline), " ".join(medline.split())
    year = (el.findtext("Year") or "").strip()
    month = (el.findtext("Month") or "").strip()
    day = (el.findtext("Day") or "").strip()
    season = (el.findtext("Season") or "").strip()
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
    year = (el.findtext("Year") or "").strip()
    if not year.isdigit():
        return None
    day = (el.findtext("Day") or "").strip()
    return _safe_date(int(year), _month(el.findtext("Month")), int(day) if day.isdigit() else None)


# -- record parts ----------------------------------------------------------------------------


def _authors(author_list: etree._Element | None) -> list[Author]:
    if author_list is None:
        return []
    out: list[Author] = []
    for a in author_list.iterfind("Author"):
        if a.get("ValidYN", "Y") == "N":  # an author name the journal later corrected
            continue
        affs = [t for t in (_text(x) for x in a.iterfind("AffiliationInfo/Affiliation")) if t]
        old_aff = _first_text(a, "Affiliation")  # pre-2013 records put it directly on Author
        if old_aff and old_aff not in affs:
            affs.append(old_aff)
        orcid = None
        for ident in a.iterfind("Identifier"):
            if (ident.get("Source") or "").upper() == "ORCID" and ident.text:
                orcid = ident.text.strip().rsplit("/", 1)[-1]
        last = _first_text(a, "LastName")
        suffix = _first_text(a, "Suffix")
        if last and suffix:
            last = f"{last} {suffix}"
        out.append(
            Author(
                last_name=last,
                fore_name=_first_text(a, "ForeName"),
                initials=_first_text(a, "Initials"),
                collective_name=_first_text(a, "CollectiveName"),
                affiliations=affs,
                orcid=orcid,
            )
        )
    return out


def _abstract(abstract: etree._Element | None) -> tuple[str, list[AbstractSection]]:
    if abstract is None:
        return "", []
    sections: list[AbstractSection] = []
    for at in abstract.iterfind("AbstractText"):
        text = _text(at)
        label = (at.get("Label") or "").strip()
        if text or label:
            sections.append(AbstractSection(text=text, label=label, category=at.get("NlmCategory") or ""))
    whole = "\n".join(f"{s.label}: {s.text}" if s.label else s.text for s in sections)
    return whole, sections


def _mesh(citation: etree._Element) -> list[MeshHeading]:
    out: list[MeshHeading] = []
    for mh in citation.iterfind("MeshHeadingList/MeshHeading"):
        d = mh.find("DescriptorName")
        if d is None:
            continue
        quals = [
            MeshQualifier(name=_text(q), ui=q.get("UI"), major=q.get("MajorTopicYN") == "Y")
            for q in mh.iterfind("QualifierName")
        ]
        out.append(
            MeshHeading(
                descriptor=_text(d), ui=d.get("UI"), major=d.get("MajorTopicYN") == "Y", qualifiers=quals
            )
        )
    return out


def _notices(citation: etree._Element) -> list[Notice]:
    out: list[Notice] = []
    for cc in citation.iterfind("CommentsCorrectionsList/CommentsCorrections"):
        kind = NOTICE_REFTYPES.get(cc.get("RefType") or "")
        if kind is None:
            continue
        ref = _first_text(cc, "RefSource")
        m = _DOI_IN_TEXT.search(ref or "")
        out.append(
            Notice(
                kind=kind,
                ref_source=ref,
                pmid=(cc.findtext("PMID") or "").strip() or None,
                doi=_normalize_doi(m.group(1)) if m else None,
            )
        )
    return out


def _article_id(id_list: etree._Element | None, id_type: str) -> str | None:
    if id_list is None:
        return None
    for aid in id_list.iterfind("ArticleId"):
        if aid.get("IdType") == id_type and aid.text and aid.text.strip():
            return aid.text.strip()
    return None


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
    pmid = (record.findtext(path) or "").strip()
    if not pmid:
        raise PubmedParseError("record has no PMID")
    return pmid


def _is_retracted(pub_types: Iterable[str], notices: Iterable[Notice]) -> bool:
    return RETRACTED_TYPE in pub_types or any(n.kind == "retraction_in" for n in notices)


def parse_article(record: etree._Element) -> Paper:
    """One `PubmedArticle` element as a Paper (raises PubmedParseError when unreadable)."""
    citation = record.find("MedlineCitation")
    if citation is None:
        raise PubmedParseError("PubmedArticle has no MedlineCitation")
    pmid = _pmid(citation, "PMID")
    article = citation.find("Article")
    if article is None:
        raise PubmedParseError("MedlineCitation has no Article")
    id_list = record.find("PubmedData/ArticleIdList")
    # The article's own ArticleIdList only: ReferenceList/Reference/ArticleIdList are citations.
    doi = _elocation_doi(article) or _normalize_doi(_article_id(id_list, "doi"))
    title = _first_text(article, "ArticleTitle") or _first_text(article, "VernacularTitle") or ""
    abstract, sections = _abstract(article.find("Abstract"))
    journal = article.find("Journal")
    issns: list[str] = []
    pub_date = pub_text = None
    journal_title = journal_iso = None
    if journal is not None:
        issns = [i.text.strip() for i in journal.iterfind("ISSN") if i.text and i.text.strip()]
        journal_title = _first_text(journal, "Title")
        journal_iso = _first_text(journal, "ISOAbbreviation")
        pub_date, pub_text = parse_pub_date(journal.find("JournalIssue/PubDate"))
    linking = (citation.findtext("MedlineJournalInfo/ISSNLinking") or "").strip()
    if linking and linking not in issns:
        issns.append(linking)
    epub = None
    for ad in article.iterfind("ArticleDate"):
        if ad.get("DateType", "Electronic") == "Electronic":
            epub = _ymd(ad)
            break
    pub_types = [t for t in (_text(p) for p in article.iterfind("PublicationTypeList/PublicationType")) if t]
    notices = _notices(citation)
    return Paper(
        source="pubmed",
        source_key=pmid,
        title=title,
        doi=doi,
        pmid=pmid,
        pmcid=_article_id(id_list, "pmc"),
        abstract=abstract,
        abstract_sections=sections,
        authors=_authors(article.find("AuthorList")),
        journal=journal_title or (citation.findtext("MedlineJournalInfo/MedlineTA") or None),
        journal_iso=journal_iso,
        issns=issns,
        pub_date=pub_date,
        pub_date_text=pub_text,
        epub_date=epub,
        publication_types=pub_types,
        mesh=_mesh(citation),
        keywords=_keywords(citation),
        language=(article.findtext("Language") or "").strip() or None,
        url=PUBMED_URL.format(pmid=pmid),
        notices=notices,
        is_retracted=_is_retracted(pub_types, notices),
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
    try:
        for _event, el in context:
            item = parse_record(el)
            if isinstance(item, Paper):
                last_pmid = item.pmid
            yield item
            # Free the record and every finished sibling before it, so memory stays flat.
            el.clear(keep_tail=True)
            parent = el.getparent()
            if parent is not None:
                while el.getprevious() is not None:
                    del parent[0]
    except etree.XMLSyntaxError as e:
        after = f" (after PMID {last_pmid})" if last_pmid else ""
        yield ParseProblem(None, f"XML not well-formed{after}: {e}")


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
    listed (capped) in the summary, never fatal; E-utilities failures raise `EutilsError`. On
    success the `pubmed` watermark advances to `end` (when `record`).

    Returns {"search_start", "search_end", "hits", "fetched", "parsed", "deleted", "problems",
    "problem_count", "new", "updated", "unchanged", "merged", "notices_new", "requests", "batches"}
    (the upsert counts are `merge.UpsertStats`').
    """
    from lupus_alerts.eutils import EutilsClient, count_records
    from lupus_alerts.merge import upsert_papers
    from lupus_alerts.store import utcnow

    overlap = settings.pubmed.overlap_days if overlap_days is None else overlap_days
    s = _naive_utc(start) - timedelta(days=overlap)
    e = _naive_utc(end)
    own = client is None
    c = client or EutilsClient.from_settings(settings.pubmed)
    summary: dict[str, Any] = {
        "search_start": s.date().isoformat(),
        "search_end": e.date().isoformat(),
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
    requests_before = c.requests_made
    fetched_at = utcnow()
    try:
        for body in c.prefetch_window(settings.pubmed.query, s.date(), e.date()):
            summary["batches"] += 1
            summary["fetched"] += count_records(body)
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
            summary["parsed"] += len(papers)
            if papers:
                stats = upsert_papers(engine, papers)
                for key in ("new", "updated", "unchanged", "merged", "notices_new"):
                    summary[key] += _stat(stats, key)
    finally:
        summary["requests"] = c.requests_made - requests_before
        if own:
            c.close()
    if record:
        record_window(engine, e)
    return summary
