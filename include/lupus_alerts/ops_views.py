"""What the operator views in the Airflow UI show: one run's story, and the 30-day dashboard.

The plugin (`plugins/lupus_alerts_ops.py`) only routes requests here. This module reads the
project's store and turns it into plain dataclasses (`ingest_run_view`, `digest_run_view`,
`dashboard_view`), and renders them with the Jinja templates in `templates/ops/` (autoescaped:
paper titles and feed errors come from the internet) and the SVG charts of `svg_charts`.

Where each view's numbers come from:
- an ingest run: its rows in `ingest_runs` (`pipeline.run_records`: one per source, and the
  announce step's, whose announcement range names the run's new papers); a rerun's or
  retry's extra rows (an `attempt` key) are shown one line each.
- a digest run: the delivery ledger rows of the run's day (the daily period, and the weekly
  period for the subscribers whose weekday it is), classified by `delivery_outcome`; plus every
  `unconfirmed` row, whatever its period, since each needs an operator's decision.
- the dashboard: `paper_sources` (first seen per day and source), announced papers with their
  topics, the ledger (sent per `sent_at` day; failures per `updated_at` day) and `feed_state`.
Days are UTC days, as every timestamp in the store is naive UTC.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from lupus_alerts import store, svg_charts

if TYPE_CHECKING:
    import jinja2
    from sqlalchemy.engine import Engine

    from lupus_alerts.config import Settings

INGEST_DAG_ID = "lupus_ingest"
DIGEST_DAG_ID = "lupus_digest"
ANNOUNCE_SOURCE = "announce"  # as pipeline.ANNOUNCE_SOURCE (not imported: pipeline is glue)
DASHBOARD_DAYS = 30
MAX_SOURCES_CHARTED = 7  # more sources than this: the smallest are summed as "other sources"
TITLE_MAX = 300

# Ledger states (delivery.ledger) by what the operator reads them as.
SKIPPED_STATES = {"empty": "nothing new to send", "cancelled": None, "superseded": None}
DEFERRED_STATES = ("queued", "sending", "failed_transient")
OUTCOMES = ("sent", "skipped", "deferred", "bounced", "failed", "unconfirmed")
OUTCOME_COLOURS = {"sent": "#009E73", "failed": "#D55E00", "bounced": "#E69F00"}


def delivery_outcome(state: str, smtp_code: int | None) -> str:
    """What a ledger row's state means to an operator, one of OUTCOMES.

    sent; skipped (nothing new, the subscriber left, or superseded by a newer period); deferred
    (queued, or a temporary failure the next try resends); bounced (the mail server refused it
    for good: a 5xx reply); failed (refused before any server saw it: an invalid address, a
    message that could not be built); unconfirmed (the server may have accepted it: not resent
    until an operator checks, see docs/delivery.md).
    """
    if state == "sent":
        return "sent"
    if state in SKIPPED_STATES:
        return "skipped"
    if state in DEFERRED_STATES:
        return "deferred"
    if state == "failed_permanent":
        return "bounced" if smtp_code is not None and 500 <= int(smtp_code) < 600 else "failed"
    if state == "unconfirmed":
        return "unconfirmed"
    return "failed"  # an unknown state is shown, never hidden


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


# -- digest run ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LedgerRow:
    subscriber_id: int
    period: str
    state: str
    outcome: str
    attempts: int
    smtp_code: int | None
    reason: str | None
    paper_count: int
    updated_at: datetime | None


@dataclass(slots=True)
class DigestRunView:
    run_id: str
    day: date
    periods: list[str]
    counts: dict[str, int]
    papers_sent: int
    rows: list[LedgerRow]  # everything but `sent`, with its reason
    attention: list[LedgerRow]  # every `unconfirmed` row, of any period

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


def _ledger_row(r: Any) -> LedgerRow:
    outcome = delivery_outcome(r.state, r.smtp_code)
    reason = r.last_error or SKIPPED_STATES.get(r.state)
    if r.smtp_code is not None and reason and str(r.smtp_code) not in reason:
        reason = f"SMTP {r.smtp_code}: {reason}"
    return LedgerRow(
        subscriber_id=int(r.subscriber_id),
        period=str(r.period),
        state=str(r.state),
        outcome=outcome,
        attempts=int(r.attempts or 0),
        smtp_code=r.smtp_code,
        reason=reason,
        paper_count=int(r.paper_count or 0),
        updated_at=r.updated_at,
    )


def digest_run_view(engine: Engine, run_id: str, day: date, *, row_limit: int = 500) -> DigestRunView:
    """The ledger as digest run `run_id` (for `day`) left it: counts per outcome, the rows that
    were not sent with their reasons, and every row that needs an operator (`unconfirmed`)."""
    d, s = store.deliveries, store.subscribers
    year, week, _ = day.isocalendar()
    daily, weekly = day.isoformat(), f"{year}-W{week:02d}"
    of_day = sa.or_(
        d.c.period == daily,
        # A weekly period spans seven days but is planned (and sent) on the subscriber's weekday.
        sa.and_(d.c.period == weekly, sa.func.coalesce(s.c.weekday, 0) == day.weekday()),
    )
    cols = (
        d.c.subscriber_id,
        d.c.period,
        d.c.state,
        d.c.attempts,
        d.c.smtp_code,
        d.c.last_error,
        d.c.paper_count,
        d.c.updated_at,
    )
    with engine.connect() as conn:
        counts: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        papers_sent = 0
        for state, code, n, papers in conn.execute(
            sa.select(d.c.state, d.c.smtp_code, sa.func.count(), sa.func.sum(d.c.paper_count))
            .join(s, s.c.id == d.c.subscriber_id)
            .where(of_day)
            .group_by(d.c.state, d.c.smtp_code)
        ):
            outcome = delivery_outcome(state, code)
            counts[outcome] = counts.get(outcome, 0) + int(n)
            if state == "sent":
                papers_sent += int(papers or 0)
        rows = conn.execute(
            sa.select(*cols)
            .join(s, s.c.id == d.c.subscriber_id)
            .where(of_day, d.c.state != "sent")
            .order_by(d.c.state, d.c.subscriber_id)
            .limit(row_limit)
        ).all()
        attention = conn.execute(
            sa.select(*cols)
            .where(d.c.state == "unconfirmed")
            .order_by(d.c.period, d.c.subscriber_id)
            .limit(row_limit)
        ).all()
    ledger = sorted(
        (_ledger_row(r) for r in rows), key=lambda r: (OUTCOMES.index(r.outcome), r.subscriber_id)
    )
    return DigestRunView(
        run_id=run_id,
        day=day,
        periods=[daily, weekly],
        counts=counts,
        papers_sent=papers_sent,
        rows=ledger,
        attention=[_ledger_row(r) for r in attention],
    )


# -- dashboard ----------------------------------------------------------------------------------


def day_range(end_day: date, days: int) -> list[date]:
    """The `days` days ending with `end_day`, oldest first."""
    return [end_day - timedelta(days=days - 1 - i) for i in range(days)]


def _day(v: Any) -> date:
    # SQLite's date() gives 'YYYY-MM-DD', PostgreSQL's a date.
    return v if isinstance(v, date) and not isinstance(v, datetime) else date.fromisoformat(str(v)[:10])


def _bounds(days: Sequence[date]) -> tuple[datetime, datetime]:
    return datetime.combine(days[0], datetime.min.time()), datetime.combine(
        days[-1] + timedelta(days=1), datetime.min.time()
    )


def papers_per_day(engine: Engine, days: Sequence[date]) -> dict[str, dict[date, int]]:
    """Per source ("pubmed", "feed:<id>"), how many of its records were first seen each day."""
    ps = store.paper_sources
    lo, hi = _bounds(days)
    day = sa.func.date(ps.c.first_seen_at)
    out: dict[str, dict[date, int]] = defaultdict(dict)
    with engine.connect() as conn:
        for source, d, n in conn.execute(
            sa.select(ps.c.source, day, sa.func.count())
            .where(ps.c.first_seen_at >= lo, ps.c.first_seen_at < hi)
            .group_by(ps.c.source, day)
        ):
            out[str(source)][_day(d)] = int(n)
    return dict(out)


def new_papers_per_topic(engine: Engine, days: Sequence[date]) -> list[tuple[str, int]]:
    """New lupus papers announced in these days, per topic label (most first; "" for none)."""
    p, t = store.papers, store.paper_topics
    lo, hi = _bounds(days)
    in_days = sa.and_(p.c.announce_no.is_not(None), p.c.announced_at >= lo, p.c.announced_at < hi)
    with engine.connect() as conn:
        rows = [
            (str(label), int(n))
            for label, n in conn.execute(
                sa.select(t.c.label, sa.func.count())
                .join(p, p.c.id == t.c.paper_id)
                .where(in_days)
                .group_by(t.c.label)
            )
        ]
        untopiced = conn.execute(
            sa.select(sa.func.count())
            .select_from(p)
            .where(in_days, ~sa.exists().where(t.c.paper_id == p.c.id))
        ).scalar_one()
    if untopiced:
        rows.append(("", int(untopiced)))
    return sorted(rows, key=lambda r: (-r[1], r[0] == "", r[0]))


def digests_per_day(engine: Engine, days: Sequence[date]) -> dict[str, dict[date, int]]:
    """Digests sent (by the day they went out), failed and bounced (by the day of their last
    attempt) per day. Failed counts temporary failures still waiting for a retry too."""
    d = store.deliveries
    lo, hi = _bounds(days)
    out: dict[str, dict[date, int]] = {"sent": {}, "failed": {}, "bounced": {}}
    sent_day = sa.func.date(d.c.sent_at)
    upd_day = sa.func.date(d.c.updated_at)
    with engine.connect() as conn:
        for day, n in conn.execute(
            sa.select(sent_day, sa.func.count())
            .where(d.c.state == "sent", d.c.sent_at >= lo, d.c.sent_at < hi)
            .group_by(sent_day)
        ):
            out["sent"][_day(day)] = int(n)
        for state, code, day, n in conn.execute(
            sa.select(d.c.state, d.c.smtp_code, upd_day, sa.func.count())
            .where(
                d.c.state.in_(("failed_permanent", "failed_transient", "unconfirmed")),
                d.c.updated_at >= lo,
                d.c.updated_at < hi,
            )
            .group_by(d.c.state, d.c.smtp_code, upd_day)
        ):
            key = "bounced" if delivery_outcome(state, code) == "bounced" else "failed"
            out[key][_day(day)] = out[key].get(_day(day), 0) + int(n)
    return out


@dataclass(frozen=True, slots=True)
class FeedFreshness:
    feed_id: str
    name: str
    status: str  # "ok", "failing", "never polled" (pipeline.feed_health)
    last_item_at: datetime | None  # the newest record this feed brought into the store
    last_success_at: datetime | None
    last_polled_at: datetime | None
    http_status: int | None
    error: str | None
    hours_since_success: float | None


def feed_freshness(engine: Engine, settings: Settings, now: datetime) -> list[FeedFreshness]:
    """Every configured feed's freshness, failing feeds first (most failures first), then the
    never-polled ones, then the rest from the stalest last success."""
    from lupus_alerts import pipeline

    health = pipeline.feed_health(engine, settings)
    fs, ps = store.feed_state, store.paper_sources
    with engine.connect() as conn:
        state = {r.feed_id: r for r in conn.execute(sa.select(fs))}
        last_item = {
            str(src)[5:]: ts
            for src, ts in conn.execute(
                sa.select(ps.c.source, sa.func.max(ps.c.first_seen_at))
                .where(ps.c.source.like("feed:%"))
                .group_by(ps.c.source)
            )
        }
    out = []
    for h in health:
        s = state.get(h["feed_id"])
        success = s.last_success_at if s is not None else None
        out.append(
            FeedFreshness(
                feed_id=h["feed_id"],
                name=h["name"],
                status=h["status"],
                last_item_at=_as_datetime(last_item.get(h["feed_id"])),
                last_success_at=success,
                last_polled_at=s.last_polled_at if s is not None else None,
                http_status=h.get("http_status"),
                error=h.get("last_error") or None,
                hours_since_success=max(0.0, (now - success).total_seconds() / 3600) if success else None,
            )
        )
    failures = {h["feed_id"]: int(h.get("failed_runs_in_a_row") or 0) for h in health}
    rank = {"failing": 0, "never polled": 1}
    out.sort(
        key=lambda f: (
            rank.get(f.status, 2),
            -failures.get(f.feed_id, 0),
            -(f.hours_since_success if f.hours_since_success is not None else float("inf")),
            f.name.lower(),
        )
    )
    return out


def _as_datetime(v: Any) -> datetime | None:
    if v is None or isinstance(v, datetime):
        return v
    return datetime.fromisoformat(str(v))  # SQLite hands back max() of a timestamp as text


@dataclass(slots=True)
class DashboardView:
    days: list[date]
    papers_per_source: dict[str, dict[date, int]]
    topics: list[tuple[str, int]]
    digests: dict[str, dict[date, int]]
    feeds: list[FeedFreshness]
    charts: dict[str, str]  # name -> inline SVG

    def to_dict(self) -> dict[str, Any]:
        d = _jsonable(asdict(self))
        d.pop("charts")
        return d


def dashboard_view(
    engine: Engine,
    settings: Settings,
    *,
    now: datetime,
    days: int = DASHBOARD_DAYS,
    topic_names: Mapping[str, str] | None = None,
) -> DashboardView:
    """The last `days` UTC days up to `now` (naive UTC), with the charts drawn."""
    span = day_range(now.date(), days)
    per_source = papers_per_day(engine, span)
    topics = new_papers_per_topic(engine, span)
    digests = digests_per_day(engine, span)
    feeds = feed_freshness(engine, settings, now)
    names = {f.id: f.name for f in settings.feeds}
    charts = {
        "papers": papers_chart(span, per_source, names),
        "topics": topics_chart(topics, topic_names or {}, days),
        "digests": digests_chart(span, digests),
        "feeds": freshness_chart(feeds),
    }
    return DashboardView(span, per_source, topics, digests, feeds, charts)


def _labels(days: Sequence[date]) -> list[str]:
    return [d.strftime("%d %b") for d in days]


def source_name(source: str, feed_names: Mapping[str, str]) -> str:
    if source == "pubmed":
        return "PubMed"
    if source.startswith("feed:"):
        return feed_names.get(source[5:], source[5:])
    return source


def papers_chart(
    days: Sequence[date], per_source: Mapping[str, Mapping[date, int]], feed_names: Mapping[str, str]
) -> str:
    """Stacked bars: records first seen per day, one colour per source (the largest sources;
    the rest summed as "other sources")."""
    totals = sorted(per_source, key=lambda s: (s != "pubmed", -sum(per_source[s].values()), s))
    shown, rest = totals[:MAX_SOURCES_CHARTED], totals[MAX_SOURCES_CHARTED:]
    series = [
        svg_charts.Series(source_name(s, feed_names), [per_source[s].get(d, 0) for d in days]) for s in shown
    ]
    if rest:
        series.append(
            svg_charts.Series(
                f"other sources ({len(rest)})",
                [sum(per_source[s].get(d, 0) for s in rest) for d in days],
                svg_charts.OTHER_COLOUR,
            )
        )
    return svg_charts.stacked_bars(
        _labels(days), series, title=f"Papers first seen per day, by source (last {len(days)} days)"
    )


def topics_chart(topics: Sequence[tuple[str, int]], topic_names: Mapping[str, str], days: int) -> str:
    return svg_charts.horizontal_bars(
        [(topic_names.get(label, label) if label else "no topic", n) for label, n in topics],
        title=f"New lupus papers per topic (last {days} days)",
        empty_message="No new lupus papers announced in this period.",
    )


def digests_chart(days: Sequence[date], digests: Mapping[str, Mapping[date, int]]) -> str:
    series = [
        svg_charts.Series(k, [digests.get(k, {}).get(d, 0) for d in days], OUTCOME_COLOURS[k])
        for k in ("sent", "failed", "bounced")
    ]
    return svg_charts.stacked_bars(
        _labels(days),
        series,
        title=f"Digests sent, failed and bounced per day (last {len(days)} days)",
        empty_message="No digests sent or failed in this period.",
    )


def _age(hours: float | None) -> str:
    if hours is None:
        return "never"
    if hours < 1:
        return f"{int(hours * 60)} min ago"
    if hours < 48:
        return f"{hours:.0f} h ago"
    return f"{hours / 24:.0f} days ago"


def freshness_chart(feeds: Sequence[FeedFreshness]) -> str:
    """Hours since each feed's last successful poll (red: failing now; grey: never succeeded)."""
    longest = max((f.hours_since_success or 0.0 for f in feeds), default=0.0)
    rows, colours, labels = [], [], []
    for f in feeds:
        # A feed that never succeeded gets a full-length bar: it is as stale as can be shown.
        hours = f.hours_since_success if f.hours_since_success is not None else max(longest, 1.0)
        rows.append((f.name, round(hours, 2)))
        colours.append(
            "#D55E00" if f.status == "failing" else ("#999999" if f.last_success_at is None else "#009E73")
        )
        http = f"HTTP {f.http_status}" if f.http_status else "no response"
        labels.append(f"{_age(f.hours_since_success)} · {http}")
    return svg_charts.horizontal_bars(
        rows,
        title="Feed freshness: time since the last successful poll",
        colours=colours,
        value_labels=labels,
        empty_message="No feeds configured.",
    )


