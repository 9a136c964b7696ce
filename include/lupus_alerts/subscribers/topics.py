"""Topics a subscriber can choose: the taxonomy's labels and their display names."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from lupus_alerts.subscribers.model import (
    InvalidSubscriber,
)

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
