"""The task functions' own logic: run windows, run bookkeeping, asset counts, feed health, digest days.

Runs on SQLite and PostgreSQL (the `engine` fixture); no Airflow involved.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from factories import make_settings

from lupus_alerts import pipeline, store

SETTINGS = make_settings(
    pubmed={"initial_lookback_days": 3},
    feeds=[
        {"id": "lupus", "name": "Lupus", "publisher": "SAGE", "url": "https://example.org/l.rss"},
        {"id": "lsm", "name": "Lupus Sci Med", "publisher": "BMJ", "url": "https://example.org/m.rss"},
    ],
    digest={"timezone": "Pacific/Auckland"},
)
T0 = datetime(2026, 11, 26, 5, 0)
T1 = datetime(2026, 11, 27, 5, 0)


def test_scheduled_run_uses_its_data_interval_whatever_the_watermark(engine: sa.Engine) -> None:
    store.advance_watermark(engine, pipeline.RUN_WATERMARK, datetime(2026, 11, 1))
    w = pipeline.run_window(
        T0.replace(tzinfo=UTC), T1.replace(tzinfo=UTC), T1 + timedelta(minutes=3), engine, SETTINGS
    )
    assert (w.start, w.end, w.origin) == (T0, T1, "data_interval")


def test_manual_run_without_interval_starts_at_the_watermark_or_the_lookback(engine: sa.Engine) -> None:
    run_after = datetime(2026, 11, 27, 14, 30, tzinfo=UTC)
    fresh = pipeline.run_window(None, None, run_after, engine, SETTINGS)
    assert (fresh.start, fresh.end) == (datetime(2026, 11, 24, 14, 30), datetime(2026, 11, 27, 14, 30))
    # the log says where the start came from: not "(watermark)" when there is none
    assert fresh.origin == "lookback" and "3 days before the run" in fresh.describe()
    store.advance_watermark(engine, pipeline.RUN_WATERMARK, T1)
    w = pipeline.run_window(None, None, run_after.isoformat(), engine, SETTINGS)
    assert (w.start, w.end) == (T1, datetime(2026, 11, 27, 14, 30))
    # A zero-width interval (a CronTriggerTimetable run) counts as none.
    z = pipeline.run_window(T1, T1, run_after, engine, SETTINGS)
    assert z.origin == "watermark"


def test_a_source_that_keeps_failing_holds_back_only_its_own_window(engine: sa.Engine) -> None:
    run_after = datetime(2026, 11, 27, 14, 30, tzinfo=UTC)
    # pubmed succeeded up to T0; a dead feed never did; the last run ended at T1
    store.advance_watermark(engine, pipeline.source_watermark("pubmed"), T0)
    store.advance_watermark(engine, pipeline.RUN_WATERMARK, T1)
    run = pipeline.run_window(None, None, run_after, engine, SETTINGS)
    assert run.start == T1
    pubmed = pipeline.source_window(engine, SETTINGS, run, "pubmed")
    assert pubmed.start == T0 and "last window pubmed read in full" in pubmed.describe()
    dead = pipeline.source_window(engine, SETTINGS, run, "feed:dead")
    assert dead.start == T1 and "no watermark for feed:dead yet" in dead.describe()
    # a scheduled run reads its data interval, whatever a source's watermark says
    sched = pipeline.run_window(T0, T1, run_after, engine, SETTINGS)
    assert pipeline.source_window(engine, SETTINGS, sched, "pubmed") == sched


def test_a_run_with_no_time_at_all_is_an_error(engine: sa.Engine) -> None:
    with pytest.raises(pipeline.PipelineError):
        pipeline.run_window(None, None, None, engine, SETTINGS)


def test_record_run_upserts_one_row_per_run_and_source(engine: sa.Engine) -> None:
    w = pipeline.RunWindow(T0, T1, "data_interval")
    pipeline.record_run(engine, "r1", "feed:lupus", {"items": 3}, window=w, error="HTTP 503")
    pipeline.record_run(engine, "r1", "feed:lupus", {"items": 9, "when": T1}, window=w)
    pipeline.record_run(engine, "r1", "pubmed", {"parsed": 4})
    rows = pipeline.run_records(engine, "r1")
    assert [r["source"] for r in rows] == ["feed:lupus", "pubmed"]
    assert rows[0]["stats"] == {"items": 9, "when": T1.isoformat()} and rows[0]["error"] is None
    assert rows[0]["window_start"] == T0 and rows[1]["window_start"] is None


def _paper(conn: sa.Connection, n: int, announce_no: int | None, labels: list[str]) -> None:
    now = store.utcnow()
    pid = conn.execute(
        sa.insert(store.papers)
        .values(
            doi=f"10.5555/t.{n}",
            title=f"t{n}",
            record={},
            first_seen_at=now,
            updated_at=now,
            announce_no=announce_no,
            is_lupus=announce_no is not None,
            needs_classification=False,
        )
        .returning(store.papers.c.id)
    ).scalar_one()
    for label in labels:
        conn.execute(sa.insert(store.paper_topics).values(paper_id=pid, label=label, score=0.9))


def test_asset_extra_counts_sources_failures_and_topics_of_this_runs_new_papers(engine: sa.Engine) -> None:
    with engine.begin() as c:
        _paper(c, 1, 1, ["nephrology"])  # announced by an earlier run
        _paper(c, 2, 2, ["nephrology", "therapeutics"])
        _paper(c, 3, 3, ["dermatology"])
        _paper(c, 4, None, ["nephrology"])  # not lupus, never announced
    pipeline.record_run(engine, "r", "pubmed", {"parsed": 7, "new": 2})
    pipeline.record_run(engine, "r", "feed:lupus", {"items": 5, "kept": 4})
    pipeline.record_run(engine, "r", "feed:lsm", {}, error="HTTP 404")
    pipeline.record_run(engine, "other", "pubmed", {"parsed": 99})
    extra = pipeline.asset_extra(engine, "r", 1, 3)
    assert extra["per_source"] == {"feed:lsm": 0, "feed:lupus": 4, "pubmed": 7}
    assert extra["failed_sources"] == ["feed:lsm"]
    assert extra["new_papers"] == 2
    assert extra["per_topic"] == {"dermatology": 1, "nephrology": 1, "therapeutics": 1}


def _extra(before: int, after: int, **kw: Any) -> dict[str, Any]:
    return {
        "run_id": "r",
        "per_source": kw.get("per_source", {"pubmed": 7, "feed:lupus": 4, "feed:lsm": 0}),
        "failed_sources": kw.get("failed", ["feed:lsm"]),
        "new_papers": after - before,
        "announce_from": before,
        "announce_to": after,
        "per_topic": kw.get("per_topic", {}),
    }


def test_a_run_with_nothing_new_says_so_without_a_backwards_number_range() -> None:
    text = pipeline.announce_report(_extra(42, 42))
    assert text.startswith("No new lupus papers")
    assert "43..42" not in text and "43-42" not in text
    assert pipeline.event_extra(_extra(42, 42))["numbers"] == "none"


def test_the_run_summary_is_a_readable_table_one_line_per_source_and_topic() -> None:
    text = pipeline.announce_report(_extra(42, 45, per_topic={"nephrology": 2, "dermatology": 1}))
    lines = text.splitlines()
    assert lines[0] == "Announced 3 new lupus papers (numbers 43-45)."
    assert any(ln.split() == ["feed:lsm", "0", "FAILED"] for ln in lines)
    assert any(ln.split() == ["pubmed", "7"] for ln in lines)
    assert any(ln.split() == ["nephrology", "2"] for ln in lines)
    assert lines[-1] == "failed sources: feed:lsm"
    assert max(len(ln) for ln in lines) < 100


def test_the_asset_event_extra_is_flat_so_the_ui_shows_every_count() -> None:
    extra = pipeline.event_extra(_extra(0, 1, per_topic={"nephrology": 1}))
    assert extra == {
        "run_id": "r",
        "new_papers": 1,
        "numbers": "1",
        "failed_sources": "feed:lsm",
        "papers from feed:lsm": 0,
        "papers from feed:lupus": 4,
        "papers from pubmed": 7,
        "new in nephrology": 1,
    }


def test_feed_health_lists_every_configured_feed_with_its_state(engine: sa.Engine) -> None:
    now = datetime(2026, 11, 27, 6, 0)
    with engine.begin() as c:
        c.execute(
            sa.insert(store.feed_state).values(
                feed_id="lsm",
                url="u",
                last_status=404,
                last_error="HTTP 404",
                last_polled_at=now,
                last_success_at=now - timedelta(days=2),
                consecutive_failures=3,
            )
        )
        c.execute(sa.insert(store.feed_state).values(feed_id="gone", url="u"))  # no longer configured
    # two runs, the first tried three times (Airflow's retries), the second twice
    for run, tries in (("r1", 3), ("r2", 2)):
        for _ in range(tries):
            pipeline.record_run(engine, run, "feed:lsm", {}, error="HTTP 404")
    rows = pipeline.feed_health(engine, SETTINGS)
    # failing feeds first
    assert [(r["feed_id"], r["status"]) for r in rows] == [("lsm", "failing"), ("lupus", "never polled")]
    assert rows[0]["failed_runs_in_a_row"] == 2  # runs, not the 5 tries (nor the state's 3)
    assert rows[0]["last_success_at"] == "2026-11-25 06:00:00 UTC"  # time zone, no microseconds
    table = pipeline.format_health_table(rows).splitlines()
    assert table[0].split()[:2] == ["feed", "status"] and len(table) == 4
    assert "HTTP 404" in table[2]


def test_failed_runs_in_a_row_stop_at_the_last_run_where_the_feed_succeeded(engine: sa.Engine) -> None:
    pipeline.record_run(engine, "r1", "feed:x", {}, error="HTTP 500")
    pipeline.record_run(engine, "r1", "feed:x", {"items": 3})  # the retry succeeded
    assert pipeline.failed_runs_in_a_row(engine, "feed:x") == 0
    pipeline.record_run(engine, "r2", "feed:x", {}, error="timeout")
    assert pipeline.failed_runs_in_a_row(engine, "feed:x") == 1


def test_a_not_modified_feed_shows_no_item_count_beside_its_304(engine: sa.Engine) -> None:
    with engine.begin() as c:
        c.execute(
            sa.insert(store.feed_state).values(
                feed_id="lupus",
                url="u",
                last_status=304,
                items_last=7,
                last_polled_at=datetime(2026, 11, 27, 6, 0, 0, 123456),
            )
        )
    (row,) = [r for r in pipeline.feed_health(engine, SETTINGS) if r["feed_id"] == "lupus"]
    assert row["items_last"] == "not modified"
    assert row["last_polled_at"] == "2026-11-27 06:00:00 UTC"


def test_a_rerun_adds_to_the_runs_record_and_keeps_the_first_attempts_counts(engine: sa.Engine) -> None:
    first = {"new_papers": 42, "announce_from": 0, "announce_to": 42}
    assert pipeline.record_run(engine, "scheduled__1", pipeline.ANNOUNCE_SOURCE, first) == 1
    rerun = {"new_papers": 0, "announce_from": 42, "announce_to": 42}
    assert pipeline.record_run(engine, "scheduled__1", pipeline.ANNOUNCE_SOURCE, rerun) == 2
    every = pipeline.run_records(engine, "scheduled__1", every_attempt=True)
    assert [(r["attempt"], r["stats"]["new_papers"]) for r in every] == [(1, 42), (2, 0)]
    (last,) = pipeline.run_records(engine, "scheduled__1")
    assert last["attempt"] == last["attempts"] == 2
    (run,) = pipeline.recent_runs(engine)
    assert run["run_id"] == "scheduled__1" and run["new_papers"] == [42, 0]


def test_digest_day_is_the_logical_date_else_run_after_in_the_digest_time_zone() -> None:
    late = datetime(2026, 11, 27, 13, 0, tzinfo=UTC)  # already the 28th in Auckland
    assert pipeline.digest_day(late, None, SETTINGS) == date(2026, 11, 28)
    assert pipeline.digest_day(None, late.isoformat(), SETTINGS) == date(2026, 11, 28)
    early = datetime(2026, 11, 27, 1, 0, tzinfo=timezone(timedelta(hours=-5)))
    assert pipeline.digest_day(early, late, SETTINGS) == date(2026, 11, 27)
    with pytest.raises(pipeline.PipelineError):
        pipeline.digest_day(None, None, SETTINGS)


def test_report_adds_up_the_chunks_and_ignores_skipped_ones() -> None:
    out = pipeline.report_digests(
        [{"sent": 3, "failed_permanent": 1, "note": "x"}, None, {"sent": 2, "already_sent": 4}],
        day=date(2026, 11, 27),
    )
    assert out == {"day": "2026-11-27", "chunks": 2, "sent": 5, "failed_permanent": 1, "already_sent": 4}


class _LazyResults(Sequence[Any]):
    """Behaves as Airflow's LazyXComSequence: each item is a request, and an item past the end
    is a 404 that the task SDK logs as "XCom not found" (defect 10 of issue 14)."""

    def __init__(self, items: list[Any]) -> None:
        self.items = items
        self.requested_past_end: list[int] = []

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: int | slice) -> Any:
        if isinstance(key, slice):
            return self.items[key]
        if key >= len(self.items):
            self.requested_past_end.append(key)
            raise IndexError(key)
        return self.items[key]


def test_report_reads_the_mapped_results_without_asking_for_one_past_the_end() -> None:
    results = _LazyResults([{"sent": 3}, {"sent": 2}])
    out = pipeline.report_digests(results, day=date(2026, 11, 27))
    assert out["sent"] == 5 and out["chunks"] == 2
    assert results.requested_past_end == []


def test_schedule_settings_fall_back_to_defaults_when_the_config_is_broken(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("schedule:\n  ingest_crn: '0 6 * * *'\n")
    assert pipeline.schedule_settings(bad).ingest_cron == "0 5 * * *"
    good = tmp_path / "good.yaml"
    good.write_text("schedule:\n  ingest_cron: '0 6 * * *'\n")
    assert pipeline.schedule_settings(good).ingest_cron == "0 6 * * *"
    assert pipeline.schedule_settings(tmp_path / "missing.yaml").ingest_cron == "0 5 * * *"


def test_search_pubmed_counts_the_window_widened_by_the_overlap() -> None:
    from lupus_alerts.demo import DEMO_DATA
    from lupus_alerts.testing.eutils_replay import CorpusRecord, EutilsReplay, article_records

    records = article_records(DEMO_DATA / "pubmed_demo.xml")
    # one record per day, ending on the window's last day
    corpus = [
        CorpusRecord(pmid, date(2026, 11, 27) - timedelta(days=i), xml)
        for i, (pmid, xml) in enumerate(records)
    ]
    with EutilsReplay(corpus) as replay:
        settings = make_settings(
            pubmed={"base_url": replay.base_url, "overlap_days": 2, "batch_size": 3, "max_retries": 0}
        )
        window = pipeline.RunWindow(T0, T1, "data_interval").to_dict()
        out = pipeline.search_pubmed(settings, window=window)
    # creation days 2026-11-24 .. 2026-11-27 inclusive: four records, two batches of three
    assert out == {
        "search_start": "2026-11-24",
        "search_end": "2026-11-27",
        "hits": 4,
        "batches": 2,
        "split_window": False,
    }


def test_a_feeds_grid_label_says_what_its_poll_did() -> None:
    label = pipeline.feed_outcome_label
    assert label("Lupus", {"items": 9, "new": 3}) == "Lupus · 9 items, 3 new"
    assert label("Lupus", {"items": 1, "new": 0}) == "Lupus · 1 item, 0 new"
    assert label("Lupus", {"not_modified": True, "items": 0}) == "Lupus · not modified"
    assert label("Annals", {"error": "HTTP 404", "items": 0}) == "Annals · HTTP 404"


def test_a_task_summary_logs_as_one_aligned_line_per_figure() -> None:
    text = pipeline.summary_table(
        "pubmed:", {"fetched": 40, "new": 3, "problems": [{"pmid": "1"}], "x": None}
    )
    assert text.splitlines() == ["pubmed:", "  fetched  40", "  new      3"]
