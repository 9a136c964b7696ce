"""A fake-but-faithful E-utilities (ESearch + EFetch for db=pubmed) on a local ReplayServer.

Given a corpus of real `PubmedArticle` records, each with a creation date, it answers
`/entrez/eutils/esearch.fcgi` and `/entrez/eutils/efetch.fcgi` in the formats NCBI uses (modelled
on the recorded responses in tests/fixtures/eutils): JSON or XML ESearch with count, retmax,
retstart, idlist, querykey and webenv, honouring `datetype=crdt` with `mindate`/`maxdate` (inclusive
days) and returning at most 9,999 IDs like the real service; EFetch by `id=` (GET or POST) or by
WebEnv + query_key + retstart + retmax, whose paging may go past 9,999. Every query term matches
the whole corpus: the corpus *is* the search result. Faults (429, 5xx, stalls, truncated bodies)
are injected with `ReplayServer.inject`; every request is recorded with its arrival time.

Corpora are built from fixture files (`corpus_from_files`), or made large by repeating fixture
records under new PMIDs and DOIs (`synthetic_corpus`): those synthetic records are constructed,
not real, and say so in docs/pubmed.md.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from xml.sax.saxutils import escape

from lxml import etree

from lupus_alerts.testing.replay import ReplayServer, Request, Response

ESEARCH_PATH = "/entrez/eutils/esearch.fcgi"
EFETCH_PATH = "/entrez/eutils/efetch.fcgi"
ESEARCH_CAP = 9999
EFETCH_HEADER = (
    b'<?xml version="1.0" ?>\n'
    b'<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January 2025//EN"'
    b' "https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">\n'
    b"<PubmedArticleSet>\n"
)
EFETCH_FOOTER = b"</PubmedArticleSet>"
# The body NCBI sends with HTTP 429 (quoted in ropensci/rentrez issue 132).
RATE_LIMIT_BODY = b'{"error":"API rate limit exceeded","api-key":"127.0.0.1","count":"%d","limit":"%d"}\n'


@dataclass(frozen=True, slots=True)
class CorpusRecord:
    """One PubmedArticle (its XML bytes) and the day PubMed created it."""

    pmid: str
    crdt: date
    xml: bytes


def _parse_day(value: str) -> date | None:
    parts = [p for p in re.split(r"[/-]", value.strip()) if p]
    if not parts or not parts[0].isdigit():
        return None
    y = int(parts[0])
    m = int(parts[1]) if len(parts) > 1 else None
    d = int(parts[2]) if len(parts) > 2 else None
    return date(y, m or 1, d or 1)


def _end_day(value: str) -> date | None:
    """A maxdate: "2024" means through Dec 31, "2024/02" through the month's last day."""
    parts = [p for p in re.split(r"[/-]", value.strip()) if p]
    if not parts or not parts[0].isdigit():
        return None
    y = int(parts[0])
    if len(parts) == 1:
        return date(y, 12, 31)
    m = int(parts[1])
    if len(parts) == 2:
        nxt = date(y + (m == 12), m % 12 + 1, 1)
        return nxt - timedelta(days=1)
    return date(y, m, int(parts[2]))


