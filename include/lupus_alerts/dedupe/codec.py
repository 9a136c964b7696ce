"""A record as the store keeps it: its paper-schema JSON text (msgspec) and its content hash, and
the normalised batch a transaction works on."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from lupus_alerts import store
from lupus_alerts.doi import normalize_doi
from lupus_alerts.models import Paper

_DOI_MAX = store.papers.c.doi.type.length or 512


_PMID_MAX = store.papers.c.pmid.type.length or 16


_IGNORED_IN_COMPARISON = ("fetched_at", "classification")


def _prepare(batch: Sequence[Paper]) -> list[Paper]:
    """Normalised copies, one per (source, source_key): a later record in the batch wins."""
    out: dict[tuple[str, str], Paper] = {}
    for p in batch:
        pmid = (p.pmid or "").strip() or None
        if pmid is not None and not (pmid.isdigit() and len(pmid) <= _PMID_MAX):
            pmid = None  # not a PMID; keeping it would break the batch on PostgreSQL's column limit
        doi = normalize_doi(p.doi)
        if doi is not None and len(doi) > _DOI_MAX:
            doi = None
        if doi != p.doi or pmid != p.pmid or p.classification is not None:
            p = dataclasses.replace(p, doi=doi, pmid=pmid, classification=None)
        out[(p.source, p.source_key)] = p
    return list(out.values())


@dataclass
class _Encoded:
    """A batch's normalised records with their stored forms (JSON text, hash)."""

    recs: list[Paper]
    texts: list[str]
    hashes: list[str]


def _encode_batch(batch: Sequence[Paper]) -> _Encoded:
    recs = _prepare(batch)
    texts, hashes = [], []
    for r in recs:
        text, digest = encode_paper(r)
        texts.append(text)
        hashes.append(digest)
    return _Encoded(recs, texts, hashes)


def _comparable(record: dict[str, Any]) -> dict[str, Any]:
    out = dict(record)
    for k in _IGNORED_IN_COMPARISON:
        out.pop(k, None)
    return out


# msgspec writes a dataclass as JSON directly, dates in ISO form, keys sorted: the same object
# as Paper.to_dict() (tested), an order of magnitude faster than building the dict and
# json-encoding it, and every record of every batch is encoded.
_JSON_ENCODER = msgspec.json.Encoder(order="sorted")


_PAPER_DECODER = msgspec.json.Decoder(Paper)


_SURROGATE = re.compile("[\ud800-\udfff]")


def encode_paper(p: Paper) -> tuple[str, str]:
    """A record as the store keeps it: (its paper-schema JSON text, its content hash).

    The hash (32 hex chars) covers every field but `fetched_at` and `classification`, the ones
    "changed" ignores, so a stored hash equal to an incoming record's means the record is
    unchanged, without reading or decoding the stored JSON. Keys are sorted and lists kept in
    order, so equal records give equal text. Non-ASCII text is stored as UTF-8.
    """
    try:
        body = _JSON_ENCODER.encode(p)
    except UnicodeEncodeError:
        # A lone surrogate (not Unicode, so not UTF-8: a hand-written JSON "\ud800", say) is
        # stored as U+FFFD, what any decoder would show for it.
        p = _PAPER_DECODER.decode(_SURROGATE.sub("\ufffd", json.dumps(p.to_dict(), ensure_ascii=False)))
        body = _JSON_ENCODER.encode(p)
    hashed = body
    if any(getattr(p, k) is not None for k in _IGNORED_IN_COMPARISON):
        hashed = _JSON_ENCODER.encode(dataclasses.replace(p, **dict.fromkeys(_IGNORED_IN_COMPARISON)))
    return body.decode(), hashlib.blake2b(hashed, digest_size=16).hexdigest()


def decode_paper(stored: str | bytes | dict[str, Any]) -> Paper:
    """A stored record (JSON text, or a dict a driver already decoded) as a Paper.

    Records this module wrote decode straight into the dataclass; anything else (a row written
    by hand or by an older version) goes through the lenient `Paper.from_dict`.
    """
    if isinstance(stored, dict):
        return Paper.from_dict(stored)
    try:
        return _PAPER_DECODER.decode(stored)
    except msgspec.ValidationError:
        return Paper.from_dict(json.loads(stored))


def _same_record(stored_hash: str | None, stored: Any, incoming: Paper, incoming_hash: str) -> bool:
    """Whether a stored record equals an incoming one (ignoring fetch time and classification).

    Both hashes come from `encode_paper`, whose text is equal exactly when the records are, so
    the hashes decide; a row written without a hash (by hand, or by an older version) is
    compared field by field. `stored` is the stored record (a Paper, JSON text or a dict), or a
    callable that loads it, so it is only read when needed.
    """
    if stored_hash is not None:
        return stored_hash == incoming_hash
    record = stored() if callable(stored) else stored
    if not isinstance(record, Paper):
        record = decode_paper(record)
    return _comparable(record.to_dict()) == _comparable(incoming.to_dict())
