"""L9: a PubMed record past the parser's limits costs that record, never its batch or the window.

libxml2 (without XML_PARSE_HUGE, which stays off) refuses a document nested deeper than 256
levels or with a text node over 10 MB. Such a record used to end the parse of its EFetch batch:
the records after it were dropped, and the watermark advanced past them all the same.

The records here are the real fixture records of tests/fixtures/pubmed; the hostile ones are
real records with their title made hostile (CONSTRUCTED from them, in the test).
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from factories import make_settings

from lupus_alerts import pipeline, store
from lupus_alerts.config import Settings
from lupus_alerts.eutils import EutilsClient
from lupus_alerts.models import Paper
from lupus_alerts.pubmed import WATERMARK_NAME, ParseProblem, ingest_window, parse_pubmed
from lupus_alerts.ratelimit import RateLimiter
from lupus_alerts.testing.eutils_replay import CorpusRecord, EutilsReplay, article_records, efetch_document

PUBMED = Path(__file__).parent.parent / "fixtures" / "pubmed"
RECORDS = article_records(PUBMED / "fatcat_pubmedsample_2019.xml")[:40]
START = date(2024, 3, 1)


def _deep(xml: bytes, levels: int = 300) -> bytes:
    return xml.replace(
        b"</ArticleTitle>", b"<i>" * levels + b"deep" + b"</i>" * levels + b"</ArticleTitle>", 1
    )


def _huge(xml: bytes) -> bytes:
    return xml.replace(b"</ArticleTitle>", b" " + b"a" * 10_000_001 + b"</ArticleTitle>", 1)


HOSTILE = {"deeper-than-256": _deep, "text-node-over-10-mb": _huge}


def _batch(bad_at: dict[int, str]) -> tuple[bytes, list[str], list[str]]:
    """An EFetch body of the 40 records with the ones at `bad_at` made hostile."""
    body = [HOSTILE[bad_at[i]](xml) if i in bad_at else xml for i, (_pmid, xml) in enumerate(RECORDS)]
    good = [pmid for i, (pmid, _x) in enumerate(RECORDS) if i not in bad_at]
    bad = [pmid for i, (pmid, _x) in enumerate(RECORDS) if i in bad_at]
    return efetch_document(body), good, bad


@pytest.mark.parametrize("kind", sorted(HOSTILE))
@pytest.mark.parametrize("at", [0, 17, 39])
def test_a_record_past_the_limits_is_skipped_and_reported_and_the_rest_is_read(kind: str, at: int) -> None:
    body, good, bad = _batch({at: kind})
    items = list(parse_pubmed(body))
    assert [p.pmid for p in items if isinstance(p, Paper)] == good
    (problem,) = [p for p in items if isinstance(p, ParseProblem)]
    assert problem.pmid == bad[0]
    assert ("256" in problem.reason) if kind == "deeper-than-256" else ("too long" in problem.reason)


def test_two_bad_records_in_one_batch_cost_two_records() -> None:
    body, good, bad = _batch({3: "deeper-than-256", 30: "text-node-over-10-mb"})
    items = list(parse_pubmed(body))
    assert [p.pmid for p in items if isinstance(p, Paper)] == good
    assert [p.pmid for p in items if isinstance(p, ParseProblem)] == bad


def test_255_levels_are_still_read() -> None:
    # The limit is libxml2's own (256 with the record's own nesting): a record well within it parses.
    body, good, _bad = _batch({})
    deep_ok = body.replace(b"</ArticleTitle>", b"<i>" * 200 + b"ok" + b"</i>" * 200 + b"</ArticleTitle>", 1)
    papers = [p for p in parse_pubmed(deep_ok) if isinstance(p, Paper)]
    assert [p.pmid for p in papers] == good and papers[0].title.endswith("ok")


def test_garbage_between_records_is_reported_and_every_record_read() -> None:
    body, good, _bad = _batch({})
    broken = body.replace(b"</PubmedArticle>", b"</PubmedArticle>\n<oops></PubmedArticleSet>", 1)
    items = list(parse_pubmed(broken))
    assert [p.pmid for p in items if isinstance(p, Paper)] == good
    assert [type(p) for p in items if not isinstance(p, Paper)] == [ParseProblem]


# -- the watermark -----------------------------------------------------------------------------


def _settings(replay: EutilsReplay, tmp_path: Path) -> Settings:
    return make_settings(
        data_dir=str(tmp_path),
        store_url=f"sqlite:///{tmp_path / 'store.db'}",
        pubmed={"base_url": replay.base_url, "batch_size": 20, "overlap_days": 0},
    )


def _client(settings: Settings, tmp_path: Path) -> EutilsClient:
    return EutilsClient.from_settings(
        settings.pubmed, limiter=RateLimiter(500, name="l9", directory=tmp_path), backoff_base_s=0.01
    )


def _corpus(bad_at: dict[int, str]) -> list[CorpusRecord]:
    return [
        CorpusRecord(pmid, START, HOSTILE[bad_at[i]](xml) if i in bad_at else xml)
        for i, (pmid, xml) in enumerate(RECORDS)
    ]


def _stored_pmids(engine: sa.Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(sa.select(store.papers.c.pmid)).scalars())


def test_the_watermark_never_passes_a_record_that_was_not_stored(engine: sa.Engine, tmp_path: Path) -> None:
    run = {"start": datetime(2024, 3, 1), "end": datetime(2024, 3, 2)}
    with EutilsReplay(_corpus({5: "deeper-than-256"})) as replay:
        settings = _settings(replay, tmp_path)
        with _client(settings, tmp_path) as c:
            summary = ingest_window(settings, engine, client=c, **run)
    bad = RECORDS[5][0]
    assert _stored_pmids(engine) == {pmid for pmid, _x in RECORDS} - {bad}
    assert summary["unstored"] == 1 and summary["watermark"] is None
    assert [p["pmid"] for p in summary["problems"]] == [bad]
    assert store.read_watermark(engine, WATERMARK_NAME) is None

    # Once PubMed serves the record readably, the same window stores it and the mark moves.
    with EutilsReplay(_corpus({})) as replay:
        settings = _settings(replay, tmp_path)
        with _client(settings, tmp_path) as c:
            again = ingest_window(settings, engine, client=c, **run)
    assert bad in _stored_pmids(engine)
    assert again["unstored"] == 0 and store.read_watermark(engine, WATERMARK_NAME) == datetime(2024, 3, 2)


def test_a_record_withdrawn_between_search_and_fetch_holds_the_watermark(
    engine: sa.Engine, tmp_path: Path
) -> None:
    with EutilsReplay(_corpus({})) as replay:
        replay.withdraw(RECORDS[0][0])
        settings = _settings(replay, tmp_path)
        with _client(settings, tmp_path) as c:
            summary = ingest_window(
                settings, engine, start=datetime(2024, 3, 1), end=datetime(2024, 3, 2), client=c
            )
    assert (summary["hits"], summary["parsed"], summary["unstored"]) == (40, 39, 1)
    assert store.read_watermark(engine, WATERMARK_NAME) is None


def test_the_run_records_pubmed_as_failed_so_the_runs_own_watermark_holds(tmp_path: Path) -> None:
    with EutilsReplay(_corpus({7: "text-node-over-10-mb"})) as replay:
        settings = _settings(replay, tmp_path)
        window = {"start": "2024-03-01T00:00:00", "end": "2024-03-02T00:00:00", "origin": "data_interval"}
        summary = pipeline.fetch_pubmed(settings, window=window, run_id="l9-run")
    engine = store.make_engine(settings.database_url)
    (row,) = pipeline.run_records(engine, "l9-run")
    assert summary["unstored"] == 1
    assert row["error"] and "1 of 40 records" in row["error"] and RECORDS[7][0] in row["error"]
    extra = pipeline.asset_extra(engine, "l9-run", 0, 0)
    assert extra["failed_sources"] == ["pubmed"]
    engine.dispose()
