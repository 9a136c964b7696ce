"""The 30-day dashboard: papers per day and source, new papers per topic, digests, feed freshness."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from lupus_alerts import store, svg_charts
from lupus_alerts.ops_views.common import (
    DASHBOARD_DAYS,
    MAX_SOURCES_CHARTED,
    OUTCOME_COLOURS,
    _jsonable,
    delivery_outcome,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from lupus_alerts.config import Settings


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
