"""How a selection is shown: each paper's view (badges, evidence, snippet), the updates, the
footer's reason, the overflow link, and the whole `DigestView` of one subscriber's digest (pure).
`Window` caches paper views, since most subscribers of a run share the same papers."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import date
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from lupus_alerts.digest.formatting import (
    EVIDENCE_MAX_CHARS,
    EVIDENCE_OTHER,
    EVIDENCE_PRIMARY,
    JOURNAL_MAX_CHARS,
    MAX_BADGES,
    TITLE_MAX_CHARS,
    abstract_snippet,
    authors_text,
    display_journal,
    format_date,
    paper_url,
    period_text,
    subject_line,
    truncate_words,
)
from lupus_alerts.digest.selection import GENERAL_LABEL, Candidate, Selection, UpdateCandidate, Window
from lupus_alerts.digest.views import (
    BadgeView,
    DigestView,
    OverflowView,
    PaperView,
    SectionView,
    UpdateView,
)
from lupus_alerts.subscribers import Subscriber, topic_labels, topic_name, topic_short_name

if TYPE_CHECKING:
    from lupus_alerts.config import Settings

# The heading of the untagged papers' section (selection.GENERAL_LABEL).
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


def _evidence(classification: dict[str, Any] | None) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for t in (classification or {}).get("topics") or ():
        if isinstance(t, dict) and t.get("label"):
            ev = [truncate_words(str(e), EVIDENCE_MAX_CHARS) for e in (t.get("evidence") or ()) if e]
            out[str(t["label"])] = tuple(ev[:EVIDENCE_PRIMARY])
    return out


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


def iter_topic_choices() -> Iterable[tuple[str, str]]:
    """(label id, display name) pairs in taxonomy order, for forms and help text."""
    return topic_labels().items()
