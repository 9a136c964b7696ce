"""A subscriber's digest: which papers it holds (selection) and how it reads (rendering).

Selection (`build_digest`): the lupus papers announced in (subscriber.cursor, announce_to] that
carry at least one of the subscriber's topics, each shown once under its best (highest-scoring)
chosen topic with its other tags beside it, ordered by score then date; at most
`subscriber.max_papers` of them, the rest summarised per topic with a link to the full list; and
an "Updates" section for retractions, errata and concerns numbered in (update_cursor, update_to]
about papers the subscriber was already sent. Rules and reasons: docs/digest.md.

Rendering (`render_html`, `render_text`, `render`) is pure: plain view-model dataclasses in,
strings out, so it can be tested and benchmarked without a database. The HTML template's static
stylesheet is inlined into the template source once, when the template is first loaded (with
css-inline), so no message pays for CSS inlining.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lupus_alerts import store
from lupus_alerts.subscribers import Subscriber, topic_labels, topic_name, topic_short_name
from lupus_alerts.text import split_sentences

if TYPE_CHECKING:
    import jinja2

    from lupus_alerts.config import Settings

# Caps that keep a 50-paper digest under Gmail's 102 KB clipping limit whatever the records
# hold (tests/unit/test_digest_render.py renders a worst case).
SNIPPET_MAX_CHARS = 300
SNIPPET_MAX_SENTENCES = 3
TITLE_MAX_CHARS = 200
JOURNAL_MAX_CHARS = 70
AUTHOR_MAX_CHARS = 30
MAX_BADGES = 3
# The listed topic shows two pieces of evidence, the other badges one each.
EVIDENCE_PRIMARY = 2
EVIDENCE_OTHER = 1
EVIDENCE_MAX_CHARS = 80
EVIDENCE_LINE_MAX_CHARS = 160
# Gmail clips a message body over 102 KB; a digest that would exceed this (a very large
# max_papers) is re-rendered compact, then with fewer papers shown (the rest summarised).
HTML_BUDGET_BYTES = 100 * 1024
SUBJECT_TOPICS = 3
# Untagged lupus papers reach subscribers of every topic under this heading (never dropped).
GENERAL_LABEL = ""
GENERAL_NAME = "Other lupus papers"

UPDATE_KIND_TEXT = {
    "retraction_in": "Retracted",
    "expression_of_concern_in": "Expression of concern",
    "erratum_in": "Correction published",
    "update_in": "Updated version published",
    "retraction_of": "Retraction notice",
    "erratum_for": "Correction notice",
    "expression_of_concern_for": "Expression of concern notice",
    "update_of": "Update notice",
}


# --- view models (what the templates see) ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class BadgeView:
    """One topic tag on a paper; `primary` is the topic the paper is listed under."""

    label: str
    name: str
    evidence: tuple[str, ...] = ()
    primary: bool = False


@dataclass(frozen=True, slots=True)
class PaperView:
    """One paper as a digest shows it."""

    paper_id: int
    title: str
    url: str | None
    journal: str
    date_text: str
    authors_text: str
    snippet: str
    badges: tuple[BadgeView, ...] = ()
    retracted: bool = False

    @property
    def evidence_text(self) -> str:
        """The badges' evidence on one line ("Nephrology: a; b · Dermatology: c")."""
        text = " · ".join(f"{b.name}: {'; '.join(b.evidence)}" for b in self.badges if b.evidence)
        return truncate_words(text, EVIDENCE_LINE_MAX_CHARS)


@dataclass(frozen=True, slots=True)
class SectionView:
    """The papers listed under one topic."""

    label: str
    name: str
    papers: tuple[PaperView, ...]


@dataclass(frozen=True, slots=True)
class UpdateView:
    """A retraction, correction or concern about a paper the subscriber already received."""

    paper_id: int
    kind: str
    kind_text: str
    title: str
    url: str | None
    notice_text: str
    notice_url: str | None
    serious: bool  # retraction or expression of concern: shown in red


