"""What the PubMed parser yields besides a `Paper`, and the error a record's reader raises.

`PubmedItem` is one parsed record: a `Paper` (models), a `DeletedCitation` (PMIDs NLM withdrew)
or a `ParseProblem` (a record, or the document, that could not be read). `PubmedParseError` is
raised inside the record readers and becomes a `ParseProblem` in `record.parse_record`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lupus_alerts.models import Paper


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
