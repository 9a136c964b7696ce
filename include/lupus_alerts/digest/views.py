"""The plain, frozen view models the templates see (`DigestView` and its parts) and the built
`Digest` handed to the mailer and the ledger. No logic beyond a few display properties, so a
view can be built from a selection or by hand (tests, benchmarks, design previews)."""

from __future__ import annotations

from dataclasses import dataclass

from lupus_alerts.digest.formatting import EVIDENCE_LINE_MAX_CHARS, truncate_words
from lupus_alerts.subscribers import Subscriber


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
