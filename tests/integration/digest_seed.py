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
            pid = conn.execute(
                sa.insert(store.papers)
                .values(
                    doi=paper.doi,
                    pmid=paper.pmid,
                    title=paper.title,
                    journal=paper.journal,
                    pub_date=paper.pub_date,
                    record=paper.to_dict(),
                    is_lupus=True,
                    relevance_score=0.95,
                    classification=paper.to_dict()["classification"],
                    needs_classification=False,
                    announce_no=no,
                    announced_at=NOW,
                    first_seen_at=NOW,
                    updated_at=NOW,
                )
                .returning(store.papers.c.id)
            ).scalar_one()
            for t in cls.topics:
                conn.execute(sa.insert(store.paper_topics).values(paper_id=pid, label=t.label, score=t.score))
            out.append(no)
    return out