# -- rendering ----------------------------------------------------------------------------------


def fmt_ts(value: datetime | None) -> str:
    """A stored (naive UTC) timestamp for people: minutes, and the zone said."""
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "never"


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("lupus_alerts", "templates/ops"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["ts"] = fmt_ts
    env.filters["num"] = lambda v: "–" if v is None else str(v)
    env.globals["OUTCOMES"] = OUTCOMES
    return env


def _svg(markup: str) -> Any:
    import markupsafe

    # Built by svg_charts, which escapes every piece of text it puts in.
    return markupsafe.Markup(markup)


def render(template: str, base: str = "", **context: Any) -> str:
    """Render one of templates/ops/*.html.j2; `base` is the plugin's URL prefix for links."""
    return _env().get_template(template).render(base=base, **context)


def render_ingest_run(view: IngestRunView, *, dag_id: str, base: str = "") -> str:
    return render("ingest_run.html.j2", base, view=view, dag_id=dag_id)


def render_digest_run(view: DigestRunView, *, dag_id: str, base: str = "") -> str:
    return render("digest_run.html.j2", base, view=view, dag_id=dag_id)


def render_dashboard(
    view: DashboardView, *, topic_names: Mapping[str, str] | None = None, base: str = ""
) -> str:
    charts = {k: _svg(v) for k, v in view.charts.items()}
    return render("dashboard.html.j2", base, view=view, charts=charts, topic_names=topic_names or {})


def render_message(title: str, message: str, *, base: str = "") -> str:
    return render("message.html.j2", base, title=title, message=message)


@lru_cache(maxsize=4)
def topic_names(taxonomy_path: str | None) -> dict[str, str]:
    """Topic label -> display name from the taxonomy ({} if it cannot be read)."""
    from pathlib import Path

    from lupus_alerts import classify

    try:
        tax = classify.load_taxonomy(Path(taxonomy_path) if taxonomy_path else None)
    except (OSError, ValueError):
        return {}
    return {label.id: label.name for label in tax.labels.values()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {(k.isoformat() if isinstance(k, date) else str(k)): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def run_kind(dag_id: str) -> str | None:
    """ "ingest", "digest", or None for a DAG that is not this project's."""
    return {INGEST_DAG_ID: "ingest", DIGEST_DAG_ID: "digest"}.get(dag_id)


def iter_outcomes(counts: Mapping[str, int]) -> Iterable[tuple[str, int]]:
    return ((o, int(counts.get(o, 0))) for o in OUTCOMES)
