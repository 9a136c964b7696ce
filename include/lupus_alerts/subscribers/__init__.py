"""Subscribers: who gets which digest, how often, and how to manage them in bulk (CSV).

A subscriber chooses topics (taxonomy label ids, or None for all of them), a frequency (daily, or
weekly on a weekday 0=Monday..6=Sunday), a cap on papers per digest and whether an empty digest
is still sent. `cursor`/`update_cursor` are the last announcement and update numbers that
subscriber has been sent; the delivery ledger advances them (`delivery.advance_cursors`).

Removing: `remove()` unsubscribes by default (status "unsubscribed"; the row and its delivery
history stay, so a later CSV import cannot silently re-subscribe someone who left). `remove(...,
delete=True)` erases the row and, by cascade, its topics and ledger rows (a data-erasure request).
See docs/digest.md.

Modules: `model` (the record, limits, errors), `topics`, `validation`, `repository` (the store),
`csv_io` (bulk import and export).
"""

from __future__ import annotations

from lupus_alerts.subscribers.csv_io import (
    CSV_COLUMNS,
    export_csv,
    import_csv,
)
from lupus_alerts.subscribers.model import (
    FREQUENCIES,
    MAX_NAME_CHARS,
    MAX_PAPERS_LIMIT,
    STATUSES,
    WEEKDAYS,
    Frequency,
    ImportReport,
    InvalidSubscriber,
    RowProblem,
    Status,
    Subscriber,
    SubscriberError,
    SubscriberExists,
    SubscriberNotFound,
)
from lupus_alerts.subscribers.repository import (
    add,
    claim_link_mail,
    get,
    get_by_link_key,
    list_subscribers,
    remove,
    revoke_links,
    set_frequency,
    set_status,
    set_topics,
    unsubscribe,
    update,
)
from lupus_alerts.subscribers.topics import (
    TOPIC_LABELS,
    normalize_topics,
    topic_labels,
    topic_name,
    topic_short_name,
)
from lupus_alerts.subscribers.validation import (
    normalize_email,
    normalize_name,
    parse_weekday,
)

__all__ = [
    "CSV_COLUMNS",
    "FREQUENCIES",
    "MAX_NAME_CHARS",
    "MAX_PAPERS_LIMIT",
    "STATUSES",
    "TOPIC_LABELS",
    "WEEKDAYS",
    "Frequency",
    "ImportReport",
    "InvalidSubscriber",
    "RowProblem",
    "Status",
    "Subscriber",
    "SubscriberError",
    "SubscriberExists",
    "SubscriberNotFound",
    "add",
    "claim_link_mail",
    "export_csv",
    "get",
    "get_by_link_key",
    "import_csv",
    "list_subscribers",
    "normalize_email",
    "normalize_name",
    "normalize_topics",
    "parse_weekday",
    "remove",
    "revoke_links",
    "set_frequency",
    "set_status",
    "set_topics",
    "topic_labels",
    "topic_name",
    "topic_short_name",
    "unsubscribe",
    "update",
]
