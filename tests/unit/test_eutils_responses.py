"""Pure E-utilities helpers: reading ESearch/EFetch bodies, date windows, back-off."""

from __future__ import annotations

import itertools
from datetime import date
from email.utils import formatdate
from pathlib import Path

import pytest

from lupus_alerts.eutils import (
    EutilsResponseError,
    TruncatedBody,
    backoff_delay,
    batches_needed,
    check_efetch,
    count_records,
    esearch_params,
    parse_esearch,
    retry_after_seconds,
    split_days_into,
)

EUTILS = Path(__file__).parent.parent / "fixtures" / "eutils"
PUBMED = Path(__file__).parent.parent / "fixtures" / "pubmed"


def test_esearch_json_with_history() -> None:
    r = parse_esearch((EUTILS / "factoid_esearch_unique_term.json").read_bytes())
    assert (r.count, r.ids, r.query_key) == (1, ["29440426"], "1")
    assert r.webenv == "NCID_1_109057525_130.14.22.76_9001_1572460357_1321674198_0MetA0_S_MegaStore"


def test_esearch_xml_with_history() -> None:
    r = parse_esearch((EUTILS / "bioperl_esearch2_webenv.xml").read_bytes())
    assert (r.count, r.retmax, r.retstart, r.query_key) == (534, 20, 0, "1")
    assert r.ids[:2] == ["6679096", "31543332"] and len(r.ids) == 20
    assert r.webenv and r.webenv.startswith("00m7eJh8")


def test_esearch_xml_without_history() -> None:
    r = parse_esearch((EUTILS / "biopython_esearch1.xml").read_bytes())
    assert (r.count, len(r.ids), r.webenv, r.query_key) == (63, 20, None, None)


def test_json_error_with_http_200_is_an_error_not_an_empty_result() -> None:
    with pytest.raises(EutilsResponseError, match="Empty term and query_key"):
        parse_esearch((EUTILS / "factoid_esearch_undefined_term.json").read_bytes())


def test_xml_errorlist_is_an_error_not_an_empty_result() -> None:
    with pytest.raises(EutilsResponseError, match="PhraseNotFound: abcXYZ"):
        parse_esearch((EUTILS / "biopython_esearch8.xml").read_bytes())


def test_rate_limit_body_is_an_error() -> None:
    with pytest.raises(EutilsResponseError, match="API rate limit exceeded"):
        parse_esearch((EUTILS / "ncbi_rate_limit_429_observed_rentrez_issue132.json").read_bytes())


def test_json_errorlist_only_counts_when_it_lists_something() -> None:
    body = (
        b'{"esearchresult": {"count": "0", "idlist": [],'
        b' "errorlist": {"phrasesnotfound": [], "fieldsnotfound": []}}}'
    )
    assert parse_esearch(body).count == 0
    bad = b'{"esearchresult": {"count": "0", "idlist": [], "errorlist": {"phrasesnotfound": ["zzz"]}}}'
    with pytest.raises(EutilsResponseError, match="zzz"):
        parse_esearch(bad)


@pytest.mark.parametrize(
    "body", [b"", b"<html>Bad Gateway</html>", b"{not json", b"<eSearchResult><RetMax>0</RetMax>"]
)
def test_unreadable_esearch_bodies_raise(body: bytes) -> None:
    with pytest.raises(EutilsResponseError):
        parse_esearch(body)


def test_efetch_real_document_passes() -> None:
    data = (PUBMED / "fatcat_pubmedsample_2019.xml").read_bytes()
    assert check_efetch(data) is data
    assert count_records(data) == 176


def test_efetch_error_body_raises() -> None:
    body = (
        b'<?xml version="1.0" encoding="UTF-8" ?>\n<eFetchResult>\n'
        b"\t<ERROR>Unable to obtain query #1</ERROR>\n</eFetchResult>\n"
    )
    with pytest.raises(EutilsResponseError, match="Unable to obtain query #1"):
        check_efetch(body)
    with pytest.raises(EutilsResponseError, match="API key invalid"):
        check_efetch(b'{"error":"API key invalid","api-key":"x","type":"invalid"}')


def test_efetch_truncated_body_is_detected() -> None:
    data = (PUBMED / "biopython_pubmed2.xml").read_bytes()
    with pytest.raises(TruncatedBody):
        check_efetch(data[: len(data) // 2])


def test_esearch_params_use_creation_date_and_history() -> None:
    p = esearch_params("lupus", mindate=date(2024, 1, 2), maxdate=date(2024, 1, 9))
    assert p["datetype"] == "crdt" and p["usehistory"] == "y"
    assert (p["mindate"], p["maxdate"]) == ("2024/01/02", "2024/01/09")


@pytest.mark.parametrize(
    ("start", "end", "parts"),
    [
        (date(2024, 1, 1), date(2024, 1, 2), 2),
        (date(2020, 1, 1), date(2024, 12, 31), 7),
        (date(2024, 2, 1), date(2024, 2, 4), 3),
        (date(2024, 2, 1), date(2024, 2, 3), 10),  # more parts than days: one day each
    ],
)
def test_split_days_into_covers_the_range_without_gaps_or_overlap(start: date, end: date, parts: int) -> None:
    got = split_days_into(start, end, parts)
    assert got[0][0] == start and got[-1][1] == end
    assert len(got) == min(parts, (end - start).days + 1)
    for (_a0, a1), (b0, _b1) in itertools.pairwise(got):
        assert (b0 - a1).days == 1
    sizes = [(b - a).days + 1 for a, b in got]
    assert max(sizes) - min(sizes) <= 1


def test_one_part_is_the_whole_range() -> None:
    assert split_days_into(date(2024, 1, 1), date(2024, 1, 9), 1) == [(date(2024, 1, 1), date(2024, 1, 9))]


def test_retry_after_in_seconds_and_http_date() -> None:
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(formatdate(1_000_010, usegmt=True), now=1_000_000) == pytest.approx(10.0)


def test_backoff_grows_is_jittered_and_honours_retry_after() -> None:
    delays = [backoff_delay(4, base=1.0, cap=60.0) for _ in range(200)]
    assert max(delays) <= 16.0 and min(delays) >= 0.0
    assert len({round(d, 6) for d in delays}) > 100  # jittered
    assert all(backoff_delay(0, base=0.01, cap=60.0, retry_after=2.0) >= 2.0 for _ in range(20))


def test_batches_needed() -> None:
    assert [batches_needed(n, 500) for n in (0, 1, 500, 501, 50_000)] == [0, 1, 1, 2, 100]