@dataclass(frozen=True, slots=True)
class OverflowView:
    """Papers beyond the subscriber's maximum: how many, per topic, and where to see them."""

    total: int
    counts: tuple[tuple[str, int], ...]
    url: str

    @property
    def counts_text(self) -> str:
        return ", ".join(f"{name} {n}" for name, n in self.counts)


@dataclass(frozen=True, slots=True)
class DigestView:
    """Everything the templates render; built from a selection, or by hand for tests/benchmarks."""

    subject: str
    preheader: str
    period_text: str
    recipient_name: str | None
    recipient_email: str
    paper_count: int
    update_count: int
    sections: tuple[SectionView, ...]
    updates: tuple[UpdateView, ...]
    overflow: OverflowView | None
    preferences_url: str
    unsubscribe_url: str
    reason: str
    home_url: str
    topic_counts: tuple[tuple[str, int], ...] = ()

    @property
    def counts_text(self) -> str:
        return ", ".join(f"{name} {n}" for name, n in self.topic_counts)


@dataclass(frozen=True, slots=True)
class Digest:
    """A built digest for one subscriber and period: content plus the numbers the ledger records."""

    subscriber: Subscriber
    period: str
    subject: str
    html: str
    text: str
    paper_count: int
    overflow: int
    update_count: int
    topic_counts: dict[str, int]
    paper_ids: tuple[int, ...]
    announce_from: int
    announce_to: int
    update_from: int
    update_to: int
    unsubscribe_url: str
    preferences_url: str
    update_ids: tuple[int, ...] = ()

    @property
    def is_empty(self) -> bool:
        """Nothing new at all: no papers (shown or summarised) and no updates."""
        return self.paper_count == 0 and self.overflow == 0 and self.update_count == 0


# --- pure helpers: links, names, snippets, subject --------------------------------------------


def paper_url(doi: str | None, pmid: str | None, url: str | None) -> str | None:
    """The title link: doi.org for a DOI, else PubMed for a PMID, else the journal's link."""
    if doi:
        return "https://doi.org/" + quote(doi, safe="/:;()._-")
    if pmid and str(pmid).isdigit():
        return f"https://pubmed.ncbi.nlm.nih.gov/{pmid}/"
    if url and url.startswith(("http://", "https://")):
        return url
    return None


def _author_name(a: Mapping[str, Any]) -> str:
    if a.get("collective_name"):
        return str(a["collective_name"])
    last, initials, fore = a.get("last_name"), a.get("initials"), a.get("fore_name")
    if last and initials:
        return f"{last} {initials}"
    return " ".join(p for p in (last, fore) if p)


def authors_text(authors: Sequence[Mapping[str, Any]], limit: int = 3) -> str:
    """The first `limit` authors, then "et al." if there are more."""
    names = [truncate_words(n, AUTHOR_MAX_CHARS) for n in (_author_name(a) for a in authors) if n]
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[:limit]) + ", et al."


_WS = re.compile(r"\s+")


def truncate_words(text: str, max_chars: int) -> str:
    """`text` cut at a word boundary to at most max_chars, with "…" when cut."""
    text = _WS.sub(" ", text).strip()
    if len(text) <= max_chars:
        return text
    cut = text[: max_chars - 1]
    space = cut.rfind(" ")
    if space > max_chars // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:.-…") + "…"


