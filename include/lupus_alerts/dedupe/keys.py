"""Title keys: a normalised title and its year, hashed; and when a title is too generic to merge on."""

from __future__ import annotations

import functools
import hashlib

from lupus_alerts.models import Paper
from lupus_alerts.text import normalize_title

# Titles shorter than this (normalised) are too generic to merge on ("Erratum", "Reply").
MIN_TITLE_CHARS = 20


MIN_TITLE_WORDS = 3


def _key_of(norm: str, year: int | None) -> str:
    return hashlib.sha256(f"{norm}|{year or ''}".encode()).hexdigest()


def title_key(title: str, journal: str | None = None, year: int | None = None) -> str:
    """A 64-character hex key of the normalised title and the year.

    The journal is deliberately not hashed: a feed says "Arthritis & Rheumatology", PubMed says
    "Arthritis & rheumatology (Hoboken, N.J.)" or "Arthritis Rheumatol", so any normalisation
    strict enough to hash would miss matches. `upsert_papers` instead compares journal names
    when it checks a title match (`journals_compatible`). The parameter stays so every caller
    passes what identifies a paper. Callers look up year-1 and year+1 too, because a paper
    online in December and in an issue in January has different years in different sources.
    """
    del journal  # compared at match time, see docstring
    return _key_of(normalize_title(title), year)


@functools.lru_cache(maxsize=16384)  # each title is keyed when matched and again when stored
def _usable_norm(title: str) -> str | None:
    """The normalised title if it is specific enough to merge on, else None."""
    norm = normalize_title(title)
    if len(norm) >= MIN_TITLE_CHARS and len(title.split()) >= MIN_TITLE_WORDS:
        return norm
    return None


def _year(p: Paper) -> int | None:
    d = p.first_date
    return d.year if d else None


def _title_keys(p: Paper) -> list[str]:
    """The record's title key and its neighbouring years' keys (empty if the title is generic)."""
    norm = _usable_norm(p.title)
    if norm is None:
        return []
    y = _year(p)
    if y is None:
        return [_key_of(norm, None)]
    return [_key_of(norm, yy) for yy in (y, y - 1, y + 1)]


def _stored_title_key(p: Paper) -> str | None:
    norm = _usable_norm(p.title)
    return _key_of(norm, _year(p)) if norm is not None else None
