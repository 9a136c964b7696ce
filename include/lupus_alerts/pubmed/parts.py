"""The parts of one PubMed record: authors, abstract sections, MeSH, notices, identifiers.

Each reader takes the element that holds its part (AuthorList, Abstract, MeshHeadingList,
CommentsCorrectionsList, ArticleIdList, ...) and returns model values (`lupus_alerts.models`).
Also owns which CommentsCorrections are notices (`NOTICE_REFTYPES`), when a record counts as
retracted, and that a PMID is a number.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from lxml import etree

from lupus_alerts.models import AbstractSection, Author, MeshHeading, MeshQualifier, Notice
from lupus_alerts.pubmed.fields import _normalize_doi, _plain, _text
from lupus_alerts.pubmed.items import PubmedParseError

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
_DOI_IN_TEXT = re.compile(r"\b(10\.\d{4,9}/\S+[^\s.,;)\]])", re.IGNORECASE)


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