def abstract_snippet(
    abstract: str,
    sections: Sequence[Mapping[str, Any]] = (),
    *,
    max_sentences: int = SNIPPET_MAX_SENTENCES,
    max_chars: int = SNIPPET_MAX_CHARS,
) -> str:
    """Two or three whole sentences of the abstract, never cut mid-word, at most max_chars.

    A structured abstract is summarised by its conclusions (what a clinician scans for),
    prefixed "Conclusions:"; otherwise the abstract's opening sentences are used.
    """
    prefix = ""
    text = abstract or ""
    for s in sections:
        cat = str(s.get("category") or "").upper()
        label = str(s.get("label") or "").lower()
        if s.get("text") and (cat == "CONCLUSIONS" or "conclusion" in label or "interpretation" in label):
            prefix, text = "Conclusions: ", str(s["text"])
            break
    else:
        if sections and any(s.get("label") for s in sections):
            text = " ".join(str(s.get("text") or "") for s in sections)
    sentences = split_sentences(text)
    if not sentences:
        return ""
    budget = max_chars - len(prefix)
    chosen: list[str] = []
    for s in sentences[:max_sentences]:
        if chosen and len(" ".join([*chosen, s])) > budget:
            break
        chosen.append(s)
    return prefix + truncate_words(" ".join(chosen), budget)


def format_date(d: date | None) -> str:
    """ "27 Nov 2026" (no leading zero), or "" for no date."""
    return f"{d.day} {d:%b %Y}" if d else ""


def period_text(period: str) -> str:
    """A ledger period ("2026-11-27", "2026-W48") as a reader sees it."""
    try:
        if "-W" in period:
            year, week = period.split("-W")
            monday = date.fromisocalendar(int(year), int(week), 1)
            sunday = date.fromisocalendar(int(year), int(week), 7)
            return f"week of {format_date(monday)} – {format_date(sunday)}"
        return format_date(date.fromisoformat(period))
    except ValueError:
        return period


def subject_line(
    paper_count: int,
    topic_counts: Sequence[tuple[str, int]],
    day: date,
    *,
    update_count: int = 0,
    max_topics: int = SUBJECT_TOPICS,
) -> str:
    """ "Lupus digest · 12 new papers (Nephrology 4, Dermatology 3, …) · 27 Nov 2026"."""
    if paper_count:
        noun = "paper" if paper_count == 1 else "papers"
        head = f"{paper_count} new {noun}"
        if topic_counts:
            shown = ", ".join(f"{n} {c}" for n, c in topic_counts[:max_topics])
            more = ", …" if len(topic_counts) > max_topics else ""
            head += f" ({shown}{more})"
    else:
        head = "no new papers"
    if update_count:
        head += f" · {update_count} update{'s' if update_count != 1 else ''}"
    return f"Lupus digest · {head} · {format_date(day)}"


# --- selection -------------------------------------------------------------------------------


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


# --- building the view -----------------------------------------------------------------------


def _evidence(classification: dict[str, Any] | None) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for t in (classification or {}).get("topics") or ():
        if isinstance(t, dict) and t.get("label"):
            ev = [truncate_words(str(e), EVIDENCE_MAX_CHARS) for e in (t.get("evidence") or ()) if e]
            out[str(t["label"])] = tuple(ev[:EVIDENCE_PRIMARY])
    return out


# NLM writes journal titles in sentence case with the place of publication for disambiguation:
# "Arthritis & rheumatology (Hoboken, N.J.)", "Kidney international". Readers know them as
# "Arthritis & Rheumatology" and "Kidney International".
_PLACE_QUALIFIER = re.compile(r"\s*\((?:[^()]*,\s*)?(?:[A-Z][a-z]*\.?\s?)+\)\s*$")
_SMALL_WORDS = frozenset(
    {"a", "an", "and", "at", "de", "der", "du", "et", "for", "in", "of", "on", "the", "to", "und"}
)


def display_journal(name: str) -> str:
    """A journal's name as readers know it: NLM's place qualifier dropped, and NLM's sentence
    case turned into title case. Names already cased by their publisher ("Lupus Science &
    Medicine", "npj Digital Medicine", "The Lancet. Rheumatology") are left as they are."""
    text = _PLACE_QUALIFIER.sub("", name.strip()) or name.strip()
    segments = re.split(r"(\.\s+|:\s+)", text)  # "Nature reviews. Rheumatology" has two
    words = [w for seg in segments[::2] for w in seg.split()[1:]]
    if any(ch.isupper() for w in words for ch in w):
        return text  # cased by the publisher, not sentence case
    out = []
    for k, seg in enumerate(segments):
        if k % 2:
            out.append(seg)
            continue
        ws = seg.split(" ")
        out.append(
            " ".join(
                w if i == 0 or w in _SMALL_WORDS or not w[:1].isalpha() else w[:1].upper() + w[1:]
                for i, w in enumerate(ws)
            )
        )
    return "".join(out)


