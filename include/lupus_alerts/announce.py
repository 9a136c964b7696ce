"""Announce-once: classify what changed, then number new lupus papers and new updates.

Digests select papers by announcement number with a per-subscriber cursor ("everything after
the last number I sent"), so numbers must be handed out such that a number is never committed
*after* a larger one is visible: otherwise a digest that read up to the larger one moves the
cursor past a paper it never saw. `store.next_numbers` takes the counter row's lock (PostgreSQL
row lock, SQLite database lock) and it is held until this transaction commits, so numbers become
visible in order; and the pipeline runs this step in a single task with max_active_runs=1, so
only one numbering step exists at a time. Details: docs/dedupe.md.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lupus_alerts import store
from lupus_alerts.models import Classification, Paper

ANNOUNCE_COUNTER = "announce"
UPDATE_COUNTER = "update"


class AnnounceConflict(Exception):
    """Another numbering step changed the same papers concurrently; nothing was committed."""


class PaperClassifier(Protocol):
    """What announce needs of a classifier (`lupus_alerts.classify.Classifier` is one)."""

    def classify(self, paper: Paper) -> Classification: ...


@dataclass(slots=True)
class AnnounceStats:
    """What one `classify_and_announce` call did."""

    classified: int = 0
    lupus: int = 0
    not_lupus: int = 0
    announced: int = 0
    updates_flagged: int = 0
    announce_from: int = 0  # exclusive: the last number before this call
    announce_to: int = 0  # inclusive: the last number this call handed out (== from if none)
    per_topic: dict[str, int] = field(default_factory=dict)  # of the newly announced papers
    update_from: int = 0  # exclusive, like announce_from, for the "update" counter
    update_to: int = 0


def classify_and_announce(
    engine: Engine,
    classifier: PaperClassifier,
    *,
    now: datetime | None = None,
    batch_size: int = 500,
) -> AnnounceStats:
    """Classify every paper marked `needs_classification`, then announce new lupus papers.

    Classification writes is_lupus, relevance_score, the classification JSON and the paper's
    topic rows, and clears the mark (unless the paper changed again meanwhile). Then, in one
    transaction, lupus papers without a number get consecutive announcement numbers in
    (first_seen_at, id) order, and notices detected after their paper was announced get update
    numbers. A paper is never numbered twice.
    """
    when = now or store.utcnow()
    stats = AnnounceStats()
    _classify_pending(engine, classifier, batch_size, stats)
    _number(engine, when, stats)
    return stats


def _classify_pending(
    engine: Engine, classifier: PaperClassifier, batch_size: int, stats: AnnounceStats
) -> None:
    P, T = store.papers, store.paper_topics
    last_id = 0
    while True:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(P.c.id, P.c.record, P.c.updated_at)
                .where(P.c.needs_classification.is_(True), P.c.id > last_id)
                .order_by(P.c.id)
                .limit(batch_size)
            ).all()
        if not rows:
            return
        last_id = rows[-1].id
        # Classify outside any transaction: it is pure CPU work and must not hold the write lock.
        results = [(row, classifier.classify(Paper.from_dict(row.record))) for row in rows]
        with engine.begin() as conn:
            for row, c in results:
                # Only if the paper is as we read it: a record merged in meanwhile keeps the
                # mark and is classified again by the next pass.
                done = conn.execute(
                    sa.update(P)
                    .where(P.c.id == row.id, P.c.updated_at == row.updated_at)
                    .values(
                        is_lupus=c.is_lupus,
                        relevance_score=c.relevance_score,
                        classification=dataclasses.asdict(c),
                        needs_classification=False,
                    )
                ).rowcount
                if not done:
                    continue
                conn.execute(sa.delete(T).where(T.c.paper_id == row.id))
                best: dict[str, float] = {}
                for t in c.topics:
                    best[t.label] = max(t.score, best.get(t.label, t.score))
                if best:
                    conn.execute(
                        sa.insert(T), [{"paper_id": row.id, "label": k, "score": v} for k, v in best.items()]
                    )
                stats.classified += 1
                if c.is_lupus:
                    stats.lupus += 1
                else:
                    stats.not_lupus += 1


def _number(engine: Engine, now: datetime, stats: AnnounceStats) -> None:
    P, T, U = store.papers, store.paper_topics, store.paper_updates
    with engine.begin() as conn:
        stats.announce_from = store.counter_value(conn, ANNOUNCE_COUNTER)
        stats.announce_to = stats.announce_from
        ids = (
            conn.execute(
                sa.select(P.c.id)
                .where(
                    P.c.is_lupus.is_(True),
                    P.c.announce_no.is_(None),
                    P.c.needs_classification.is_(False),
                )
                .order_by(P.c.first_seen_at, P.c.id)
            )
            .scalars()
            .all()
        )
        numbers = store.next_numbers(conn, ANNOUNCE_COUNTER, len(ids))
        if ids:
            # The counter lock is ours now: re-read the start, in case another step ran between.
            stats.announce_from = numbers.start - 1
            stats.announce_to = numbers.stop - 1
        for pid, no in zip(ids, numbers, strict=True):
            done = conn.execute(
                sa.update(P)
                .where(P.c.id == pid, P.c.announce_no.is_(None))
                .values(announce_no=no, announced_at=now)
            ).rowcount
            if done != 1:
                raise AnnounceConflict(f"paper {pid} was announced by a concurrent step")
        stats.announced = len(ids)
        topics: Counter[str] = Counter()
        for i in range(0, len(ids), 900):  # under SQLite's bound-parameter limit
            chunk = ids[i : i + 900]
            topics.update(conn.execute(sa.select(T.c.label).where(T.c.paper_id.in_(chunk))).scalars())
        stats.per_topic = dict(sorted(topics.items()))

        # Updates: a notice detected after its paper was announced. A notice that came with the
        # paper's first record was detected before the announcement and is just part of it.
        update_ids = (
            conn.execute(
                sa.select(U.c.id)
                .join(P, P.c.id == U.c.paper_id)
                .where(
                    U.c.update_no.is_(None),
                    P.c.announced_at.is_not(None),
                    P.c.announced_at < U.c.detected_at,
                )
                .order_by(U.c.detected_at, U.c.id)
            )
            .scalars()
            .all()
        )
        stats.update_from = stats.update_to = store.counter_value(conn, UPDATE_COUNTER)
        update_numbers = store.next_numbers(conn, UPDATE_COUNTER, len(update_ids))
        for uid, no in zip(update_ids, update_numbers, strict=True):
            conn.execute(sa.update(U).where(U.c.id == uid, U.c.update_no.is_(None)).values(update_no=no))
        if update_ids:
            stats.update_from, stats.update_to = update_numbers.start - 1, update_numbers.stop - 1
        stats.updates_flagged = len(update_ids)
