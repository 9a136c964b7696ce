"""Which papers and updates a subscriber's digest holds (pure, apart from `load_window`).

`load_window` reads everything announced in (announce_from, announce_to] and updated in
(update_from, update_to] in a few queries; `select` picks one subscriber's papers from it: those
carrying at least one of the subscriber's topics, each under its best (highest-scoring) topic,
ordered by score then date, capped at `max_papers` (the rest is the overflow), plus the updates
about papers the subscriber was already sent. Rules and reasons: docs/digest.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lupus_alerts import store
from lupus_alerts.digest.views import PaperView
from lupus_alerts.subscribers import Subscriber, topic_labels

# Untagged lupus papers reach subscribers of every topic under this label (never dropped); its
# heading is presentation.GENERAL_NAME.
GENERAL_LABEL = ""


@dataclass(slots=True)
class Candidate:
    """An announced lupus paper in the window, with its topic scores and display data."""

    paper_id: int
    announce_no: int
    record: dict[str, Any]
    classification: dict[str, Any] | None
    is_retracted: bool
    first_date: date | None
    topics: dict[str, float]
    title: str


@dataclass(slots=True)
class UpdateCandidate:
    """A numbered update (notice) about an announced paper."""

    update_id: int
    update_no: int
    kind: str
    notice: dict[str, Any]
    paper: Candidate


@dataclass(slots=True)
class Window:
    """Everything announced in (announce_from, announce_to] and updated in (update_from, update_to].

    Loaded once and shared by every subscriber with the same cursors (most of them), so a run
    over thousands of subscribers costs a few queries, not thousands.
    """

    announce_from: int
    announce_to: int
    update_from: int
    update_to: int
    papers: list[Candidate]
    updates: list[UpdateCandidate]
    _views: dict[tuple[int, str, bool], PaperView] = field(default_factory=dict)


def _to_date(v: Any) -> date | None:
    if isinstance(v, datetime):
        return v.date()
    if isinstance(v, date):
        return v
    if isinstance(v, str) and v:
        try:
            return date.fromisoformat(v[:10])
        except ValueError:
            return None
    return None


def _candidate(row: Any, topics: dict[str, float]) -> Candidate:
    record = row.record if isinstance(row.record, dict) else {}
    dates = [d for d in (_to_date(record.get("epub_date")), _to_date(record.get("pub_date"))) if d]
    first = min(dates) if dates else _to_date(row.pub_date)
    return Candidate(
        paper_id=int(row.id),
        announce_no=int(row.announce_no),
        record=record,
        classification=row.classification if isinstance(row.classification, dict) else None,
        is_retracted=bool(row.is_retracted or record.get("is_retracted")),
        first_date=first,
        topics=topics,
        title=row.title,
    )


def _paper_topics(conn: Connection, ids: list[int]) -> dict[int, dict[str, float]]:
    pt = store.paper_topics
    out: dict[int, dict[str, float]] = {i: {} for i in ids}
    for i in range(0, len(ids), 500):
        q = sa.select(pt.c.paper_id, pt.c.label, pt.c.score).where(pt.c.paper_id.in_(ids[i : i + 500]))
        for pid, label, score in conn.execute(q):
            out[int(pid)][label] = float(score)
    return out


_PAPER_COLS = (
    store.papers.c.id,
    store.papers.c.announce_no,
    store.papers.c.title,
    store.papers.c.record,
    store.papers.c.classification,
    store.papers.c.is_retracted,
    store.papers.c.pub_date,
)


def load_window(
    conn: Connection, *, announce_from: int, announce_to: int, update_from: int, update_to: int
) -> Window:
    """Read the papers and updates of one window from the store (four small queries)."""
    p = store.papers
    rows = conn.execute(
        sa.select(*_PAPER_COLS)
        .where(p.c.announce_no > announce_from, p.c.announce_no <= announce_to, p.c.is_lupus.is_(True))
        .order_by(p.c.announce_no)
    ).all()
    u = store.paper_updates
    urows = conn.execute(
        sa.select(u.c.id.label("update_id"), u.c.update_no, u.c.kind, u.c.notice, *_PAPER_COLS)
        .join(p, p.c.id == u.c.paper_id)
        .where(
            u.c.update_no > update_from,
            u.c.update_no <= update_to,
            p.c.announce_no.is_not(None),
            p.c.is_lupus.is_(True),
        )
        .order_by(u.c.update_no)
    ).all()
    topics = _paper_topics(conn, sorted({int(r.id) for r in rows} | {int(r.id) for r in urows}))
    papers = [_candidate(r, topics[int(r.id)]) for r in rows]
    updates = [
        UpdateCandidate(
            update_id=int(r.update_id),
            update_no=int(r.update_no),
            kind=r.kind,
            notice=r.notice if isinstance(r.notice, dict) else {},
            paper=_candidate(r, topics[int(r.id)]),
        )
        for r in urows
    ]
    return Window(announce_from, announce_to, update_from, update_to, papers, updates)


def _wants(sub: Subscriber, c: Candidate) -> list[str]:
    """The subscriber's topics this paper carries (all its topics for an all-topics subscriber)."""
    if sub.topics is None:
        return list(c.topics) or [GENERAL_LABEL]
    return [t for t in c.topics if t in sub.topics]


def _best_label(labels: list[str], scores: dict[str, float], order: dict[str, int]) -> str:
    # Highest score wins; ties go to the label listed first in the taxonomy, for stability.
    return min(labels, key=lambda t: (-scores.get(t, 0.0), order.get(t, len(order)), t))


def _rank_key(c: Candidate, score: float) -> tuple[float, int, int]:
    return (-score, -(c.first_date.toordinal() if c.first_date else 0), c.announce_no)


@dataclass(slots=True)
class Selection:
    """What one subscriber gets from a window, before rendering."""

    shown: list[tuple[str, list[Candidate]]]  # (best label, papers) in display order
    overflow: list[tuple[str, Candidate]]
    updates: list[UpdateCandidate]


def select(window: Window, sub: Subscriber, *, limit: int | None = None) -> Selection:
    """Pick, group, order and cap one subscriber's papers and updates from a window (pure).

    At most `sub.max_papers` (or `limit`, if smaller) are shown; the rest become the overflow.
    """
    order = {k: i for i, k in enumerate(topic_labels())}
    picked: list[tuple[tuple[float, int, int], str, Candidate]] = []
    for c in window.papers:
        if c.announce_no <= sub.cursor:  # a window may start before this subscriber's cursor
            continue
        labels = _wants(sub, c)
        if not labels:
            continue
        best = _best_label(labels, c.topics, order)
        picked.append((_rank_key(c, c.topics.get(best, 0.0)), best, c))
    picked.sort(key=lambda x: x[0])
    cap = sub.max_papers if limit is None else max(0, min(limit, sub.max_papers))
    keep, spill = picked[:cap], picked[cap:]
    groups: dict[str, list[Candidate]] = {}
    for _key, best, c in keep:
        groups.setdefault(best, []).append(c)
    # Bigger topics first, ties in taxonomy order; the untagged group always last.
    shown = sorted(
        groups.items(),
        key=lambda kv: (kv[0] == GENERAL_LABEL, -len(kv[1]), order.get(kv[0], len(order)), kv[0]),
    )
    updates = [
        u
        for u in window.updates
        if u.update_no > sub.update_cursor and u.paper.announce_no <= sub.cursor and _wants(sub, u.paper)
    ]
    return Selection(shown=shown, overflow=[(best, c) for _k, best, c in spill], updates=updates)