def paper_view(c: Candidate, best: str) -> PaperView:
    """How a candidate paper is shown when listed under topic `best`."""
    r = c.record
    order = {k: i for i, k in enumerate(topic_labels())}
    evidence = _evidence(c.classification)
    others = sorted((t for t in c.topics if t != best), key=lambda t: (-c.topics[t], order.get(t, 99), t))
    badges = [
        BadgeView(
            label=t,
            name=topic_short_name(t),
            evidence=evidence.get(t, ())[: EVIDENCE_PRIMARY if t == best else EVIDENCE_OTHER],
            primary=(t == best),
        )
        for t in (([best] if best != GENERAL_LABEL else []) + others)[:MAX_BADGES]
    ]
    journal = r.get("journal_iso") or r.get("journal") or ""
    if r.get("journal") and len(str(r["journal"])) <= 60:
        journal = r["journal"]
    return PaperView(
        paper_id=c.paper_id,
        title=truncate_words(r.get("title") or c.title or "(untitled)", TITLE_MAX_CHARS),
        url=paper_url(r.get("doi"), r.get("pmid"), r.get("url")),
        journal=truncate_words(display_journal(str(journal)), JOURNAL_MAX_CHARS),
        date_text=format_date(c.first_date) or str(r.get("pub_date_text") or ""),
        authors_text=authors_text(r.get("authors") or ()),
        snippet=abstract_snippet(r.get("abstract") or "", r.get("abstract_sections") or ()),
        badges=tuple(badges),
        retracted=c.is_retracted,
    )


def _cached_view(window: Window, c: Candidate, best: str, compact: bool = False) -> PaperView:
    key = (c.paper_id, best, compact)
    view = window._views.get(key)
    if view is None:
        view = paper_view(c, best)
        if compact:  # title, journal, authors and badges only
            view = replace(view, snippet="", badges=tuple(replace(b, evidence=()) for b in view.badges))
        window._views[key] = view
    return view


def update_view(u: UpdateCandidate) -> UpdateView:
    """How an update about an already-sent paper is shown."""
    r, n = u.paper.record, u.notice
    notice_text = str(n.get("ref_source") or n.get("title") or "")
    if not notice_text and n.get("pmid"):
        notice_text = f"PMID {n['pmid']}"
    return UpdateView(
        paper_id=u.paper.paper_id,
        kind=u.kind,
        kind_text=UPDATE_KIND_TEXT.get(u.kind, u.kind.replace("_", " ").capitalize()),
        title=truncate_words(r.get("title") or u.paper.title, TITLE_MAX_CHARS),
        url=paper_url(r.get("doi"), r.get("pmid"), r.get("url")),
        notice_text=notice_text,
        notice_url=paper_url(n.get("doi"), n.get("pmid"), n.get("url")),
        serious=u.kind in ("retraction_in", "expression_of_concern_in", "retraction_of"),
    )


def reason_text(sub: Subscriber) -> str:
    """Why this person gets this email (shown in the footer)."""
    if sub.topics is None:
        what = "all lupus topics"
    else:
        order = {k: i for i, k in enumerate(topic_labels())}
        names = [topic_name(t) for t in sorted(sub.topics, key=lambda t: (order.get(t, 99), t))]
        what = ", ".join(names)
    days = ("Mondays", "Tuesdays", "Wednesdays", "Thursdays", "Fridays", "Saturdays", "Sundays")
    how = "daily" if sub.frequency != "weekly" or sub.weekday is None else f"weekly on {days[sub.weekday]}"
    return f"You receive this {how} digest because {sub.email} is subscribed to Lupus Alerts for {what}."


