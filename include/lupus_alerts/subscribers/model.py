"""Subscribers as data: the record, its limits, and the errors and reports of managing them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Frequency = Literal["daily", "weekly"]
Status = Literal["active", "unsubscribed", "bounced"]
FREQUENCIES: tuple[str, ...] = ("daily", "weekly")
STATUSES: tuple[str, ...] = ("active", "unsubscribed", "bounced")
WEEKDAYS: tuple[str, ...] = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MAX_PAPERS_LIMIT = 1000
# A display name goes into the To: header and the greeting; real names are far shorter. The
# limit keeps the header line well inside RFC 5322's 998 octets, however the name is encoded.
MAX_NAME_CHARS = 100
# Bidirectional overrides and isolates reorder what a reader sees (a name that displays as
# something else): refused like control characters.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Spreadsheets run a cell that starts with one of these as a formula (CSV injection).
_FORMULA_LEAD = ("=", "+", "-", "@")


class SubscriberError(Exception):
    """Base class for subscriber problems."""


class InvalidSubscriber(SubscriberError, ValueError):
    """A field value is not acceptable; the message names the field and the reason."""


class SubscriberExists(SubscriberError):
    """A subscriber with that email address already exists."""


class SubscriberNotFound(SubscriberError, LookupError):
    """No subscriber with that id or email address."""


@dataclass(frozen=True, slots=True)
class Subscriber:
    """One subscriber as stored. `topics` None means every topic."""

    id: int
    email: str
    name: str | None = None
    topics: frozenset[str] | None = None
    frequency: str = "daily"
    weekday: int | None = None
    max_papers: int = 50
    send_when_empty: bool = False
    status: str = "active"
    cursor: int = 0
    update_cursor: int = 0
    permanent_failures: int = 0
    link_key: str = ""  # in every link and Message-ID (tokens); "" only in constructed tests
    legacy_links: bool = False  # existed before link keys: first-format unsubscribe links work

    @property
    def is_active(self) -> bool:
        return self.status == "active"


@dataclass(frozen=True, slots=True)
class RowProblem:
    """One rejected CSV row: its line number in the file (header is line 1) and why."""

    line: int
    email: str
    reason: str

    def __str__(self) -> str:
        who = f" ({self.email})" if self.email else ""
        return f"line {self.line}{who}: {self.reason}"


@dataclass(slots=True)
class ImportReport:
    """What `import_csv` did. `imported` is 0 when errors stopped the import."""

    rows: int = 0
    imported: int = 0
    skipped: int = 0
    problems: list[RowProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems
