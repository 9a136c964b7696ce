"""The E-utilities client against the E-utilities replay server, over real sockets."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

import pytest
import requests

from lupus_alerts.eutils import (
    EutilsClient,
    EutilsHTTPError,
    EutilsResponseError,
    EutilsTransportError,
    WindowTruncatedError,
    count_records,
)
from lupus_alerts.models import Paper
from lupus_alerts.pubmed import parse_pubmed
from lupus_alerts.ratelimit import RateLimiter
from lupus_alerts.testing.eutils_replay import CorpusRecord, EutilsReplay, corpus_from_files
from lupus_alerts.testing.replay import Fault

PUBMED = Path(__file__).parent.parent / "fixtures" / "pubmed"
REAL_FILES = [
    PUBMED / "fatcat_pubmedsample_2019.xml",
    PUBMED / "biopython_pubmed1.xml",
    PUBMED / "biopython_pubmed2.xml",
    PUBMED / "fatcat_pubmed_19129924_fragment.xml",
]
START = date(2024, 1, 1)


@pytest.fixture(scope="module")
def corpus() -> list[CorpusRecord]:
    return corpus_from_files(REAL_FILES, start=START, per_day=20)  # 181 records over 10 days


@pytest.fixture
def replay(corpus: list[CorpusRecord]) -> Iterator[EutilsReplay]:
    with EutilsReplay(corpus) as r:
        yield r


def make_client(replay: EutilsReplay, tmp_path: Path, *, rate: float = 200.0, **kw: Any) -> EutilsClient:
    defaults: dict[str, Any] = {
        "base_url": replay.base_url,
        "email": "ops@example.org",
        "batch_size": 50,
        "timeout_s": 2.0,
        "max_retries": 4,
        "backoff_base_s": 0.01,
        "backoff_cap_s": 0.2,
        "limiter": RateLimiter(rate, name="test", directory=tmp_path),
    }
    defaults.update(kw)
    return EutilsClient(**defaults)


def pmids(bodies: list[bytes]) -> list[str]:
    return [p.pmid for b in bodies for p in parse_pubmed(b) if isinstance(p, Paper)]


def tiny_corpus(n: int, days: int, first_pmid: int = 50_000_000) -> list[CorpusRecord]:
    """CONSTRUCTED minimal records (PMID and title only) for tests that need many records."""
    out = []
    for i in range(n):
        pmid = str(first_pmid + i)
        xml = (
            f'<PubmedArticle><MedlineCitation><PMID Version="1">{pmid}</PMID><Article>'
            f"<ArticleTitle>Constructed record {pmid}.</ArticleTitle></Article></MedlineCitation>"
            f"</PubmedArticle>"
        ).encode()
        out.append(CorpusRecord(pmid, START + timedelta(days=i % days), xml))
    return out


def test_a_window_costs_one_esearch_and_ceil_n_over_batch_efetches(
    replay: EutilsReplay, corpus: list[CorpusRecord], tmp_path: Path
) -> None:
    with make_client(replay, tmp_path) as c:
        bodies = list(c.fetch_window("lupus", START, START + timedelta(days=30)))
    assert sorted(pmids(bodies)) == sorted(r.pmid for r in corpus)
    assert len(replay.requests_to("esearch")) == 1
    assert len(replay.requests_to("efetch")) == 4  # ceil(181 / 50)
    assert c.requests_made == 5


def test_requests_carry_identity_dates_and_history(replay: EutilsReplay, tmp_path: Path) -> None:
    with make_client(replay, tmp_path, api_key="k3y", tool="lupus-test") as c:
        list(c.fetch_window("lupus nephritis", date(2024, 1, 2), date(2024, 1, 3)))
    (s,) = replay.requests_to("esearch")
    p = s.params
    assert (p["tool"], p["email"], p["api_key"]) == ("lupus-test", "ops@example.org", "k3y")
    assert (p["datetype"], p["mindate"], p["maxdate"], p["usehistory"]) == (
        "crdt",
        "2024/01/02",
        "2024/01/03",
        "y",
    )
    assert p["term"] == "lupus nephritis"
    f = replay.requests_to("efetch")[0].params
    assert f["WebEnv"] and f["query_key"] == "1" and f["retmode"] == "xml" and f["retstart"] == "0"


def test_only_the_windows_days_are_fetched(
    replay: EutilsReplay, corpus: list[CorpusRecord], tmp_path: Path
) -> None:
    lo, hi = date(2024, 1, 3), date(2024, 1, 4)
    with make_client(replay, tmp_path) as c:
        got = pmids(list(c.fetch_window("lupus", lo, hi)))
    assert sorted(got) == sorted(r.pmid for r in corpus if lo <= r.crdt <= hi)
    assert len(got) == 40


def test_an_empty_window_fetches_nothing(replay: EutilsReplay, tmp_path: Path) -> None:
    with make_client(replay, tmp_path) as c:
        assert list(c.fetch_window("lupus", date(2030, 1, 1), date(2030, 1, 7))) == []
    assert len(replay.requests_to("efetch")) == 0


def test_429_storm_recovers_honouring_retry_after(replay: EutilsReplay, tmp_path: Path) -> None:
    body = (
        Path(__file__).parent.parent
        / "fixtures"
        / "eutils"
        / "ncbi_rate_limit_429_observed_rentrez_issue132.json"
    )
    replay.server.inject(
        "/entrez/eutils/esearch.fcgi", Fault(status=429, retry_after="1", body=body.read_bytes()), 2
    )
    with make_client(replay, tmp_path) as c:
        got = pmids(list(c.fetch_window("lupus", START, START)))
    assert len(got) == 20
    times = [r.time for r in replay.requests_to("esearch")]
    assert len(times) == 3
    assert times[1] - times[0] >= 0.95 and times[2] - times[1] >= 0.95  # waited Retry-After


@pytest.mark.parametrize(
    "fault",
    [
        Fault(status=500),
        Fault(status=502),
        Fault(status=503, retry_after="0"),
        Fault(delay=0.8),  # longer than the client's 0.5 s timeout
        Fault(truncate_to=3000),  # the connection drops mid-body
    ],
    ids=["500", "502", "503", "timeout", "truncated"],
)
def test_transient_efetch_failures_are_retried(replay: EutilsReplay, tmp_path: Path, fault: Fault) -> None:
    replay.server.inject("/entrez/eutils/efetch.fcgi", fault, 2)
    with make_client(replay, tmp_path, timeout_s=0.5) as c:
        got = pmids(list(c.fetch_window("lupus", START, START)))
    assert len(got) == 20
    assert len(replay.requests_to("efetch")) == 3


def test_400_is_not_retried(replay: EutilsReplay, tmp_path: Path) -> None:
    replay.server.inject("/entrez/eutils/efetch.fcgi", Fault(status=400, body=b"Bad Request"), 1)
    with make_client(replay, tmp_path) as c, pytest.raises(EutilsHTTPError) as err:
        list(c.fetch_window("lupus", START, START))
    assert err.value.status == 400
    assert len(replay.requests_to("efetch")) == 1


def test_retries_run_out(replay: EutilsReplay, tmp_path: Path) -> None:
    replay.server.inject("/entrez/eutils/esearch.fcgi", Fault(status=503), 10)
    with make_client(replay, tmp_path, max_retries=2) as c, pytest.raises(EutilsHTTPError) as err:
        c.esearch("lupus", mindate=START, maxdate=START)
    assert err.value.status == 503
    assert len(replay.requests_to("esearch")) == 3


def test_timeouts_that_never_end_raise_a_transport_error(replay: EutilsReplay, tmp_path: Path) -> None:
    replay.server.inject("/entrez/eutils/esearch.fcgi", Fault(delay=0.6), 5)
    with (
        make_client(replay, tmp_path, timeout_s=0.3, max_retries=1) as c,
        pytest.raises(EutilsTransportError),
    ):
        c.esearch("lupus")


def test_error_body_with_http_200_is_raised_not_retried(replay: EutilsReplay, tmp_path: Path) -> None:
    with make_client(replay, tmp_path) as c, pytest.raises(EutilsResponseError, match="Empty term"):
        c.esearch("")
    assert len(replay.requests_to("esearch")) == 1


def test_lost_history_is_an_error(replay: EutilsReplay, tmp_path: Path) -> None:
    with (
        make_client(replay, tmp_path) as c,
        pytest.raises(EutilsResponseError, match="Unable to obtain query"),
    ):
        c.efetch_history("MCID_unknown", "1", retstart=0, retmax=10)


@pytest.mark.parametrize("retmode", ["json", "xml"])
def test_esearch_both_formats(replay: EutilsReplay, tmp_path: Path, retmode: Literal["json", "xml"]) -> None:
    with make_client(replay, tmp_path) as c:
        r = c.esearch("lupus", mindate=START, maxdate=START + timedelta(days=1), retmax=5, retmode=retmode)
    assert (r.count, len(r.ids), r.query_key) == (40, 5, "1")
    assert r.webenv


def test_every_request_is_posted_with_identity_in_the_body(
    replay: EutilsReplay, corpus: list[CorpusRecord], tmp_path: Path
) -> None:
    ids = [r.pmid for r in corpus] + [str(90_000_000 + i) for i in range(100)]  # 100 unknown PMIDs
    with make_client(replay, tmp_path) as c:
        body = c.efetch_ids(ids)
        short = c.efetch_ids(ids[:3])
    assert count_records(body) == len(corpus)
    assert count_records(short) == 3
    # Long and short id lists alike: a POST keeps the key out of URLs (and so out of logs).
    assert [(r.method, r.query) for r in replay.requests_to("efetch")] == [("POST", {}), ("POST", {})]


def test_the_rate_never_exceeds_the_limit_across_concurrent_clients(
    corpus: list[CorpusRecord], tmp_path: Path
) -> None:
    # Two "tasks" share the machine-wide 10/s schedule; the server measures arrival times.
    with EutilsReplay(corpus, enforce_rate=10) as replay:
        errors: list[BaseException] = []

        def task() -> None:
            try:
                with make_client(replay, tmp_path, rate=10.0, batch_size=20) as c:
                    list(c.fetch_window("lupus", START, START + timedelta(days=9)))
            except BaseException as e:  # surfaced below
                errors.append(e)

        threads = [threading.Thread(target=task) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        times = sorted(r.time for r in replay.server.requests)
    assert len(times) == 2 * (1 + 10)  # no 429 was provoked, so no retries either
    for i in range(len(times)):
        in_one_second = [t for t in times[i:] if t - times[i] < 1.0]
        assert len(in_one_second) <= 10


def test_window_at_the_cap_is_split_by_days(tmp_path: Path) -> None:
    corpus = tiny_corpus(12_000, days=4)  # 3,000 a day: the 4-day window exceeds 9,999
    with EutilsReplay(corpus) as replay, make_client(replay, tmp_path, rate=2000.0, batch_size=2000) as c:
        results = list(c.search_windows("lupus", START, START + timedelta(days=3)))
        assert [(r.mindate, r.maxdate, r.count, len(r.ids)) for r in results] == [
            (START, START + timedelta(days=1), 6000, 6000),
            (START + timedelta(days=2), START + timedelta(days=3), 6000, 6000),
        ]
        replay.server.requests.clear()
        got = pmids(list(c.fetch_window("lupus", START, START + timedelta(days=3))))
        # the whole window, then its two parts; EFetch stays ceil(12,000 / 2,000), by POST
        assert len(replay.requests_to("esearch")) == 3
        assert [r.method for r in replay.requests_to("efetch")] == ["POST"] * 6
    assert len(got) == len(set(got)) == 12_000


def test_uneven_windows_are_cut_again(tmp_path: Path) -> None:
    # CONSTRUCTED: 11,000 records on the first of 10 days, 100 on each of the others.
    corpus = tiny_corpus(11_000, days=1) + tiny_corpus(900, days=9, first_pmid=60_000_000)
    corpus = [
        CorpusRecord(r.pmid, r.crdt + timedelta(days=1), r.xml) if int(r.pmid) >= 60_000_000 else r
        for r in corpus
    ]
    with EutilsReplay(corpus) as replay, make_client(replay, tmp_path, rate=2000.0, batch_size=1000) as c:
        got = pmids(list(c.fetch_window("lupus", START, START + timedelta(days=9))))
    assert len(got) == len(set(got)) == 11_900


def test_a_single_day_over_the_cap_is_paged_past_9999(tmp_path: Path) -> None:
    corpus = tiny_corpus(10_500, days=1)
    with EutilsReplay(corpus) as replay, make_client(replay, tmp_path, rate=2000.0, batch_size=500) as c:
        got = pmids(list(c.fetch_window("lupus", START, START)))
        assert len(replay.requests_to("esearch")) == 1
        assert len(replay.requests_to("efetch")) == 21
    assert len(got) == len(set(got)) == 10_500


def test_replay_esearch_refuses_ids_past_the_cap(tmp_path: Path) -> None:
    with EutilsReplay(tiny_corpus(10_050, days=1)) as replay:
        r = requests.get(
            replay.base_url + "esearch.fcgi", params={"term": "x", "retstart": "9999", "retmode": "json"}
        )
        ok = requests.get(
            replay.base_url + "esearch.fcgi", params={"term": "x", "retmax": "100000", "retmode": "json"}
        )
    assert r.status_code == 200 and "ERROR" in r.json()["esearchresult"]
    assert len(ok.json()["esearchresult"]["idlist"]) == 9999


def test_a_server_that_stops_paging_is_not_taken_for_the_end(tmp_path: Path) -> None:
    corpus = tiny_corpus(300, days=1)
    with EutilsReplay(corpus) as replay, make_client(replay, tmp_path, batch_size=100) as c:
        r = c.esearch("lupus", mindate=START, maxdate=START)
        r.count = 400  # ESearch counted records that EFetch does not return
        with pytest.raises(WindowTruncatedError):
            list(c.fetch_history(r))


def test_prefetch_yields_the_same_bodies_and_raises_errors_in_the_reader(
    replay: EutilsReplay, corpus: list[CorpusRecord], tmp_path: Path
) -> None:
    with make_client(replay, tmp_path) as c:
        got = pmids(list(c.prefetch_window("lupus", START, START + timedelta(days=9))))
    assert sorted(got) == sorted(r.pmid for r in corpus)
    # EFetch starts refusing after the first batch (19 batches of 10; the prefetcher is at most
    # a few ahead): the reader gets the error, not a short result.
    with make_client(replay, tmp_path, batch_size=10) as c:
        it = c.prefetch_window("lupus", START, START + timedelta(days=9))
        first = next(it)
        replay.server.inject("/entrez/eutils/efetch.fcgi", Fault(status=404, body=b"gone"), 10)
        with pytest.raises(EutilsHTTPError):
            for _ in it:
                pass
    assert count_records(first) == 10


def test_a_client_faster_than_the_server_allows_rides_out_the_429_storm(
    corpus: list[CorpusRecord], tmp_path: Path
) -> None:
    # The client believes it may send 50/s; the server allows 5/s and answers the rest with
    # NCBI's 429 body and Retry-After: 1. Every record still arrives, each exactly once.
    with EutilsReplay(corpus, enforce_rate=5) as replay:
        with make_client(replay, tmp_path, rate=50.0, batch_size=20, max_retries=8) as c:
            got = pmids(list(c.fetch_window("lupus", START, START + timedelta(days=9))))
        served = len(replay.server.requests)
    assert sorted(got) == sorted(r.pmid for r in corpus)
    assert c.calls == {"esearch": 1, "efetch": 10}
    assert served > 11  # some requests were refused and retried