def overflow_url(
    settings: Settings, announce_from: int, announce_to: int, topics: Iterable[str] | None = None
) -> str:
    """The web list of the papers announced in a window on the subscriber's topics (None = all),
    served by lupus_alerts.web."""
    base = settings.digest.public_base_url.rstrip("/")
    query = [("from", announce_from), ("to", announce_to), *(("topic", t) for t in sorted(topics or ()))]
    return f"{base}/papers?{urlencode(query)}"


def build_view(
    window: Window,
    selection: Selection,
    sub: Subscriber,
    *,
    period: str,
    day: date,
    preferences_url: str,
    unsubscribe_url: str,
    home_url: str,
    more_url: str,
    compact: bool = False,
) -> DigestView:
    """The view model of one subscriber's digest from its selection (pure)."""
    sections = tuple(
        SectionView(
            label=label,
            name=topic_name(label) if label else GENERAL_NAME,
            papers=tuple(_cached_view(window, c, label, compact) for c in papers),
        )
        for label, papers in selection.shown
    )
    paper_count = sum(len(s.papers) for s in sections)
    topic_counts = tuple(
        (topic_short_name(s.label) if s.label else GENERAL_NAME, len(s.papers)) for s in sections
    )
    overflow = None
    if selection.overflow:
        per: dict[str, int] = {}
        for label, _c in selection.overflow:
            name = topic_short_name(label) if label else GENERAL_NAME
            per[name] = per.get(name, 0) + 1
        overflow = OverflowView(
            total=len(selection.overflow),
            counts=tuple(sorted(per.items(), key=lambda kv: (-kv[1], kv[0]))),
            url=more_url,
        )
    updates = tuple(update_view(u) for u in selection.updates)
    subject = subject_line(paper_count, topic_counts, day, update_count=len(updates))
    if paper_count:
        first = sections[0].papers[0].title
        preheader = truncate_words(f"{', '.join(f'{n} {c}' for n, c in topic_counts)} · {first}", 140)
    elif updates:
        preheader = f"{len(updates)} update(s) to papers you received"
    else:
        preheader = "No new lupus papers on your topics this time."
    return DigestView(
        subject=subject,
        preheader=preheader,
        period_text=period_text(period),
        recipient_name=sub.name,
        recipient_email=sub.email,
        paper_count=paper_count,
        update_count=len(updates),
        sections=sections,
        updates=updates,
        overflow=overflow,
        preferences_url=preferences_url,
        unsubscribe_url=unsubscribe_url,
        reason=reason_text(sub),
        home_url=home_url,
        topic_counts=topic_counts,
    )


def build_digest(
    conn: Connection,
    settings: Settings,
    subscriber: Subscriber,
    *,
    announce_to: int,
    update_to: int,
    period: str,
    now: datetime,
    windows: dict[tuple[int, int, int, int], Window] | None = None,
    secret: bytes | str | None = None,
    link_maker: Callable[[Settings, Subscriber], tuple[str, str]] | None = None,
) -> Digest:
    """Select and render one subscriber's digest for `period`; reads the store, writes nothing.

    The window is (subscriber.cursor, announce_to] for papers and (subscriber.update_cursor,
    update_to] for updates; the ledger records those bounds and advances the cursors once sent.
    Pass the same `windows` dict for every subscriber of a run to load each window once.
    `link_maker(settings, subscriber) -> (preferences_url, unsubscribe_url)` replaces the signed
    links (tests); by default they come from `lupus_alerts.tokens` (`secret` is passed through).
    """
    a_from = min(subscriber.cursor, announce_to)
    u_from = min(subscriber.update_cursor, update_to)
    window = _shared_window(conn, windows, (a_from, announce_to, u_from, update_to))
    prefs, unsub = _subscriber_links(settings, subscriber, now=now, secret=secret, link_maker=link_maker)
    day = _local_day(now, settings.digest.timezone)

    def attempt(limit: int | None, compact: bool) -> tuple[Selection, DigestView, str, str]:
        sel = select(window, subscriber, limit=limit)
        v = build_view(
            window,
            sel,
            subscriber,
            period=period,
            day=day,
            preferences_url=prefs,
            unsubscribe_url=unsub,
            home_url=settings.digest.public_base_url,
            more_url=overflow_url(settings, a_from, announce_to, subscriber.topics),
            compact=compact,
        )
        return (sel, v, *render(v))

    selection, view, html, text = _render_within_budget(attempt)
    shown_ids = tuple(p.paper_id for s in view.sections for p in s.papers)
    return Digest(
        subscriber=subscriber,
        period=period,
        subject=view.subject,
        html=html,
        text=text,
        paper_count=view.paper_count,
        overflow=len(selection.overflow),
        update_count=view.update_count,
        topic_counts={label or GENERAL_LABEL: len(ps) for label, ps in selection.shown},
        paper_ids=shown_ids,
        announce_from=a_from,
        announce_to=announce_to,
        update_from=u_from,
        update_to=update_to,
        unsubscribe_url=unsub,
        preferences_url=prefs,
        update_ids=tuple(u.update_id for u in selection.updates),
    )