class EutilsReplay:
    """E-utilities over a corpus. Use as a context manager; `base_url` is the client's base URL."""

    def __init__(
        self,
        corpus: Iterable[CorpusRecord] | SyntheticCorpus,
        *,
        server: ReplayServer | None = None,
        enforce_rate: float | None = None,
        esearch_cap: int = ESEARCH_CAP,
    ) -> None:
        # A synthetic corpus renders each record's XML on request, so a large one costs no memory.
        self._render = corpus.render if isinstance(corpus, SyntheticCorpus) else None
        records = corpus.records if isinstance(corpus, SyntheticCorpus) else corpus
        # Newest PMID first, like PubMed's default "most recent" order.
        self.records = sorted(records, key=lambda r: int(r.pmid), reverse=True)
        self._by_pmid = {r.pmid: r for r in self.records}
        self.server = server or ReplayServer()
        self._own_server = server is None
        self.enforce_rate = enforce_rate
        self.esearch_cap = esearch_cap
        self._history: dict[tuple[str, str], list[str]] = {}
        self._webenv = "MCID_" + uuid.uuid4().hex[:24]
        self._keys = itertools.count(1)
        self._lock = threading.Lock()
        self._recent: deque[float] = deque()
        self.server.route(ESEARCH_PATH, self._esearch)
        self.server.route(EFETCH_PATH, self._efetch)

    @property
    def base_url(self) -> str:
        """The base URL to give EutilsClient (ends with /entrez/eutils/)."""
        return self.server.url + "/entrez/eutils/"

    def __enter__(self) -> EutilsReplay:
        if self._own_server:
            self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._own_server:
            self.server.stop()

    def withdraw(self, pmid: str) -> None:
        """Leave `pmid` out of EFetch answers while ESearch still counts it, as when PubMed
        withdraws a record between a search and its fetch."""
        self._by_pmid.pop(pmid, None)

    def requests_to(self, endpoint: str) -> list[Request]:
        """Recorded requests to "esearch" or "efetch"."""
        return self.server.requests_to(ESEARCH_PATH if endpoint == "esearch" else EFETCH_PATH)

    # -- serving -------------------------------------------------------------------------------

    def _over_rate(self) -> int | None:
        """The count in the last second when over `enforce_rate` (then answer 429), else None."""
        if self.enforce_rate is None:
            return None
        now = time.monotonic()
        with self._lock:
            while self._recent and now - self._recent[0] >= 1.0:
                self._recent.popleft()
            self._recent.append(now)
            n = len(self._recent)
        return n if n > self.enforce_rate else None

    def _rate_limited(self, n: int) -> Response:
        body = RATE_LIMIT_BODY % (n, int(self.enforce_rate or 0))
        return Response(429, body, {"Content-Type": "application/json", "Retry-After": "1"})

    def _matches(self, p: dict[str, str]) -> list[str]:
        lo = _parse_day(p["mindate"]) if p.get("mindate") else None
        hi = _end_day(p["maxdate"]) if p.get("maxdate") else None
        # Only the creation date is modelled (the client searches nothing else); records carry
        # one date, so every datetype filters on it.
        return [r.pmid for r in self.records if (lo is None or r.crdt >= lo) and (hi is None or r.crdt <= hi)]

    def _esearch(self, req: Request) -> Response:
        if (n := self._over_rate()) is not None:
            return self._rate_limited(n)
        p = req.params
        retmode = p.get("retmode", "xml")
        if p.get("db", "pubmed") != "pubmed":
            return self._esearch_error(retmode, f"Invalid db name specified: {p.get('db')}")
        if not p.get("term") and not p.get("query_key"):
            return self._esearch_error(retmode, "Empty term and query_key - nothing todo")
        ids = self._matches(p)
        retstart = int(p.get("retstart") or 0)
        retmax = int(p.get("retmax") if p.get("retmax") not in (None, "") else 20)
        if retstart > self.esearch_cap - 1 and ids:
            return self._esearch_error(
                retmode,
                f"Search Backend failed: Exception:\n'retstart' cannot be larger than {self.esearch_cap - 1}."
                " For PubMed, ESearch can only retrieve the first 9,999 records matching the query.",
            )
        page = ids[retstart : min(retstart + retmax, self.esearch_cap)]
        webenv = key = None
        if p.get("usehistory") == "y":
            webenv = p.get("WebEnv") or self._webenv
            with self._lock:
                key = str(next(self._keys))
                self._history[(webenv, key)] = ids
        if retmode == "json":
            r: dict[str, object] = {
                "count": str(len(ids)),
                "retmax": str(len(page)),
                "retstart": str(retstart),
            }
            if key:
                r["querykey"] = key
                r["webenv"] = webenv
            r.update({"idlist": page, "translationset": [], "querytranslation": p.get("term", "")})
            doc = {"header": {"type": "esearch", "version": "0.3"}, "esearchresult": r}
            return Response(200, json.dumps(doc, indent=2).encode(), {"Content-Type": "application/json"})
        hist = f"<QueryKey>{key}</QueryKey><WebEnv>{webenv}</WebEnv>" if key else ""
        body = (
            '<?xml version="1.0" encoding="UTF-8" ?>\n'
            '<!DOCTYPE eSearchResult PUBLIC "-//NLM//DTD esearch 20060628//EN"'
            ' "https://eutils.ncbi.nlm.nih.gov/eutils/dtd/20060628/esearch.dtd">\n'
            f"<eSearchResult><Count>{len(ids)}</Count><RetMax>{len(page)}</RetMax>"
            f"<RetStart>{retstart}</RetStart>{hist}<IdList>\n"
            + "".join(f"<Id>{i}</Id>\n" for i in page)
            + f"</IdList><TranslationSet/><QueryTranslation>{escape(p.get('term', ''))}</QueryTranslation>"
            "</eSearchResult>\n"
        )
        return Response(200, body.encode(), {"Content-Type": "text/xml; charset=UTF-8"})

    def _esearch_error(self, retmode: str, message: str) -> Response:
        # NCBI sends these with HTTP 200.
        if retmode == "json":
            doc = {"header": {"type": "esearch", "version": "0.3"}, "esearchresult": {"ERROR": message}}
            return Response(200, json.dumps(doc, indent=2).encode(), {"Content-Type": "application/json"})
        body = (
            '<?xml version="1.0" encoding="UTF-8" ?>\n<!DOCTYPE eSearchResult PUBLIC "-//NLM//DTD esearch'
            ' 20060628//EN" "https://eutils.ncbi.nlm.nih.gov/eutils/dtd/20060628/esearch.dtd">\n'
            f"<eSearchResult><ERROR>{escape(message)}</ERROR></eSearchResult>\n"
        )
        return Response(200, body.encode(), {"Content-Type": "text/xml; charset=UTF-8"})

    def _efetch_error(self, message: str) -> Response:
        body = (
            '<?xml version="1.0" encoding="UTF-8" ?>\n<eFetchResult>\n'
            f"\t<ERROR>{escape(message)}</ERROR>\n</eFetchResult>\n"
        )
        return Response(200, body.encode(), {"Content-Type": "text/xml; charset=UTF-8"})

    def _efetch(self, req: Request) -> Response:
        if (n := self._over_rate()) is not None:
            return self._rate_limited(n)
        p = req.params
        if p.get("db", "pubmed") != "pubmed":
            return Response(400, b"Invalid db", {"Content-Type": "text/plain"})
        if p.get("id"):
            ids = [i.strip() for i in p["id"].split(",") if i.strip()]
        elif p.get("WebEnv") and p.get("query_key"):
            with self._lock:
                found = self._history.get((p["WebEnv"], p["query_key"]))
            if found is None:
                return self._efetch_error(f"Unable to obtain query #{p['query_key']}")
            retstart = int(p.get("retstart") or 0)
            retmax = int(p.get("retmax") or 20)
            ids = found[retstart : retstart + retmax]
        else:
            return self._efetch_error("Empty id list - nothing todo")
        parts = [EFETCH_HEADER]
        for pmid in ids:
            rec = self._by_pmid.get(pmid)
            if rec is not None:
                parts.append(self._render(pmid) if self._render else rec.xml)
                parts.append(b"\n")
        parts.append(EFETCH_FOOTER)
        return Response(200, b"".join(parts), {"Content-Type": "text/xml; charset=UTF-8"})


