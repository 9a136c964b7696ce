"""Plain data passed between the pipeline's stages.

A `Paper` is what every source (PubMed, a journal feed) turns a record into, what the store
merges, what the classifier reads and what the digest shows. Its JSON form (`to_dict`) is the
project's *paper schema*, documented in `docs/paper-schema.md`; `lupus-alerts papers parse`
prints it and `lupus-alerts classify` reads it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

# Kinds of notice a record can carry about another record (PubMed CommentsCorrections
# RefType values, lower-cased with underscores). A paper that *is* retracted carries
# `retraction_in`; the retraction notice itself carries `retraction_of`.
NOTICE_KINDS = (
    "retraction_in",
    "retraction_of",
    "erratum_in",
    "erratum_for",
    "expression_of_concern_in",
    "expression_of_concern_for",
    "update_in",
    "update_of",
)


@dataclass(slots=True)
class Author:
    """One author: a person (last/fore name) or a group (`collective_name`)."""

    last_name: str | None = None
    fore_name: str | None = None
    initials: str | None = None
    collective_name: str | None = None
    affiliations: list[str] = field(default_factory=list)
    orcid: str | None = None

    @property
    def display(self) -> str:
        """The name as a citation shows it: "Smith JA", or the group's name."""
        if self.collective_name:
            return self.collective_name
        if self.last_name and self.initials:
            return f"{self.last_name} {self.initials}"
        return " ".join(p for p in (self.last_name, self.fore_name) if p) or ""


@dataclass(slots=True)
class MeshQualifier:
    name: str
    ui: str | None = None
    major: bool = False


@dataclass(slots=True)
class MeshHeading:
    """A MeSH descriptor with its major-topic flag and qualifiers."""

    descriptor: str
    ui: str | None = None
    major: bool = False
    qualifiers: list[MeshQualifier] = field(default_factory=list)

    @property
    def is_major(self) -> bool:
        """Major topic either on the descriptor or on any of its qualifiers (NLM's rule)."""
        return self.major or any(q.major for q in self.qualifiers)


@dataclass(slots=True)
class AbstractSection:
    """One section of a (possibly structured) abstract; `label` is empty when unstructured."""

    text: str
    label: str = ""
    category: str = ""  # NLM category: BACKGROUND, OBJECTIVE, METHODS, RESULTS, CONCLUSIONS


@dataclass(slots=True)
class Notice:
    """A link from this record to a retraction, erratum, concern or update (or back)."""

    kind: str  # one of NOTICE_KINDS
    ref_source: str | None = None  # the citation text, e.g. "Lupus. 2024;33(2):101"
    pmid: str | None = None
    doi: str | None = None


@dataclass(slots=True)
class TopicLabel:
    """One subspecialty label with its score (0..1) and human-readable evidence."""

    label: str
    score: float
    evidence: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Classification:
    """What the classifier says about one paper."""

    is_lupus: bool
    relevance_score: float
    relevance_evidence: list[str] = field(default_factory=list)
    topics: list[TopicLabel] = field(default_factory=list)


@dataclass(slots=True)
class Paper:
    """One bibliographic record, from any source, in the project's paper schema."""

    source: str  # "pubmed" or "feed:<feed id>"
    source_key: str  # the PMID, or the feed item's guid/link
    title: str
    doi: str | None = None  # normalised: lower-case "10.xxxx/..."
    pmid: str | None = None
    pmcid: str | None = None
    abstract: str = ""  # whole abstract; sections joined as "LABEL: text"
    abstract_sections: list[AbstractSection] = field(default_factory=list)
    authors: list[Author] = field(default_factory=list)
    journal: str | None = None
    journal_iso: str | None = None
    issns: list[str] = field(default_factory=list)
    pub_date: date | None = None  # best single date for the issue/publication
    pub_date_text: str | None = None  # the original text (MedlineDate, Season, feed string)
    epub_date: date | None = None
    publication_types: list[str] = field(default_factory=list)
    mesh: list[MeshHeading] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    language: str | None = None
    url: str | None = None  # the publisher's or the feed's link
    notices: list[Notice] = field(default_factory=list)
    is_retracted: bool = False
    fetched_at: datetime | None = None
    # Set by the classifier; None until classified.
    classification: Classification | None = None

    @property
    def first_date(self) -> date | None:
        """The earliest known date (electronic or print): what "published" means in a digest."""
        dates = [d for d in (self.epub_date, self.pub_date) if d]
        return min(dates) if dates else None

    def to_dict(self) -> dict[str, Any]:
        """The paper-schema JSON object (dates as ISO strings)."""
        return _jsonable(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Paper:
        """Build a Paper from a paper-schema object; unknown keys are ignored."""
        d = {k: v for k, v in data.items() if k in _PAPER_FIELDS}
        d.setdefault("source", "input")
        d.setdefault("source_key", d.get("pmid") or d.get("doi") or "")
        for key in ("pub_date", "epub_date"):
            if isinstance(d.get(key), str):
                d[key] = date.fromisoformat(d[key])
        if isinstance(d.get("fetched_at"), str):
            d["fetched_at"] = datetime.fromisoformat(d["fetched_at"])
        d["authors"] = [a if isinstance(a, Author) else Author(**a) for a in d.get("authors", [])]
        d["abstract_sections"] = [
            s if isinstance(s, AbstractSection) else AbstractSection(**s)
            for s in d.get("abstract_sections", [])
        ]
        d["mesh"] = [_mesh_from(m) for m in d.get("mesh", [])]
        d["notices"] = [n if isinstance(n, Notice) else Notice(**n) for n in d.get("notices", [])]
        c = d.get("classification")
        if isinstance(c, dict):
            d["classification"] = Classification(
                is_lupus=c["is_lupus"],
                relevance_score=c.get("relevance_score", 1.0 if c["is_lupus"] else 0.0),
                relevance_evidence=list(c.get("relevance_evidence", [])),
                topics=[TopicLabel(**t) for t in c.get("topics", [])],
            )
        return cls(**d)


_PAPER_FIELDS = {f.name for f in dataclasses.fields(Paper)}


def _mesh_from(m: MeshHeading | dict[str, Any] | str) -> MeshHeading:
    if isinstance(m, MeshHeading):
        return m
    if isinstance(m, str):  # a bare descriptor name is accepted on input
        return MeshHeading(descriptor=m)
    quals = [q if isinstance(q, MeshQualifier) else MeshQualifier(**q) for q in m.get("qualifiers", [])]
    return MeshHeading(
        descriptor=m["descriptor"], ui=m.get("ui"), major=bool(m.get("major")), qualifiers=quals
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value