def _shared_window(
    conn: Connection,
    windows: dict[tuple[int, int, int, int], Window] | None,
    key: tuple[int, int, int, int],
) -> Window:
    """Whether the window is loaded from the store or reused from `windows` (which then keeps it)."""
    window = windows.get(key) if windows is not None else None
    if window is None:
        a_from, announce_to, u_from, update_to = key
        window = load_window(
            conn, announce_from=a_from, announce_to=announce_to, update_from=u_from, update_to=update_to
        )
        if windows is not None:
            windows[key] = window
    return window


def _subscriber_links(
    settings: Settings,
    subscriber: Subscriber,
    *,
    now: datetime,
    secret: bytes | str | None,
    link_maker: Callable[[Settings, Subscriber], tuple[str, str]] | None,
) -> tuple[str, str]:
    """The (preferences, unsubscribe) URLs: `link_maker`'s if given, else signed for `now`'s UTC day."""
    if link_maker is not None:
        return link_maker(settings, subscriber)
    from lupus_alerts import tokens

    issued = (now.astimezone(UTC) if now.tzinfo else now).date()  # naive `now` is UTC
    prefs = tokens.preferences_url(settings, subscriber.link_key, issued=issued, secret=secret)
    unsub = tokens.unsubscribe_url(settings, subscriber.link_key, issued=issued, secret=secret)
    return prefs, unsub


def _render_within_budget(
    attempt: Callable[[int | None, bool], tuple[Selection, DigestView, str, str]],
) -> tuple[Selection, DigestView, str, str]:
    """How much is shown: everything, else compact, else compact with fewer papers until the HTML fits."""
    selection, view, html, text = attempt(None, False)
    size = len(html.encode("utf-8"))
    if size > HTML_BUDGET_BYTES:
        selection, view, html, text = attempt(None, True)
        size = len(html.encode("utf-8"))
        while size > HTML_BUDGET_BYTES and view.paper_count > 1:
            # shrink in proportion to the excess, at least one paper per step
            fewer = min(view.paper_count - 1, int(view.paper_count * HTML_BUDGET_BYTES / size * 0.95))
            selection, view, html, text = attempt(max(1, fewer), True)
            size = len(html.encode("utf-8"))
    return selection, view, html, text


def _local_day(now: datetime, tz: str) -> date:
    if now.tzinfo is None:  # the project's naive timestamps are UTC
        now = now.replace(tzinfo=ZoneInfo("UTC"))
    return now.astimezone(ZoneInfo(tz)).date()


# --- rendering -------------------------------------------------------------------------------

_JINJA_TOKEN = re.compile(r"\{[{%].*?[}%]\}", re.S)


class TemplateError(Exception):
    """A packaged template could not be prepared (a bug in the template, caught at load)."""


def _read_template(name: str) -> str:
    return resources.files("lupus_alerts").joinpath("templates", name).read_text(encoding="utf-8")


