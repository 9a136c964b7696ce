"""Subscribers: who gets which digest, how often, and how to manage them in bulk (CSV).

A subscriber chooses topics (taxonomy label ids, or None for all of them), a frequency (daily, or
weekly on a weekday 0=Monday..6=Sunday), a cap on papers per digest and whether an empty digest
is still sent. `cursor`/`update_cursor` are the last announcement and update numbers that
subscriber has been sent; the delivery ledger advances them (`delivery.advance_cursors`).

Removing: `remove()` unsubscribes by default (status "unsubscribed"; the row and its delivery
history stay, so a later CSV import cannot silently re-subscribe someone who left). `remove(...,
delete=True)` erases the row and, by cascade, its topics and ledger rows (a data-erasure request).
See docs/digest.md.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, TextIO

import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email
from sqlalchemy.engine import Connection, Engine

from lupus_alerts import store, tokens

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

# The classifier's 15 subspecialty labels (id -> display name), in taxonomy order. Used only when
# the packaged taxonomy cannot be loaded; `topic_labels()` prefers the taxonomy file.
TOPIC_LABELS: dict[str, str] = {
    "nephrology": "Nephrology",
    "dermatology": "Dermatology",
    "neuropsychiatric": "Neuropsychiatric",
    "cardiovascular": "Cardiovascular",
    "pulmonary": "Pulmonary",
    "hematology": "Hematology",
    "pregnancy": "Pregnancy",
    "pediatrics": "Pediatrics",
    "musculoskeletal": "Musculoskeletal",
    "genetics": "Genetics",
    "immunology": "Immunology",
    "therapeutics": "Therapeutics",
    "epidemiology": "Epidemiology",
    "diagnostics": "Diagnostics",
    "infection": "Infection",
}

CSV_COLUMNS: tuple[str, ...] = (
    "email",
    "name",
    "topics",
    "frequency",
    "weekday",
    "max_papers",
    "send_when_empty",
    "status",
)


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


# --- topics ---------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def topic_labels() -> dict[str, str]:
    """Topic label id -> display name, in taxonomy order (from the classifier's taxonomy)."""
    try:
        from lupus_alerts.classify import load_taxonomy
    except ImportError:  # classifier not installed: the constant holds the same ids
        return dict(TOPIC_LABELS)
    taxonomy = load_taxonomy()
    return {label: taxonomy.display_name(label) for label in taxonomy.ids}


# Taxonomy names can be long ("Haematology & antiphospholipid syndrome"); subject lines and
# badges use the head of the name, before its first " · ", " & " or ", ".
_SHORT_SPLIT = re.compile(r" · | & |, ")


def topic_name(label: str) -> str:
    """The full display name of a topic label (the id itself if unknown)."""
    return topic_labels().get(label, label)


def topic_short_name(label: str) -> str:
    """A compact display name for subjects and badges ("Haematology", "Nephrology")."""
    return _SHORT_SPLIT.split(topic_name(label), maxsplit=1)[0]


def normalize_topics(topics: Iterable[str] | str | None) -> frozenset[str] | None:
    """Validate topic ids; None, "", "all" or "*" mean every topic. Raises InvalidSubscriber."""
    if topics is None:
        return None
    if isinstance(topics, str):
        if not topics.strip():
            return None
        topics = topics.replace(";", ",").replace(" ", ",").split(",")
    cleaned = {t.strip().lower() for t in topics if t and t.strip()}
    if not cleaned:
        raise InvalidSubscriber("topics: choose at least one topic, or 'all'")
    if cleaned & {"all", "*"}:
        if len(cleaned) > 1 and cleaned & {"all", "*"}:
            raise InvalidSubscriber("topics: 'all' cannot be combined with named topics")
        return None
    known = topic_labels()
    unknown = sorted(cleaned - known.keys())
    if unknown:
        raise InvalidSubscriber(f"topics: unknown topic(s) {', '.join(unknown)} (valid: {', '.join(known)})")
    return frozenset(cleaned)


# --- validation -----------------------------------------------------------------------------


def normalize_email(email: str) -> str:
    """A syntactically valid address, lower-cased, in its ASCII form when it has one.

    An internationalised domain is kept as IDNA ("user@xn--exmple-cua.org", not
    "user@exämple.org"), which every relay can send to; only a non-ASCII local part stays as
    Unicode, and needs a relay that offers SMTPUTF8. Raises InvalidSubscriber. No DNS lookup.
    """
    if not isinstance(email, str) or not email.strip():
        raise InvalidSubscriber("email: missing")
    try:
        info = validate_email(email.strip(), check_deliverability=False)
    except EmailNotValidError as e:
        raise InvalidSubscriber(f"email: {e}") from None
    return (info.ascii_email or info.normalized).lower()


def normalize_name(name: str | None) -> str | None:
    """A display name without surrounding spaces (None when empty); raises InvalidSubscriber
    for a control character (CR, LF, tab, NUL, vertical tab, ...), a line or paragraph
    separator, a bidirectional override, or more than MAX_NAME_CHARS characters.

    Names go into the To: header: anything that could end a header line or reorder the text
    is refused here, at the edge, so a stored name never stops a digest being built.
    """
    if name is None:
        return None
    if not isinstance(name, str):
        raise InvalidSubscriber(f"name: expected text, not {type(name).__name__}")
    text = name.strip()
    for ch in text:
        if unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") or ch in _BIDI_CONTROLS:
            raise InvalidSubscriber(f"name: contains the control character U+{ord(ch):04X}")
    if len(text) > MAX_NAME_CHARS:
        raise InvalidSubscriber(f"name: {len(text)} characters, at most {MAX_NAME_CHARS}")
    return text or None


def _ascii_int(field_name: str, value: int | str) -> int:
    # int() takes "٣" (an Arabic-Indic digit), "+3" and "1_0"; str.isdigit() passes "²", which
    # int() then refuses (a 500 on the preferences form, once). Plain ASCII digits only.
    if isinstance(value, bool):
        raise InvalidSubscriber(f"{field_name}: {value!r} is not a whole number")
    if isinstance(value, int):
        return value
    text = value.strip() if isinstance(value, str) else ""
    if not text.isascii() or not text.isdigit() or len(text) > 9:
        raise InvalidSubscriber(f"{field_name}: {value!r} is not a whole number")
    return int(text)


def _check_frequency(frequency: str, weekday: int | str | None) -> tuple[str, int | None]:
    frequency = (frequency or "daily").strip().lower()
    if frequency not in FREQUENCIES:
        raise InvalidSubscriber(f"frequency: {frequency!r} is not one of {', '.join(FREQUENCIES)}")
    day = parse_weekday(weekday)
    if frequency == "weekly" and day is None:
        raise InvalidSubscriber("weekday: a weekly digest needs a weekday (0=Monday..6=Sunday or a name)")
    if frequency == "daily" and day is not None:
        raise InvalidSubscriber("weekday: only weekly digests have a weekday")
    return frequency, day


def parse_weekday(value: int | str | None) -> int | None:
    """0..6 (Monday=0) from an int, a digit string or a day name/prefix ("mon", "Monday")."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise InvalidSubscriber(f"weekday: {value!r} is not a weekday")
    if isinstance(value, int):
        day = value
    else:
        text = value.strip().lower()
        if text.isascii() and text.isdigit():
            day = _ascii_int("weekday", text)
        else:
            matches = [i for i, n in enumerate(WEEKDAYS) if len(text) >= 3 and n.startswith(text)]
            if len(matches) != 1:
                raise InvalidSubscriber(f"weekday: {value!r} is not a weekday (0-6 or a day name)")
            day = matches[0]
    if not 0 <= day <= 6:
        raise InvalidSubscriber(f"weekday: {value!r} is out of range 0 (Monday) .. 6 (Sunday)")
    return day


def _check_max_papers(value: int | str) -> int:
    n = _ascii_int("max_papers", value)
    if not 1 <= n <= MAX_PAPERS_LIMIT:
        raise InvalidSubscriber(f"max_papers: {n} is out of range 1..{MAX_PAPERS_LIMIT}")
    return n


def _check_status(status: str) -> str:
    s = (status or "").strip().lower()
    if s not in STATUSES:
        raise InvalidSubscriber(f"status: {status!r} is not one of {', '.join(STATUSES)}")
    return s


def _parse_bool(field_name: str, value: bool | str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    text = value.strip().lower()
    if text in ("1", "true", "yes", "y", "on"):
        return True
    if text in ("0", "false", "no", "n", "off"):
        return False
    raise InvalidSubscriber(f"{field_name}: {value!r} is not yes/no")


# --- storage --------------------------------------------------------------------------------


_S = store.subscribers


def _where(id_or_email: int | str) -> sa.ColumnElement[bool]:
    if isinstance(id_or_email, int) and not isinstance(id_or_email, bool):
        return _S.c.id == id_or_email
    text = str(id_or_email).strip()
    if text.isascii() and text.isdigit() and len(text) <= 9:
        return _S.c.id == int(text)
    try:
        return _S.c.email == normalize_email(text)  # the stored form (ASCII domain, lower case)
    except InvalidSubscriber:
        return _S.c.email == text.lower()


def _load_topics(conn: Connection, ids: list[int]) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {i: set() for i in ids}
    if not ids:
        return out
    t = store.subscriber_topics
    for chunk_start in range(0, len(ids), 500):
        chunk = ids[chunk_start : chunk_start + 500]
        for sid, label in conn.execute(
            sa.select(t.c.subscriber_id, t.c.label).where(t.c.subscriber_id.in_(chunk))
        ):
            out[sid].add(label)
    return out


def _from_row(row: Any, topics: set[str]) -> Subscriber:
    return Subscriber(
        id=row.id,
        email=row.email,
        name=row.name,
        topics=None if row.all_topics else frozenset(topics),
        frequency=row.frequency,
        weekday=row.weekday,
        max_papers=row.max_papers,
        send_when_empty=bool(row.send_when_empty),
        status=row.status,
        cursor=int(row.cursor),
        update_cursor=int(row.update_cursor),
        permanent_failures=int(row.permanent_failures),
        link_key=row.link_key,
        legacy_links=bool(row.legacy_links),
    )


def get(conn_or_engine: Connection | Engine, id_or_email: int | str) -> Subscriber:
    """The subscriber with that id (int or digits) or email. Raises SubscriberNotFound."""
    with store.transaction(conn_or_engine) as conn:
        row = conn.execute(sa.select(_S).where(_where(id_or_email))).first()
        if row is None:
            raise SubscriberNotFound(f"no subscriber {id_or_email!r}")
        return _from_row(row, _load_topics(conn, [row.id])[row.id])


def get_by_link_key(conn_or_engine: Connection | Engine, link_key: str) -> Subscriber:
    """The subscriber whose link key this is. Raises SubscriberNotFound (deleted, or the key
    was replaced by revoke_links)."""
    with store.transaction(conn_or_engine) as conn:
        row = conn.execute(sa.select(_S).where(_S.c.link_key == link_key)).first()
        if row is None:
            raise SubscriberNotFound("no subscriber with that link key")
        return _from_row(row, _load_topics(conn, [row.id])[row.id])


def list_subscribers(conn_or_engine: Connection | Engine, status: str | None = None) -> list[Subscriber]:
    """All subscribers (optionally only those with `status`), ordered by id."""
    with store.transaction(conn_or_engine) as conn:
        q = sa.select(_S).order_by(_S.c.id)
        if status is not None:
            q = q.where(_S.c.status == _check_status(status))
        rows = conn.execute(q).all()
        topics = _load_topics(conn, [r.id for r in rows])
        return [_from_row(r, topics[r.id]) for r in rows]


def _set_topic_rows(conn: Connection, subscriber_id: int, topics: frozenset[str] | None) -> None:
    t = store.subscriber_topics
    conn.execute(sa.delete(t).where(t.c.subscriber_id == subscriber_id))
    if topics:
        conn.execute(sa.insert(t), [{"subscriber_id": subscriber_id, "label": x} for x in sorted(topics)])


def _validated(
    *,
    email: str,
    name: str | None,
    topics: Iterable[str] | str | None,
    frequency: str,
    weekday: int | str | None,
    max_papers: int | str,
    send_when_empty: bool | str | None,
    status: str,
) -> dict[str, Any]:
    freq, day = _check_frequency(frequency, weekday)
    return {
        "email": normalize_email(email),
        "name": normalize_name(name),
        "topics": normalize_topics(topics),
        "frequency": freq,
        "weekday": day,
        "max_papers": _check_max_papers(max_papers),
        "send_when_empty": _parse_bool("send_when_empty", send_when_empty, False),
        "status": _check_status(status),
    }


def _insert(conn: Connection, v: dict[str, Any], *, from_beginning: bool) -> int:
    cursor, update_cursor = (0, 0) if from_beginning else store.high_water_marks(conn)
    now = store.utcnow()
    sid = conn.execute(
        sa.insert(_S)
        .values(
            email=v["email"],
            name=v["name"],
            all_topics=v["topics"] is None,
            frequency=v["frequency"],
            weekday=v["weekday"],
            max_papers=v["max_papers"],
            send_when_empty=v["send_when_empty"],
            status=v["status"],
            cursor=cursor,
            update_cursor=update_cursor,
            permanent_failures=0,
            created_at=now,
            updated_at=now,
            link_key=tokens.new_link_key(),
            legacy_links=False,
        )
        .returning(_S.c.id)
    ).scalar_one()
    _set_topic_rows(conn, sid, v["topics"])
    return int(sid)


def add(
    conn_or_engine: Connection | Engine,
    *,
    email: str,
    name: str | None = None,
    topics: Iterable[str] | str | None = None,
    frequency: str = "daily",
    weekday: int | str | None = None,
    max_papers: int = 50,
    send_when_empty: bool = False,
    status: str = "active",
    from_beginning: bool = False,
) -> Subscriber:
    """Validate and store a new subscriber; raises InvalidSubscriber or SubscriberExists.

    A new subscriber's cursors start at the current announcement/update numbers, so the first
    digest holds what is announced from now on, not the whole archive; `from_beginning=True`
    starts them at 0 (demos, back-fills).
    """
    v = _validated(
        email=email,
        name=name,
        topics=topics,
        frequency=frequency,
        weekday=weekday,
        max_papers=max_papers,
        send_when_empty=send_when_empty,
        status=status,
    )
    with store.transaction(conn_or_engine) as conn:
        if conn.execute(sa.select(_S.c.id).where(_S.c.email == v["email"])).first():
            raise SubscriberExists(f"{v['email']} is already a subscriber")
        sid = _insert(conn, v, from_beginning=from_beginning)
        return get(conn, sid)


_UNSET: Any = object()


def update(
    conn_or_engine: Connection | Engine,
    id_or_email: int | str,
    *,
    email: str = _UNSET,
    name: str | None = _UNSET,
    topics: Iterable[str] | str | None = _UNSET,
    frequency: str = _UNSET,
    weekday: int | str | None = _UNSET,
    max_papers: int = _UNSET,
    send_when_empty: bool = _UNSET,
    status: str = _UNSET,
) -> Subscriber:
    """Change the given fields (others untouched) and return the stored subscriber.

    Switching to daily drops the weekday; switching to weekly needs one (given or stored).
    Reactivating (status "active") resets the permanent-failure count.
    """
    with store.transaction(conn_or_engine) as conn:
        cur = get(conn, id_or_email)
        values: dict[str, Any] = {}
        if email is not _UNSET:
            new_email = normalize_email(email)
            if new_email != cur.email:
                clash = conn.execute(sa.select(_S.c.id).where(_S.c.email == new_email)).first()
                if clash:
                    raise SubscriberExists(f"{new_email} is already a subscriber")
                values["email"] = new_email
                # Links sent to the old address must not keep working for the new one (an
                # address handed to someone else, a shared inbox left behind).
                values["link_key"] = tokens.new_link_key()
                values["legacy_links"] = False
        if name is not _UNSET:
            values["name"] = normalize_name(name)
        if frequency is not _UNSET or weekday is not _UNSET:
            freq = cur.frequency if frequency is _UNSET else frequency
            if weekday is _UNSET:
                day = cur.weekday if str(freq).strip().lower() == "weekly" else None
            else:
                day = weekday
            values["frequency"], values["weekday"] = _check_frequency(freq, day)
        if max_papers is not _UNSET:
            values["max_papers"] = _check_max_papers(max_papers)
        if send_when_empty is not _UNSET:
            values["send_when_empty"] = _parse_bool("send_when_empty", send_when_empty, False)
        if status is not _UNSET:
            values["status"] = _check_status(status)
            if values["status"] == "active":
                values["permanent_failures"] = 0
        if topics is not _UNSET:
            new_topics = normalize_topics(topics)
            values["all_topics"] = new_topics is None
            _set_topic_rows(conn, cur.id, new_topics)
        if values or topics is not _UNSET:
            values["updated_at"] = store.utcnow()
            conn.execute(sa.update(_S).where(_S.c.id == cur.id).values(**values))
        return get(conn, cur.id)


def set_status(conn_or_engine: Connection | Engine, id_or_email: int | str, status: str) -> Subscriber:
    """Set status to active, unsubscribed or bounced (used by unsubscribe and the ledger)."""
    return update(conn_or_engine, id_or_email, status=status)


def set_topics(
    conn_or_engine: Connection | Engine, id_or_email: int | str, topics: Iterable[str] | str | None
) -> Subscriber:
    """Replace the subscriber's topics (None or "all" for every topic)."""
    return update(conn_or_engine, id_or_email, topics=topics)


def set_frequency(
    conn_or_engine: Connection | Engine,
    id_or_email: int | str,
    frequency: str,
    weekday: int | str | None = None,
) -> Subscriber:
    """Set daily, or weekly on `weekday` (0=Monday..6=Sunday or a day name)."""
    return update(conn_or_engine, id_or_email, frequency=frequency, weekday=weekday)


def revoke_links(conn_or_engine: Connection | Engine, id_or_email: int | str) -> Subscriber:
    """Give the subscriber a new link key: every unsubscribe and preferences link sent so far
    stops working (the next digest carries new ones). For a forwarded digest or a leaked link."""
    with store.transaction(conn_or_engine) as conn:
        cur = get(conn, id_or_email)
        conn.execute(
            sa.update(_S)
            .where(_S.c.id == cur.id)
            .values(link_key=tokens.new_link_key(), legacy_links=False, updated_at=store.utcnow())
        )
        return get(conn, cur.id)


def unsubscribe(conn: Connection, subscriber_id: int) -> bool:
    """Unsubscribe in the caller's transaction; True only for the call that changed the status.

    Conditional on the current status, so of two concurrent one-click POSTs exactly one applies
    it (the other waits for the row and then finds nothing to change).
    """
    res = conn.execute(
        sa.update(_S)
        .where(_S.c.id == subscriber_id, _S.c.status != "unsubscribed")
        .values(status="unsubscribed", updated_at=store.utcnow())
    )
    return res.rowcount == 1


def claim_link_mail(conn: Connection, subscriber_id: int, *, now: datetime, min_interval: timedelta) -> bool:
    """Record that a fresh-link mail goes out now, unless one went out within `min_interval`
    (a timedelta); True when the caller may send it. Throttles a link-mail flood."""
    res = conn.execute(
        sa.update(_S)
        .where(
            _S.c.id == subscriber_id,
            sa.or_(_S.c.links_sent_at.is_(None), _S.c.links_sent_at <= now - min_interval),
        )
        .values(links_sent_at=now)
    )
    return res.rowcount == 1


def remove(
    conn_or_engine: Connection | Engine, id_or_email: int | str, *, delete: bool = False
) -> Subscriber:
    """Unsubscribe (default: the row stays, status "unsubscribed") or, with delete=True, erase it.

    Returns the subscriber as it was before a delete, or as it is after an unsubscribe.
    """
    with store.transaction(conn_or_engine) as conn:
        cur = get(conn, id_or_email)
        if not delete:
            return update(conn, cur.id, status="unsubscribed")
        conn.execute(
            sa.delete(store.subscriber_topics).where(store.subscriber_topics.c.subscriber_id == cur.id)
        )
        conn.execute(sa.delete(store.deliveries).where(store.deliveries.c.subscriber_id == cur.id))
        conn.execute(sa.delete(_S).where(_S.c.id == cur.id))
        return cur


# --- CSV ------------------------------------------------------------------------------------


def _read_rows(text: str) -> Iterator[tuple[int, dict[str, str] | None, str | None]]:
    """(line number, row or None, problem) for each data row; line numbers count from 1 = header."""
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        yield 1, None, "the file is empty (expected a header row starting with 'email')"
        return
    columns = [h.strip().lower() for h in header]
    unknown = [c for c in columns if c not in CSV_COLUMNS]
    if "email" not in columns or unknown:
        why = f"unknown column(s) {', '.join(unknown)}" if unknown else "no 'email' column"
        yield 1, None, f"bad header: {why} (columns: {', '.join(CSV_COLUMNS)}; only email is required)"
        return
    if len(set(columns)) != len(columns):
        yield 1, None, "bad header: a column appears twice"
        return
    next_line = reader.line_num + 1
    for values in reader:
        line, next_line = next_line, reader.line_num + 1  # a quoted field may span several lines
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(columns):
            yield line, None, f"expected {len(columns)} fields, found {len(values)}"
            continue
        cells = (_unescape_cell(v.strip()) for v in values)
        yield line, dict(zip(columns, cells, strict=True)), None


def import_csv(
    conn_or_engine: Connection | Engine,
    path: str | Path | TextIO,
    *,
    skip_invalid: bool = False,
    from_beginning: bool = False,
) -> ImportReport:
    """Add the subscribers in a CSV file (header: email[,name,topics,frequency,weekday,...]).

    Every bad row is reported with its line number and reason. If any row is bad, nothing is
    imported unless `skip_invalid`, in which case the good rows are. An email already
    subscribed, or repeated in the file, is a bad row (use `update` to change a subscriber).
    Topics are separated by ";" (or spaces); empty or "all" means every topic.
    """
    if isinstance(path, str | Path):
        text = Path(path).read_text(encoding="utf-8-sig")
    else:
        text = path.read()
        text = text.removeprefix("\ufeff")
    report = ImportReport()
    good: list[tuple[int, dict[str, Any]]] = []
    seen: dict[str, int] = {}
    with store.transaction(conn_or_engine) as conn:
        existing = {e for (e,) in conn.execute(sa.select(_S.c.email))}
        for line, row, problem in _read_rows(text):
            if row is None:
                report.problems.append(RowProblem(line, "", problem or "unreadable row"))
                if line == 1:
                    break
                report.rows += 1
                continue
            report.rows += 1
            raw_email = row.get("email", "")
            try:
                v = _validated(
                    email=raw_email,
                    name=row.get("name"),
                    topics=row.get("topics") or None,
                    frequency=row.get("frequency") or "daily",
                    weekday=row.get("weekday") or None,
                    max_papers=row.get("max_papers") or 50,
                    send_when_empty=row.get("send_when_empty"),
                    status=row.get("status") or "active",
                )
            except InvalidSubscriber as e:
                report.problems.append(RowProblem(line, raw_email, str(e)))
                continue
            if v["email"] in seen:
                report.problems.append(
                    RowProblem(line, v["email"], f"duplicate of line {seen[v['email']]} in this file")
                )
                continue
            seen[v["email"]] = line
            if v["email"] in existing:
                report.problems.append(
                    RowProblem(line, v["email"], "already a subscriber (use `subscribers update`)")
                )
                continue
            good.append((line, v))
        if report.problems and not skip_invalid:
            return report
        for _line, v in good:
            _insert(conn, v, from_beginning=from_beginning)
        report.imported = len(good)
        report.skipped = report.rows - len(good)
    return report


def export_csv(conn_or_engine: Connection | Engine, out: str | Path | TextIO) -> int:
    """Write every subscriber as CSV (the columns `import_csv` reads); returns the row count."""
    subs = list_subscribers(conn_or_engine)
    if isinstance(out, str | Path):
        with open(out, "w", encoding="utf-8", newline="") as fh:
            return _write_csv(subs, fh)
    return _write_csv(subs, out)


def _write_csv(subs: list[Subscriber], fh: TextIO) -> int:
    w = csv.writer(fh, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    order = list(topic_labels())
    for s in subs:
        topics = "all" if s.topics is None else ";".join(sorted(s.topics, key=_order_key(order)))
        w.writerow(
            [
                _escape_cell(s.email),
                _escape_cell(s.name or ""),
                topics,
                s.frequency,
                "" if s.weekday is None else WEEKDAYS[s.weekday],
                s.max_papers,
                "yes" if s.send_when_empty else "no",
                s.status,
            ]
        )
    return len(subs)


def _escape_cell(text: str) -> str:
    """A text cell a spreadsheet will not run: one that starts like a formula gets a leading
    apostrophe (OWASP's CSV-injection advice), which import_csv takes off again."""
    return "'" + text if text.startswith(_FORMULA_LEAD) else text


def _unescape_cell(text: str) -> str:
    return text[1:] if text.startswith("'") and text[1:].startswith(_FORMULA_LEAD) else text


def _order_key(order: list[str]) -> Any:
    pos = {k: i for i, k in enumerate(order)}
    return lambda t: (pos.get(t, len(pos)), t)
