"""The deduplication rules themselves, pure: how the records of one paper merge into its record
(which source wins a field, how lists and notices combine). docs/dedupe.md explains each rule."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from lupus_alerts.doi import normalize_doi
from lupus_alerts.models import Author, Notice, Paper

PUBMED = "pubmed"


# Notices that say something happened *to this paper*; the reverse links (retraction_of, ...)
# belong to the notice's own record and are not updates of the paper that carries them.
UPDATE_KINDS = ("retraction_in", "erratum_in", "expression_of_concern_in", "update_in")


def _precedence(p: Paper) -> tuple[Any, ...]:
    # PubMed first (curated: MeSH, types, full author list), then feeds by name; within one
    # source the most recently fetched record first. Input order never matters.
    fetched = p.fetched_at.timestamp() if p.fetched_at else 0.0
    return (p.source != PUBMED, p.source, p.source_key, -fetched)


def _first(records: Sequence[Paper], attr: str) -> Any:
    for r in records:
        v = getattr(r, attr)
        if v:
            return v
    return getattr(records[0], attr)


def _union(records: Sequence[Paper], attr: str, key: Any = None) -> list[Any]:
    out: list[Any] = []
    seen: set[Any] = set()
    for r in records:
        for v in getattr(r, attr):
            k = key(v) if key else v
            if k not in seen:
                seen.add(k)
                out.append(v)
    return out


def _notice_key(n: Notice) -> str:
    return (normalize_doi(n.doi) or n.pmid or (n.ref_source or "").strip() or "?")[:512]


def merge_records(records: Sequence[Paper]) -> Paper:
    """The one record of a paper built from every source's record. Pure and order-independent.

    Precedence (docs/dedupe.md): PubMed's value for every bibliographic field it has (title,
    authors, journal, MeSH, publication types, PMID/PMCID, language), else the first feed's
    (by feed id) that has one; the longest abstract (with its sections); the earliest dates;
    DOI from PubMed else any source; the publisher's link from a feed else any; the union of
    keywords, ISSNs and notices; retracted if any source says so.
    """
    if not records:
        raise ValueError("merge_records needs at least one record")
    recs = sorted(records, key=_precedence)
    primary = recs[0]
    # max() keeps the first of equal lengths, so PubMed wins ties.
    with_abstract = max(recs, key=lambda r: len(r.abstract.strip()))
    feeds_first = sorted(recs, key=lambda r: (r.source == PUBMED, r.source, r.source_key))
    notices = sorted(
        _union(recs, "notices", key=lambda n: (n.kind, _notice_key(n))),
        key=lambda n: (n.kind, _notice_key(n)),
    )
    dated = [r for r in recs if r.pub_date is not None]
    earliest_pub = min(dated, key=lambda r: r.pub_date or date.max) if dated else None
    epubs = [r.epub_date for r in recs if r.epub_date]
    fetched = [r.fetched_at for r in recs if r.fetched_at]
    dois = [d for d in (normalize_doi(r.doi) for r in recs) if d]
    authors: list[Author] = next((r.authors for r in recs if r.authors), [])
    return Paper(
        source=primary.source,
        source_key=primary.source_key,
        title=_first(recs, "title"),
        doi=dois[0] if dois else None,
        pmid=_first(recs, "pmid"),
        pmcid=_first(recs, "pmcid"),
        abstract=with_abstract.abstract,
        abstract_sections=list(with_abstract.abstract_sections),
        authors=list(authors),
        journal=_first(recs, "journal"),
        journal_iso=_first(recs, "journal_iso"),
        issns=_union(recs, "issns"),
        pub_date=earliest_pub.pub_date if earliest_pub else None,
        pub_date_text=earliest_pub.pub_date_text if earliest_pub else _first(recs, "pub_date_text"),
        epub_date=min(epubs) if epubs else None,
        publication_types=list(_first(recs, "publication_types")),
        mesh=list(_first(recs, "mesh")),
        keywords=_union(recs, "keywords", key=str.casefold),
        language=_first(recs, "language"),
        url=_first(feeds_first, "url"),
        notices=notices,
        is_retracted=any(r.is_retracted for r in recs) or any(n.kind == "retraction_in" for n in notices),
        fetched_at=max(fetched) if fetched else None,
        classification=None,
    )


def _merges_to_itself(p: Paper) -> bool:
    """Whether merge_records([p]) == p: nothing for the merge to sort, deduplicate or derive."""
    return (
        p.classification is None
        and len(p.notices) <= 1
        and (p.is_retracted or not any(n.kind == "retraction_in" for n in p.notices))
        and len({k.casefold() for k in p.keywords}) == len(p.keywords)
        and len(set(p.issns)) == len(p.issns)
        and p.doi == normalize_doi(p.doi)
    )