# -- corpora -----------------------------------------------------------------------------------


def article_records(path: str | os.PathLike[str]) -> list[tuple[str, bytes]]:
    """(PMID, XML bytes) of every PubmedArticle in a PubMed XML file, without the DTD."""
    out: list[tuple[str, bytes]] = []
    for _ev, el in etree.iterparse(
        str(path), tag="PubmedArticle", resolve_entities=False, no_network=True, load_dtd=False
    ):
        pmid = (el.findtext("MedlineCitation/PMID") or "").strip()
        out.append((pmid, etree.tostring(el, encoding="unicode", with_tail=False).encode("utf-8")))
    return out


def corpus_from_files(
    paths: Sequence[str | os.PathLike[str]], *, start: date, per_day: int = 50
) -> list[CorpusRecord]:
    """Real fixture records, given creation dates `per_day` at a time from `start` on."""
    recs = [r for p in paths for r in article_records(p)]
    return [
        CorpusRecord(pmid, start + timedelta(days=i // per_day), xml) for i, (pmid, xml) in enumerate(recs)
    ]


def _template(xml: bytes) -> bytes:
    """A record with its PMID and its own DOI replaced by placeholders (references untouched)."""
    el = etree.fromstring(xml)
    pmid = el.find("MedlineCitation/PMID")
    if pmid is not None:
        pmid.text = "@@PMID@@"
    for aid in el.iterfind("PubmedData/ArticleIdList/ArticleId"):
        if aid.get("IdType") == "pubmed":
            aid.text = "@@PMID@@"
        elif aid.get("IdType") == "doi":
            aid.text = "10.99999/synthetic.@@PMID@@"
    for e in el.iterfind("MedlineCitation/Article/ELocationID"):
        if e.get("EIdType") == "doi":
            e.text = "10.99999/synthetic.@@PMID@@"
    return etree.tostring(el, encoding="unicode").encode("utf-8")


class SyntheticCorpus:
    """`n` CONSTRUCTED records: fixture records repeated under new PMIDs and DOIs (10.99999/...).

    Their content is real PubMed XML; only identifiers are rewritten, so the store never merges
    them. XML is rendered on demand (`render`), so 50,000 records cost a few MB, not 500.
    """

    def __init__(
        self,
        sources: Sequence[str | os.PathLike[str]],
        n: int,
        *,
        start: date,
        per_day: int = 500,
        first_pmid: int = 90_000_000,
    ) -> None:
        self.templates = [_template(xml) for p in sources for _pmid, xml in article_records(p)]
        self.first_pmid = first_pmid
        self.records = [
            CorpusRecord(str(first_pmid + i), start + timedelta(days=i // per_day), b"") for i in range(n)
        ]

    def render(self, pmid: str) -> bytes:
        """The XML of synthetic record `pmid`."""
        i = int(pmid) - self.first_pmid
        return self.templates[i % len(self.templates)].replace(b"@@PMID@@", pmid.encode())

    def materialise(self) -> list[CorpusRecord]:
        """Every record with its XML (for small corpora)."""
        return [CorpusRecord(r.pmid, r.crdt, self.render(r.pmid)) for r in self.records]


def synthetic_corpus(
    sources: Sequence[str | os.PathLike[str]],
    n: int,
    *,
    start: date,
    per_day: int = 500,
    first_pmid: int = 90_000_000,
) -> list[CorpusRecord]:
    """`n` CONSTRUCTED records with their XML (see SyntheticCorpus)."""
    return SyntheticCorpus(sources, n, start=start, per_day=per_day, first_pmid=first_pmid).materialise()


def efetch_document(records: Iterable[bytes | CorpusRecord]) -> bytes:
    """An EFetch-format PubmedArticleSet holding `records`."""
    parts = [EFETCH_HEADER]
    for r in records:
        parts.append(r.xml if isinstance(r, CorpusRecord) else r)
        parts.append(b"\n")
    parts.append(EFETCH_FOOTER)
    return b"".join(parts)


def default_fixture_paths() -> list[Path]:
    """The real PubMed fixture files shipped with the tests (for the demo and benchmarks)."""
    root = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "pubmed"
    return sorted(p for p in root.glob("*.xml") if not p.name.startswith("constructed"))
