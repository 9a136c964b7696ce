"""Seed a store with announced lupus papers and subscribers, for delivery tests.

The papers are CONSTRUCTED (hand-written, not real records): titles, DOIs and topics are made up
to exercise selection and delivery, and are written through the real tables the way
`announce.classify_and_announce` leaves them (announce_no from the "announce" counter).
"""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lupus_alerts import store
from lupus_alerts.models import Author, Classification, Paper, TopicLabel

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
    return pid


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
