"""`/papers`: the lupus papers announced in a range, a page at a time (public, cacheable)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lupus_alerts import digest, subscribers
from lupus_alerts import store as db

if TYPE_CHECKING:
    pass


# A page of the paper list; the next page starts after its last paper (keyset paging, so a page
# costs one indexed range scan however far into the range it is).
PAPERS_PAGE_SIZE = 500


# announce_no is a BIGINT; longer numbers are refused before they reach the database.
_ANNOUNCE_NO = re.compile(r"[0-9]{1,18}")


class _BadRange(Exception):
    def __init__(self, *, bad_topic: bool = False) -> None:
        self.bad_topic = bad_topic


@dataclass(frozen=True, slots=True)
class ListedPaper:
    """One paper as the web list shows it."""

    announce_no: int
    title: str
    url: str | None
    details: str  # "journal · date · authors"
    badges: tuple[str, ...]
    retracted: bool


@dataclass(frozen=True, slots=True)
class PaperPage:
    """A page of the paper list; `next_from` is where the next page starts (None: last page)."""

    papers: tuple[ListedPaper, ...]
    next_from: int | None


def parse_range(from_: str | None, to: str | None) -> tuple[int, int]:
    """The (from, to] bounds of a paper list link; raises ValueError unless 0 <= from <= to.

    Only plain digits count: `int()` would also accept "+1", " 1" and "1_000".
    """
    if from_ is None or to is None or not _ANNOUNCE_NO.fullmatch(from_) or not _ANNOUNCE_NO.fullmatch(to):
        raise ValueError("from and to must be whole numbers")
    lo, hi = int(from_), int(to)
    if lo > hi:
        raise ValueError("from must not be above to")
    return lo, hi


def _first_date(record: Mapping[str, Any], pub_date: Any) -> date | None:
    # The earliest known date, as the digest shows it (models.Paper.first_date).
    found: list[date] = []
    for v in (record.get("epub_date"), record.get("pub_date"), pub_date):
        if isinstance(v, date):
            found.append(v)
        elif isinstance(v, str) and v:
            try:
                found.append(date.fromisoformat(v[:10]))
            except ValueError:
                continue
    return min(found) if found else None


def list_papers(
    db_or_conn: Engine | Connection,
    announce_from: int,
    announce_to: int,
    *,
    topics: Sequence[str] = (),
    page_size: int = PAPERS_PAGE_SIZE,
) -> PaperPage:
    """The lupus papers announced in (announce_from, announce_to], by announce_no, one page.

    With `topics`, only papers labelled with at least one of them (a subscriber's choice, as the
    digest's overflow link passes it). Reads the store; writes nothing.
    """
    p, pt = db.papers, db.paper_topics
    q = (
        sa.select(p.c.id, p.c.announce_no, p.c.title, p.c.journal, p.c.pub_date, p.c.record, p.c.is_retracted)
        .where(p.c.announce_no > announce_from, p.c.announce_no <= announce_to, p.c.is_lupus.is_(True))
        .order_by(p.c.announce_no)
        .limit(page_size + 1)
    )
    if topics:
        q = q.where(sa.exists().where(pt.c.paper_id == p.c.id, pt.c.label.in_(list(topics))))
    with _connection(db_or_conn) as conn:
        rows = conn.execute(q).all()
        more = len(rows) > page_size
        rows = rows[:page_size]
        scores: dict[int, dict[str, float]] = {int(r.id): {} for r in rows}
        if rows:
            tq = sa.select(pt.c.paper_id, pt.c.label, pt.c.score).where(pt.c.paper_id.in_(list(scores)))
            for pid, label, score in conn.execute(tq):
                scores[int(pid)][label] = float(score)
    order = {k: i for i, k in enumerate(subscribers.topic_labels())}
    listed = []
    for r in rows:
        rec = r.record if isinstance(r.record, dict) else {}
        topics = scores[int(r.id)]
        ranked = sorted(topics, key=lambda t: (-topics[t], order.get(t, len(order)), t))
        journal = rec.get("journal") or rec.get("journal_iso") or r.journal or ""
        details = [
            str(journal),
            digest.format_date(_first_date(rec, r.pub_date)) or str(rec.get("pub_date_text") or ""),
            digest.authors_text(rec.get("authors") or ()),
        ]
        listed.append(
            ListedPaper(
                announce_no=int(r.announce_no),
                title=str(rec.get("title") or r.title or "(untitled)"),
                url=digest.paper_url(rec.get("doi"), rec.get("pmid"), rec.get("url")),
                details=" · ".join(d for d in details if d),
                badges=tuple(subscribers.topic_short_name(t) for t in ranked),
                retracted=bool(r.is_retracted or rec.get("is_retracted")),
            )
        )
    return PaperPage(tuple(listed), listed[-1].announce_no if more else None)


@contextmanager
def _connection(db_or_conn: Engine | Connection) -> Iterator[Connection]:
    if isinstance(db_or_conn, Connection):
        yield db_or_conn
    else:
        with db_or_conn.connect() as conn:
            yield conn
