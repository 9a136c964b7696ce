"""One ingest run's story: per source fetched, kept, new, known, failed; its new papers per topic."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from lupus_alerts import store
from lupus_alerts.ops_views.common import (
    ANNOUNCE_SOURCE,
    TITLE_MAX,
    _jsonable,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


# -- ingest run ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SourceOutcome:
    """What one source (PubMed or a journal feed) did in a run: counts, or why it failed."""

    source: str
    name: str
    attempt: int | None
    fetched: int | None
    kept: int | None
    new: int | None
    known: int | None
    failed: bool
    error: str | None
    http_status: int | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class PaperLink:
    announce_no: int
    title: str
    journal: str | None
    url: str | None  # http(s) only, or None


@dataclass(frozen=True, slots=True)
class TopicPapers:
    label: str
    name: str
    papers: list[PaperLink]


@dataclass(slots=True)
class IngestRunView:
    run_id: str
    found: bool
    window_start: datetime | None = None
    window_end: datetime | None = None
    sources: list[SourceOutcome] = field(default_factory=list)
    new_papers: int | None = None  # None: the announce step has not recorded (yet)
    announce_from: int | None = None
    announce_to: int | None = None
    announce_error: str | None = None
    topics: list[TopicPapers] = field(default_factory=list)
    papers_shown: int = 0
    papers_limit: int = 0

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def source_outcome(row: Mapping[str, Any], names: Mapping[str, str] | None = None) -> SourceOutcome:
    """One `ingest_runs` row (as `pipeline.run_records` returns it) as an operator reads it.

    PubMed reports fetched/parsed/new/updated/unchanged; a feed items/kept/new/updated and,
    for a 304, `not_modified`. "Known" is what was kept but already in the store.
    """
    source = str(row["source"])
    stats = row.get("stats") or {}
    if not isinstance(stats, Mapping):
        stats = {}
    error = row.get("error")
    feed_id = source.split(":", 1)[1] if source.startswith("feed:") else None
    name = (names or {}).get(feed_id or source) or (feed_id or ("PubMed" if source == "pubmed" else source))
    fetched = _int(stats.get("fetched", stats.get("items")))
    kept = _int(stats.get("parsed", stats.get("kept")))
    new = _int(stats.get("new"))
    known: int | None = None
    if "unchanged" in stats:  # PubMed: every stored record is new, updated or unchanged
        known = (_int(stats.get("updated")) or 0) + (_int(stats.get("unchanged")) or 0)
    elif kept is not None and new is not None:  # a feed: what it kept and was not new
        known = max(kept - new, 0)
    note = None
    if stats.get("not_modified"):
        note = "not modified since the last poll"
    unstored = _int(stats.get("unstored"))
    if unstored:
        note = f"{unstored} record(s) not stored"
    return SourceOutcome(
        source=source,
        name=str(name),
        attempt=_int(row.get("attempt")),
        fetched=fetched,
        kept=kept,
        new=new,
        known=known,
        failed=bool(error),
        error=str(error) if error else None,
        http_status=_int(stats.get("http_status")),
        note=note,
    )


def ingest_run_view(
    engine: Engine,
    run_id: str,
    *,
    feed_names: Mapping[str, str] | None = None,
    topic_names: Mapping[str, str] | None = None,
    paper_limit: int = 300,
) -> IngestRunView:
    """What ingest run `run_id` fetched per source and which new lupus papers it announced."""
    from lupus_alerts import pipeline

    rows = pipeline.run_records(engine, run_id)
    view = IngestRunView(run_id=run_id, found=bool(rows), papers_limit=paper_limit)
    if not rows:
        return view
    starts = [r["window_start"] for r in rows if r.get("window_start")]
    ends = [r["window_end"] for r in rows if r.get("window_end")]
    view.window_start = min(starts) if starts else None
    view.window_end = max(ends) if ends else None
    announce = [r for r in rows if r["source"] == ANNOUNCE_SOURCE]
    others = [r for r in rows if r["source"] != ANNOUNCE_SOURCE]
    # PubMed first, then the feeds by name; attempts in order.
    view.sources = sorted(
        (source_outcome(r, feed_names) for r in others),
        key=lambda s: (s.source != "pubmed", s.name.lower(), s.source, s.attempt or 0),
    )
    ranges = []
    for r in announce:
        st = r.get("stats") or {}
        lo, hi = _int(st.get("announce_from")), _int(st.get("announce_to"))
        if lo is not None and hi is not None:
            ranges.append((lo, hi))
        if r.get("error"):
            view.announce_error = str(r["error"])
    if ranges:
        # Each attempt numbers what the previous ones left: together they cover (min, max].
        view.announce_from = min(lo for lo, _ in ranges)
        view.announce_to = max(hi for _, hi in ranges)
        view.new_papers = max(0, view.announce_to - view.announce_from)
        view.topics, view.papers_shown = papers_by_topic(
            engine, view.announce_from, view.announce_to, topic_names=topic_names, limit=paper_limit
        )
    return view


def papers_by_topic(
    engine: Engine,
    announce_from: int,
    announce_to: int,
    *,
    topic_names: Mapping[str, str] | None = None,
    limit: int = 300,
) -> tuple[list[TopicPapers], int]:
    """The papers numbered in (announce_from, announce_to], grouped by topic (a paper in two
    topics is under both; one in none under "no topic"), at most `limit` papers. Returns the
    groups, largest first, and how many papers they hold."""
    from lupus_alerts.digest import paper_url

    p, t = store.papers, store.paper_topics
    with engine.connect() as conn:
        papers = conn.execute(
            sa.select(p.c.id, p.c.announce_no, p.c.title, p.c.journal, p.c.doi, p.c.pmid, p.c.record)
            .where(p.c.announce_no > announce_from, p.c.announce_no <= announce_to)
            .order_by(p.c.announce_no)
            .limit(limit)
        ).all()
        ids = [r.id for r in papers]
        labels: dict[int, list[str]] = defaultdict(list)
        for i in range(0, len(ids), 500):
            for pid, label in conn.execute(
                sa.select(t.c.paper_id, t.c.label).where(t.c.paper_id.in_(ids[i : i + 500]))
            ):
                labels[int(pid)].append(str(label))
    groups: dict[str, list[PaperLink]] = defaultdict(list)
    for r in papers:
        record = r.record if isinstance(r.record, Mapping) else {}
        title = str(r.title or "")
        link = PaperLink(
            announce_no=int(r.announce_no),
            title=title if len(title) <= TITLE_MAX else title[: TITLE_MAX - 1] + "…",
            journal=r.journal,
            url=paper_url(r.doi, r.pmid, record.get("url")),
        )
        for label in sorted(labels.get(int(r.id)) or [""]):
            groups[label].append(link)
    names = topic_names or {}
    out = [
        TopicPapers(label=label, name=names.get(label, label) if label else "no topic", papers=ps)
        for label, ps in groups.items()
    ]
    out.sort(key=lambda g: (g.label == "", -len(g.papers), g.name.lower()))
    return out, len(papers)
