"""What an E-utilities call says and what its answer means, as pure functions (no I/O).

Owns the request parameters (`esearch_params`, E-utilities' date form), reading an ESearch
answer in JSON or XML (`parse_esearch`, which raises for an error sent with HTTP 200), checking
an EFetch body (`check_efetch`: an error body, or a document cut short), counting its records
without parsing them, and the arithmetic of windows and batches (`split_days_into`,
`batches_needed`, ESearch's cap).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Literal

from lxml import etree

from lupus_alerts.eutils.errors import EutilsResponseError, TruncatedBody

ESEARCH_CAP = 9999  # ESearch returns at most this many UIDs for one query
_EFETCH_TAIL = re.compile(rb"</(PubmedArticleSet|PubmedArticle|PubmedBookArticle)>\s*$")


@dataclass(slots=True)
class SearchResult:
    """What ESearch said: the hit count, this page of IDs and the history-server handle."""

    count: int
    ids: list[str] = field(default_factory=list)
    retstart: int = 0
    retmax: int = 0
    webenv: str | None = None
    query_key: str | None = None
    mindate: date | None = None
    maxdate: date | None = None


def eutils_date(d: date) -> str:
    """E-utilities' date form, YYYY/MM/DD."""
    return f"{d.year:04d}/{d.month:02d}/{d.day:02d}"


def esearch_params(
    term: str,
    *,
    mindate: date | None = None,
    maxdate: date | None = None,
    datetype: str = "crdt",
    retmax: int = 0,
    retstart: int = 0,
    usehistory: bool = True,
    retmode: Literal["json", "xml"] = "json",
) -> dict[str, str]:
    """The ESearch parameters for one search (without tool/email/api_key)."""
    p = {"db": "pubmed", "term": term, "retmode": retmode, "retmax": str(retmax), "retstart": str(retstart)}
    if usehistory:
        p["usehistory"] = "y"
    if mindate or maxdate:
        p["datetype"] = datetype
        p["mindate"] = eutils_date(mindate or date(1800, 1, 1))
        p["maxdate"] = eutils_date(maxdate or date(3000, 12, 31))
    return p


def parse_esearch(body: bytes) -> SearchResult:
    """Read an ESearch response (JSON or XML); raise EutilsResponseError for an error body."""
    head = body.lstrip()[:1]
    if head in (b"{", b"["):
        return _parse_esearch_json(body)
    if head == b"<":
        return _parse_esearch_xml(body)
    raise EutilsResponseError(f"ESearch answered neither JSON nor XML: {body[:200]!r}")


def _parse_esearch_json(body: bytes) -> SearchResult:
    try:
        doc = json.loads(body)
    except ValueError as e:
        raise EutilsResponseError(f"ESearch JSON unreadable: {e}") from None
    if not isinstance(doc, dict):
        raise EutilsResponseError("ESearch JSON is not an object")
    if "error" in doc:  # e.g. the rate-limit body, or an invalid API key
        raise EutilsResponseError(f"ESearch error: {doc['error']}")
    r = doc.get("esearchresult")
    if not isinstance(r, dict):
        raise EutilsResponseError("ESearch JSON has no esearchresult")
    if r.get("ERROR"):
        raise EutilsResponseError(f"ESearch error: {r['ERROR']}")
    errs = r.get("errorlist") or {}
    problems = {k: v for k, v in errs.items() if v} if isinstance(errs, dict) else {}
    if problems:
        raise EutilsResponseError(f"ESearch ErrorList: {problems}")
    if "count" not in r:
        raise EutilsResponseError("ESearch JSON has no count")
    return SearchResult(
        count=int(r["count"]),
        ids=[str(i) for i in r.get("idlist") or []],
        retstart=int(r.get("retstart") or 0),
        retmax=int(r.get("retmax") or 0),
        webenv=r.get("webenv") or None,
        query_key=str(r["querykey"]) if r.get("querykey") not in (None, "") else None,
    )


def _parse_esearch_xml(body: bytes) -> SearchResult:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        root = etree.fromstring(body, parser)
    except etree.XMLSyntaxError as e:
        raise EutilsResponseError(f"ESearch XML unreadable: {e}") from None
    err = root.findtext("ERROR") if root.tag == "eSearchResult" else None
    if root.tag == "ERROR" or err:
        raise EutilsResponseError(f"ESearch error: {err or root.text}")
    if root.tag != "eSearchResult":
        raise EutilsResponseError(f"ESearch XML root is <{root.tag}>, not <eSearchResult>")
    errlist = root.find("ErrorList")
    if errlist is not None and len(errlist):
        detail = ", ".join(f"{e.tag}: {e.text}" for e in errlist)
        raise EutilsResponseError(f"ESearch ErrorList: {detail}")
    count = root.findtext("Count")
    if count is None:
        raise EutilsResponseError("ESearch XML has no Count")
    return SearchResult(
        count=int(count),
        ids=[i.text.strip() for i in root.iterfind("IdList/Id") if i.text],
        retstart=int(root.findtext("RetStart") or 0),
        retmax=int(root.findtext("RetMax") or 0),
        webenv=(root.findtext("WebEnv") or "").strip() or None,
        query_key=(root.findtext("QueryKey") or "").strip() or None,
    )


def check_efetch(body: bytes) -> bytes:
    """Return an EFetch body unchanged, or raise for an error body.

    Raises EutilsResponseError for `<ERROR>`/JSON errors and TruncatedBody when the document
    does not end with its root's closing tag (a connection cut mid-body that still looked whole).
    """
    head = body[:4096]
    if b"<PubmedArticleSet" not in head and b"<PubmedArticle" not in head:
        stripped = body.lstrip()
        if stripped.startswith(b"{"):
            raise EutilsResponseError(f"EFetch error: {body[:300].decode('utf-8', 'replace')}")
        m = re.search(rb"<ERROR>(.*?)</ERROR>", body[:65536], re.S)
        if m:
            raise EutilsResponseError(f"EFetch error: {m.group(1).decode('utf-8', 'replace').strip()}")
        if b"<PubmedArticleSet" not in body:
            raise EutilsResponseError(f"EFetch answered something else: {body[:200]!r}")
    if not _EFETCH_TAIL.search(body[-200:]) and not body.rstrip().endswith(b"<PubmedArticleSet/>"):
        raise TruncatedBody(f"EFetch body ends mid-document ({len(body)} bytes)")
    return body


def split_days_into(start: date, end: date, parts: int) -> list[tuple[date, date]]:
    """Cut the inclusive days start..end into `parts` contiguous, near-equal day ranges."""
    days = (end - start).days + 1
    parts = max(1, min(parts, days))
    out = []
    lo = start
    for i in range(parts):
        size = days // parts + (1 if i < days % parts else 0)
        hi = lo + timedelta(days=size - 1)
        out.append((lo, hi))
        lo = hi + timedelta(days=1)
    return out


def batches_needed(count: int, batch_size: int) -> int:
    """EFetch calls for `count` records at `batch_size` a call."""
    return math.ceil(count / batch_size) if count else 0


def count_records(body: bytes) -> int:
    """How many records an EFetch body holds (a byte count, no parsing)."""
    return body.count(b"<PubmedArticle>") + body.count(b"<PubmedBookArticle>")
