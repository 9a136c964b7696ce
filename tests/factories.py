"""Builders for what the tests make by hand: papers, announced papers in a store, settings.

Every test folder imports this module as `factories`: pytest puts tests/ (the folder of the
root conftest.py, tests/ not being a package) on sys.path, the way tests/integration's helpers
are imported from their own folder.

The papers are CONSTRUCTED (hand-written, not real records): titles, DOIs and topics are made up
to exercise merging, selection and delivery. `insert_announced` and `add_papers` write them
through the real tables the way `announce.classify_and_announce` leaves them (announce_no from
the "announce" counter).
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any, TypedDict, Unpack

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lupus_alerts import store
from lupus_alerts.config import FeedConfig, Settings, settings_from_dict
from lupus_alerts.models import (
    AbstractSection,
    Author,
    Classification,
    MeshHeading,
    Notice,
    Paper,
    TopicLabel,
)


class PaperFields(TypedDict, total=False):
    """`Paper`'s fields as keyword arguments, so overrides are type-checked (tests/unit/
    test_factories.py keeps the two in step)."""

    source: str
    source_key: str
    title: str
    doi: str | None
    pmid: str | None
    pmcid: str | None
    abstract: str
    abstract_sections: list[AbstractSection]
    authors: list[Author]
    journal: str | None
    journal_iso: str | None
    issns: list[str]
    pub_date: date | None
    pub_date_text: str | None
    epub_date: date | None
    publication_types: list[str]
    mesh: list[MeshHeading]
    keywords: list[str]
    language: str | None
    url: str | None
    notices: list[Notice]
    is_retracted: bool
    fetched_at: datetime | None
    classification: Classification | None


LUPUS_TITLE = "Hydroxychloroquine and adverse pregnancy outcomes in systemic lupus erythematosus"
LUPUS_DOI = "10.1177/09612033251234567"


def make_paper(**overrides: Unpack[PaperFields]) -> Paper:
    """A lupus paper as the PubMed parser emits it (PMID, DOI, MeSH, a structured abstract);
    any field can be overridden."""
    fields: PaperFields = {
        "source": "pubmed",
        "source_key": "41000001",
        "pmid": "41000001",
        "title": LUPUS_TITLE + ".",
        "doi": LUPUS_DOI,
        "journal": "Lupus",
        "journal_iso": "Lupus",
        "abstract": "OBJECTIVE: To study HCQ in pregnancy. RESULTS: Fewer flares.",
        "pub_date": date(2026, 11, 1),
        "mesh": [MeshHeading("Lupus Erythematosus, Systemic", major=True), MeshHeading("Pregnancy")],
        "publication_types": ["Journal Article"],
    }
    return Paper(**(fields | overrides))


def make_feed_item(feed: str = "lupus", **overrides: Unpack[PaperFields]) -> Paper:
    """The same paper as a journal feed's item emits it: no PMID, no abstract, the DOI and the
    item's link (its guid) only; any field can be overridden."""
    link = f"https://journals.example/{feed}/item-1"
    fields: PaperFields = {
        "source": f"feed:{feed}",
        "source_key": link,
        "title": LUPUS_TITLE,
        "doi": LUPUS_DOI,
        "journal": "Lupus",
        "pub_date": date(2026, 10, 30),
        "url": link,
    }
    return Paper(**(fields | overrides))


def make_settings(base_dir: Path | None = None, /, **sections: Any) -> Settings:
    """Settings validated as a configuration file's are; each keyword is a top-level section
    (`pubmed={...}`, `digest={...}`, `data_dir=...`), and `feeds` may hold `FeedConfig`s.
    Relative paths resolve from `base_dir` (the current directory when None)."""
    raw = dict(sections)
    if "feeds" in raw:
        raw["feeds"] = [f.model_dump() if isinstance(f, FeedConfig) else f for f in raw["feeds"]]
    return settings_from_dict(raw, base_dir=base_dir)


# -- announced papers in a store ----------------------------------------------------------------

NOW = datetime(2026, 11, 27, 6, 0, 0)


def insert_announced(conn: sa.Connection, paper: Paper, *, announce_no: int | None, now: datetime) -> int:
    """Write a classified paper as `announce.classify_and_announce` leaves it: the papers row
    (announced as `announce_no`, or not announced when None) and one paper_topics row per label.
    Returns the paper's id."""
    cls = paper.classification
    assert cls is not None, "seed papers carry their classification"
    record = paper.to_dict()
    pid = conn.execute(
        sa.insert(store.papers)
        .values(
            doi=paper.doi,
            pmid=paper.pmid,
            title=paper.title,
            journal=paper.journal,
            pub_date=paper.first_date,
            record=record,
            is_lupus=cls.is_lupus,
            relevance_score=cls.relevance_score,
            classification=record["classification"],
            needs_classification=False,
            is_retracted=paper.is_retracted,
            announce_no=announce_no,
            announced_at=now if announce_no else None,
            first_seen_at=now,
            updated_at=now,
        )
        .returning(store.papers.c.id)
    ).scalar_one()
    if cls.topics:
        conn.execute(
            sa.insert(store.paper_topics),
            [{"paper_id": pid, "label": t.label, "score": t.score} for t in cls.topics],
        )
    return int(pid)


def add_papers(
    engine: Engine, topics_per_paper: list[list[str]], *, title_prefix: str = "Constructed paper"
) -> list[int]:
    """Insert and announce one paper per entry (its topic labels); returns their announce numbers."""
    out: list[int] = []
    with engine.begin() as conn:
        nums = store.next_numbers(conn, "announce", len(topics_per_paper))
        for no, labels in zip(nums, topics_per_paper, strict=True):
            cls = Classification(
                is_lupus=True,
                relevance_score=0.95,
                relevance_evidence=["MeSH: Lupus Erythematosus, Systemic"],
                topics=[
                    TopicLabel(label, 0.9 - 0.1 * i, [f"keyword '{label}'"]) for i, label in enumerate(labels)
                ],
            )
            paper = Paper(
                source="pubmed",
                source_key=f"9{no:07d}",
                pmid=f"9{no:07d}",
                doi=f"10.9999/constructed.{no}",
                title=f"{title_prefix} {no} on {', '.join(labels) or 'lupus'} in lupus",
                abstract="Background: constructed. Methods: constructed. Results: constructed findings. "
                "Conclusions: constructed conclusion.",
                authors=[Author(last_name="Doe", fore_name="Jane", initials="J")],
                journal="Lupus",
                pub_date=date(2026, 11, 20),
                classification=cls,
            )
            insert_announced(conn, paper, announce_no=no, now=NOW)
            out.append(no)
    return out
