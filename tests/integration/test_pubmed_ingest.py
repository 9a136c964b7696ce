"""PubMed ingest: watermark windows and a whole window searched, fetched, parsed and stored."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from factories import make_settings

from lupus_alerts import pipeline, store
from lupus_alerts.config import Settings
from lupus_alerts.eutils import EutilsClient
from lupus_alerts.pubmed import WATERMARK_NAME, ingest_window, search_window
from lupus_alerts.ratelimit import RateLimiter
from lupus_alerts.testing.eutils_replay import EutilsReplay, corpus_from_files, efetch_document

PUBMED = Path(__file__).parent.parent / "fixtures" / "pubmed"
START = date(2024, 3, 1)


def test_a_fresh_stores_pubmed_search_is_the_lookback_widened_by_the_overlap(engine: sa.Engine) -> None:
    # The path a manual run takes: the run's window, PubMed's own window, then the overlap.
    settings = make_settings(pubmed={"initial_lookback_days": 3, "overlap_days": 7})
    end = datetime(2024, 3, 10, 5, 0)
    run = pipeline.run_window(None, None, end, engine, settings)
    source = pipeline.source_window(engine, settings, run, "pubmed")
    assert search_window(source.start, source.end, settings.pubmed.overlap_days) == (
        datetime(2024, 2, 29, 5, 0),
        end,
    )


def test_search_starts_at_the_pubmed_watermark_minus_overlap_and_reruns_agree(engine: sa.Engine) -> None:
    settings = make_settings(pubmed={"initial_lookback_days": 3, "overlap_days": 7})
    store.advance_watermark(engine, pipeline.RUN_WATERMARK, datetime(2024, 3, 9, 5, 0))
    store.advance_watermark(engine, WATERMARK_NAME, datetime(2024, 3, 9, 5, 0))
    end = datetime(2024, 3, 10, 5, 0)

    def search() -> tuple[datetime, datetime]:
        run = pipeline.run_window(None, None, end, engine, settings)
        source = pipeline.source_window(engine, settings, run, "pubmed")
        return search_window(source.start, source.end, settings.pubmed.overlap_days)

    assert search() == search() == (datetime(2024, 3, 2, 5, 0), end)


def test_aware_times_are_searched_as_utc() -> None:
    start = datetime(2024, 3, 10, 6, 0, tzinfo=UTC)
    end = datetime(2024, 3, 11, 19, 0, tzinfo=timezone(timedelta(hours=13)))
    assert search_window(start, end, 0) == (datetime(2024, 3, 10, 6, 0), datetime(2024, 3, 11, 6, 0))
    with pytest.raises(ValueError, match="overlap_days"):
        search_window(start, end, -1)


def _settings(replay: EutilsReplay, tmp_path: Path) -> Settings:
    return make_settings(
        data_dir=str(tmp_path), pubmed={"base_url": replay.base_url, "batch_size": 50, "overlap_days": 2}
    )


def _client(settings: Settings, tmp_path: Path) -> EutilsClient:
    return EutilsClient.from_settings(
        settings.pubmed, limiter=RateLimiter(500, name="ingest", directory=tmp_path), backoff_base_s=0.01
    )


def test_ingest_window_stores_every_record_once_and_reruns_change_nothing(
    engine: sa.Engine, tmp_path: Path
) -> None:
    corpus = corpus_from_files(
        [PUBMED / "fatcat_pubmedsample_2019.xml", PUBMED / "biopython_pubmed2.xml"], start=START, per_day=30
    )
    with EutilsReplay(corpus) as replay:
        settings = _settings(replay, tmp_path)
        end = datetime(2024, 3, 7, 5, 0)  # with the 2-day overlap the search covers Feb 28 .. Mar 7
        with _client(settings, tmp_path) as c:
            first = ingest_window(settings, engine, start=datetime(2024, 3, 2, 5), end=end, client=c)
            again = ingest_window(settings, engine, start=datetime(2024, 3, 2, 5), end=end, client=c)
        esearch = replay.requests_to("esearch")
    assert (first["search_start"], first["search_end"]) == ("2024-02-29", "2024-03-07")
    assert (esearch[0].params["mindate"], esearch[0].params["maxdate"]) == ("2024/02/29", "2024/03/07")
    in_window = [r for r in corpus if r.crdt <= date(2024, 3, 7)]
    assert first["hits"] == first["fetched"] == first["parsed"] == len(in_window) == 178
    assert first["problem_count"] == 0 and first["problems"] == []
    assert first["requests"] == 1 + 4  # ceil(178 / 50)
    with engine.connect() as conn:
        sources = conn.execute(sa.select(sa.func.count()).select_from(store.paper_sources)).scalar()
        papers = conn.execute(sa.select(sa.func.count()).select_from(store.papers)).scalar()
    assert sources == 178
    # 11034741 and 11406024 are two versions of one Cochrane review sharing the DOI
    # 10.1002/14651858.CD002020: the store keeps them as one paper.
    assert papers == first["new"] == 177
    assert again["new"] == 0 and again["updated"] == 0 and again["unchanged"] > 0
    assert store.read_watermark(engine, WATERMARK_NAME) == end


def test_failed_ingest_leaves_the_watermark_alone(engine: sa.Engine, tmp_path: Path) -> None:
    from lupus_alerts.eutils import EutilsHTTPError
    from lupus_alerts.testing.replay import Fault

    corpus = corpus_from_files([PUBMED / "biopython_pubmed1.xml"], start=START)
    with EutilsReplay(corpus) as replay:
        settings = _settings(replay, tmp_path)
        replay.server.inject("/entrez/eutils/efetch.fcgi", Fault(status=403, body=b"forbidden"))
        with _client(settings, tmp_path) as c, pytest.raises(EutilsHTTPError):
            ingest_window(settings, engine, start=datetime(2024, 3, 1), end=datetime(2024, 3, 2), client=c)
    assert store.read_watermark(engine, WATERMARK_NAME) is None


def test_unreadable_records_are_reported_not_fatal(engine: sa.Engine, tmp_path: Path) -> None:
    from lupus_alerts.testing.eutils_replay import CorpusRecord

    good = corpus_from_files([PUBMED / "biopython_pubmed1.xml"], start=START)
    # CONSTRUCTED: a record whose PMID element is empty
    bad = CorpusRecord(
        "99999999",
        START,
        b"<PubmedArticle><MedlineCitation><PMID/><Article><ArticleTitle>x</ArticleTitle></Article>"
        b"</MedlineCitation></PubmedArticle>",
    )
    with EutilsReplay([*good, bad]) as replay:
        settings = _settings(replay, tmp_path)
        with _client(settings, tmp_path) as c:
            summary = ingest_window(
                settings, engine, start=datetime(2024, 3, 1), end=datetime(2024, 3, 1), client=c
            )
    assert summary["fetched"] == 3 and summary["parsed"] == 2
    assert summary["problem_count"] == 1
    assert summary["problems"] == [{"pmid": None, "reason": "PubmedParseError: record has no PMID"}]


def test_efetch_document_is_what_the_parser_reads() -> None:
    corpus = corpus_from_files([PUBMED / "biopython_pubmed2.xml"], start=START)
    from lupus_alerts.pubmed import parse_pubmed_bytes

    papers, _deleted, problems = parse_pubmed_bytes(efetch_document(corpus))
    assert [p.pmid for p in papers] == [r.pmid for r in corpus] and not problems
    assert START + timedelta(days=0) == corpus[0].crdt


def test_records_missing_from_the_fetch_are_reported(engine: sa.Engine, tmp_path: Path) -> None:
    corpus = corpus_from_files([PUBMED / "biopython_pubmed2.xml"], start=START)
    with EutilsReplay(corpus) as replay:
        replay.withdraw(corpus[0].pmid)
        settings = _settings(replay, tmp_path)
        with _client(settings, tmp_path) as c:
            summary = ingest_window(
                settings, engine, start=datetime(2024, 3, 1), end=datetime(2024, 3, 1), client=c
            )
    assert (summary["hits"], summary["fetched"], summary["parsed"]) == (2, 1, 1)
    assert summary["problems"] == [{"pmid": None, "reason": "ESearch counted 2 records, EFetch returned 1"}]