def inline_template_source(source: str) -> str:
    """Inline the template's <style> rules into its markup, once, before Jinja compiles it.

    Jinja control blocks in the HTML template sit inside HTML comments (`<!--{% if x %}-->`) so
    the HTML parser keeps them exactly where they are (bare text between table rows would be
    moved out of the table); @media rules (dark mode, small screens) stay in a <style> block.
    Raises TemplateError if inlining changed any Jinja tag.
    """
    import css_inline

    inliner = css_inline.CSSInliner(keep_at_rules=True, minify_css=True, load_remote_stylesheets=False)
    inlined = inliner.inline(source)
    if _JINJA_TOKEN.findall(inlined) != _JINJA_TOKEN.findall(source):
        raise TemplateError("CSS inlining altered a Jinja tag: keep Jinja out of tag names and quotes")
    return inlined.replace("<!--{%", "{%").replace("%}-->", "%}")


def _environment(autoescape: bool) -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        autoescape=autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    return env


# Each paper's block is a template of its own, cut out of the (already inlined) document
# template between these markers, and its output is cached per PaperView: thousands of
# subscribers share the same few dozen papers, so most digests are assembled, not re-rendered.
_HTML_PAPER = re.compile(r"<!--paper-->(.*?)<!--/paper-->", re.S)
_TEXT_PAPER = re.compile(r"\{# paper #\}\n(.*?)\{# /paper #\}\n", re.S)
PAPER_CACHE_SIZE = 4096


def _split_paper(source: str, pattern: re.Pattern[str], call: str) -> tuple[str, str]:
    m = pattern.search(source)
    if m is None or len(pattern.findall(source)) != 1:
        raise TemplateError(f"the template must hold exactly one paper block ({pattern.pattern})")
    return source[: m.start()] + call + source[m.end() :], m.group(1)


@lru_cache(maxsize=1)
def _templates() -> tuple[jinja2.Template, jinja2.Template]:
    import markupsafe

    html_env = _environment(autoescape=True)
    text_env = _environment(autoescape=False)
    html_doc, html_paper = _split_paper(
        inline_template_source(_read_template("digest.html.j2")), _HTML_PAPER, "{{ paper_html(p) }}"
    )
    text_doc, text_paper = _split_paper(_read_template("digest.txt.j2"), _TEXT_PAPER, "{{ paper_text(p) }}")
    html_paper_t = html_env.from_string(html_paper)
    text_paper_t = text_env.from_string(text_paper)

    @lru_cache(maxsize=PAPER_CACHE_SIZE)
    def paper_html(p: PaperView) -> markupsafe.Markup:
        return markupsafe.Markup(html_paper_t.render(p=p))

    @lru_cache(maxsize=PAPER_CACHE_SIZE)
    def paper_text(p: PaperView) -> str:
        return text_paper_t.render(p=p)

    html_env.globals["paper_html"] = paper_html
    text_env.globals["paper_text"] = paper_text
    return html_env.from_string(html_doc), text_env.from_string(text_doc)


def render_html(view: DigestView) -> str:
    """The HTML part (styles inlined, user text escaped)."""
    return _templates()[0].render(v=view)


def render_text(view: DigestView) -> str:
    """The plain-text alternative."""
    return _templates()[1].render(v=view)


def render(view: DigestView) -> tuple[str, str]:
    """(html, text) for one digest view."""
    html, text = _templates()
    return html.render(v=view), text.render(v=view)


def iter_topic_choices() -> Iterable[tuple[str, str]]:
    """(label id, display name) pairs in taxonomy order, for forms and help text."""
    return topic_labels().items()


def placeholder_links(settings: Settings, sub: Subscriber) -> tuple[str, str]:
    """Unsigned preview links (when no signing secret is configured); they do not work."""
    base = settings.digest.public_base_url.rstrip("/")
    return f"{base}/preferences?token=PREVIEW", f"{base}/unsubscribe?token=PREVIEW"
