"""Subscribers in bulk: CSV import that reports bad rows by line, and export safe for spreadsheets."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lupus_alerts import store
from lupus_alerts.subscribers.model import (
    _FORMULA_LEAD,
    WEEKDAYS,
    ImportReport,
    InvalidSubscriber,
    RowProblem,
    Subscriber,
)
from lupus_alerts.subscribers.repository import (
    _S,
    _insert,
    _validated,
    list_subscribers,
)
from lupus_alerts.subscribers.topics import (
    topic_labels,
)

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
