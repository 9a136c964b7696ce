"""upsert_papers and classify_and_announce against real SQLite and PostgreSQL stores.

Records are constructed (hand-written) in the paper schema, shaped like what the PubMed parser
and the feed parser emit for the same paper; DOIs are written the ways those sources write them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from typing import Any, Unpack

import pytest
import sqlalchemy as sa
from factories import PaperFields, make_feed_item, make_paper

from lupus_alerts import announce, store
from lupus_alerts.announce import classify_and_announce
from lupus_alerts.dedupe import upsert_papers
from lupus_alerts.models import Classification, Notice, Paper, TopicLabel

T0 = datetime(2026, 11, 2, 6, 0)
TITLE = "Hydroxychloroquine and adverse pregnancy outcomes in systemic lupus erythematosus"


class KeywordClassifier:
    """A small real classifier (same interface as lupus_alerts.classify.Classifier): lupus if the
    title or MeSH says so; topic "renal" for nephritis, "pregnancy" for pregnancy."""

    def classify(self, paper: Paper) -> Classification:
        text = (paper.title + " " + " ".join(m.descriptor for m in paper.mesh)).lower()
        topics = [
            TopicLabel(label, 0.9, [word])
            for word, label in (("nephritis", "renal"), ("pregnan", "pregnancy"))
            if word in text
        ]
        is_lupus = "lupus" in text
        return Classification(is_lupus, 1.0 if is_lupus else 0.0, ["lupus"] if is_lupus else [], topics)


def feed_item(feed: str = "lupus", **kw: Unpack[PaperFields]) -> Paper:
    """The paper as a journal feed emits it, its DOI written as a doi.org URL."""
    fields: PaperFields = {"title": TITLE, "doi": "https://doi.org/10.1177/09612033251234567"}
    return make_feed_item(feed, **(fields | kw))


def pubmed_record(**kw: Unpack[PaperFields]) -> Paper:
    """PubMed's record of the same paper: PMID, plain DOI, MeSH, a structured abstract."""
    fields: PaperFields = {"title": TITLE + ".", "doi": "10.1177/09612033251234567"}
    return make_paper(**(fields | kw))


def rows(engine: sa.Engine, table: sa.Table) -> list[sa.Row]:
    with engine.connect() as conn:
        return conn.execute(sa.select(table).order_by(*table.primary_key.columns)).all()


def test_same_doi_from_three_sources_in_three_forms_is_one_paper_with_three_provenance_rows(
    engine: sa.Engine,
) -> None:
    upsert_papers(engine, [feed_item("lupus", doi="https://doi.org/10.1177%2F09612033251234567")], now=T0)
    upsert_papers(
        engine, [feed_item("sage", doi="doi: 10.1177/09612033251234567.")], now=T0 + timedelta(hours=1)
    )
    stats = upsert_papers(
        engine, [pubmed_record(doi="10.1177/09612033251234567 [doi]")], now=T0 + timedelta(days=1)
    )
    papers = rows(engine, store.papers)
    assert len(papers) == 1
    assert papers[0].doi == "10.1177/09612033251234567"
    assert papers[0].pmid == "41000001"
    assert papers[0].record["mesh"][0]["descriptor"] == "Lupus Erythematosus, Systemic"
    sources = rows(engine, store.paper_sources)
    assert sorted(s.source for s in sources) == ["feed:lupus", "feed:sage", "pubmed"]
    assert {s.paper_id for s in sources} == {papers[0].id}
    assert stats.updated == 1 and stats.new == 0


def test_same_doi_three_forms_in_one_batch_is_one_new_paper(engine: sa.Engine) -> None:
    stats = upsert_papers(
        engine,
        [
            feed_item("lupus", doi="info:doi/10.1177/09612033251234567"),
            feed_item("sage", doi="HTTP://DX.DOI.ORG/10.1177/09612033251234567"),
            pubmed_record(),
        ],
        now=T0,
    )
    assert stats.new == 1
    assert len(rows(engine, store.papers)) == 1
    assert len(rows(engine, store.paper_sources)) == 3


def test_upserting_the_same_records_twice_changes_nothing(engine: sa.Engine) -> None:
    batch = [
        feed_item(),
        pubmed_record(),
        feed_item("other", doi="10.1000/other", title="Another lupus paper on nephritis outcomes"),
    ]
    upsert_papers(engine, batch, now=T0)
    before = rows(engine, store.papers)
    again = upsert_papers(engine, batch, now=T0 + timedelta(days=1))
    assert (again.new, again.updated, again.merged) == (0, 0, 0)
    assert again.unchanged == 2
    assert rows(engine, store.papers) == before
    seen = {s.source: s.last_seen_at for s in rows(engine, store.paper_sources)}
    assert set(seen.values()) == {T0 + timedelta(days=1)}  # provenance: seen again


def test_fetched_at_alone_does_not_count_as_a_change(engine: sa.Engine) -> None:
    upsert_papers(engine, [feed_item(fetched_at=T0)], now=T0)
    stats = upsert_papers(engine, [feed_item(fetched_at=T0 + timedelta(days=1))], now=T0 + timedelta(days=1))
    assert stats.unchanged == 1 and stats.updated == 0


def test_doi_less_feed_item_then_pubmed_record_with_doi_and_same_title_is_one_paper(
    engine: sa.Engine,
) -> None:
    # ScienceDirect-style feeds carry no DOI; the paper is online in December, in a January issue
    upsert_papers(engine, [feed_item(doi=None, pub_date=date(2025, 12, 29), title=TITLE.upper())], now=T0)
    stats = upsert_papers(engine, [pubmed_record(pub_date=date(2026, 1, 15))], now=T0 + timedelta(days=3))
    assert stats.updated == 1 and stats.new == 0
    (paper,) = rows(engine, store.papers)
    assert paper.doi == "10.1177/09612033251234567" and paper.pmid == "41000001"
    assert paper.pub_date == date(2025, 12, 29)


def test_same_title_with_a_different_doi_is_a_different_paper(engine: sa.Engine) -> None:
    upsert_papers(engine, [feed_item(doi=None)], now=T0)
    upsert_papers(engine, [pubmed_record(doi="10.1177/0000000000000001")], now=T0)
    upsert_papers(
        engine,
        [pubmed_record(source_key="41000002", pmid="41000002", doi="10.1177/0000000000000002")],
        now=T0,
    )
    papers = rows(engine, store.papers)
    # the DOI-less item joins the first; the second has a DOI that contradicts it
    assert len(papers) == 2


def test_same_title_in_different_journals_is_not_merged(engine: sa.Engine) -> None:
    upsert_papers(engine, [feed_item(doi=None, journal="Lupus Science & Medicine")], now=T0)
    upsert_papers(engine, [pubmed_record(journal="Lupus", journal_iso="Lupus")], now=T0)
    assert len(rows(engine, store.papers)) == 2


def test_generic_titles_are_never_merged_on_title(engine: sa.Engine) -> None:
    upsert_papers(engine, [feed_item(doi=None, title="Erratum", source_key="a")], now=T0)
    upsert_papers(engine, [feed_item(doi=None, title="Erratum.", source_key="b")], now=T0)
    assert len(rows(engine, store.papers)) == 2


def test_a_record_linking_two_stored_papers_merges_them_keeping_the_earlier_announcement(
    engine: sa.Engine,
) -> None:
    clf = KeywordClassifier()
    # a feed item with the DOI only, and a PubMed record with the PMID only (titles differ
    # enough that nothing but the third record ties them together)
    upsert_papers(engine, [feed_item(title="HCQ in lupus pregnancy: the PROMISSE cohort")], now=T0)
    classify_and_announce(engine, clf, now=T0 + timedelta(minutes=1))
    upsert_papers(engine, [pubmed_record(doi=None)], now=T0 + timedelta(hours=1))
    second = classify_and_announce(engine, clf, now=T0 + timedelta(hours=1, minutes=1))
    assert second.announced == 1  # two papers, each announced once so far
    by_doi = {p.doi: p for p in rows(engine, store.papers)}
    first_no = by_doi["10.1177/09612033251234567"].announce_no

    stats = upsert_papers(
        engine,
        [pubmed_record(source="pubmed", source_key="41000001", pmid="41000001")],  # now with the DOI
        now=T0 + timedelta(days=1),
    )
    assert stats.merged == 1 and len(stats.merged_ids) == 1
    (paper,) = rows(engine, store.papers)
    assert paper.announce_no == first_no
    assert paper.doi == "10.1177/09612033251234567" and paper.pmid == "41000001"
    assert {s.paper_id for s in rows(engine, store.paper_sources)} == {paper.id}
    assert len(rows(engine, store.paper_sources)) == 2
    third = classify_and_announce(engine, clf, now=T0 + timedelta(days=1, minutes=1))
    assert third.classified == 1 and third.announced == 0
    assert {t.paper_id for t in rows(engine, store.paper_topics)} == {paper.id}


def test_a_paper_that_arrives_again_is_never_announced_again(engine: sa.Engine) -> None:
    clf = KeywordClassifier()
    upsert_papers(engine, [feed_item()], now=T0)
    first = classify_and_announce(engine, clf, now=T0 + timedelta(minutes=5))
    assert first.announced == 1 and first.lupus == 1
    assert first.announce_from == 0 and first.announce_to == 1
    assert first.per_topic == {"pregnancy": 1}
    upsert_papers(engine, [pubmed_record()], now=T0 + timedelta(days=2))  # enriches it
    second = classify_and_announce(engine, clf, now=T0 + timedelta(days=2, minutes=5))
    assert second.classified == 1 and second.announced == 0
    (paper,) = rows(engine, store.papers)
    assert paper.announce_no == 1 and paper.needs_classification is False


def test_announcement_numbers_follow_first_seen_order_and_skip_non_lupus(engine: sa.Engine) -> None:
    upsert_papers(
        engine,
        [feed_item(doi="10.1000/b", title="Lupus nephritis second paper in the queue", source_key="b")],
        now=T0 + timedelta(hours=1),
    )
    upsert_papers(
        engine,
        [feed_item(doi="10.1000/a", title="Lupus nephritis first paper in the queue", source_key="a")],
        now=T0,
    )
    upsert_papers(
        engine,
        [feed_item(doi="10.1000/c", title="Canine hip dysplasia in working dogs", source_key="c")],
        now=T0,
    )
    stats = classify_and_announce(engine, KeywordClassifier(), now=T0 + timedelta(hours=2))
    assert (stats.classified, stats.lupus, stats.not_lupus, stats.announced) == (3, 2, 1, 2)
    numbers = {p.doi: p.announce_no for p in rows(engine, store.papers)}
    assert numbers == {"10.1000/a": 1, "10.1000/b": 2, "10.1000/c": None}
    assert stats.per_topic == {"renal": 2}


def test_retraction_after_announcement_is_flagged_as_an_update(engine: sa.Engine) -> None:
    clf = KeywordClassifier()
    upsert_papers(engine, [pubmed_record()], now=T0)
    classify_and_announce(engine, clf, now=T0 + timedelta(minutes=1))
    retraction = Notice("retraction_in", ref_source="Lupus. 2027;36(1):5", pmid="41999999")
    stats = upsert_papers(
        engine, [pubmed_record(notices=[retraction], is_retracted=True)], now=T0 + timedelta(days=30)
    )
    assert stats.notices_new == 1
    result = classify_and_announce(engine, clf, now=T0 + timedelta(days=30, minutes=1))
    assert result.announced == 0 and result.updates_flagged == 1
    assert (result.update_from, result.update_to) == (0, 1)
    (update,) = rows(engine, store.paper_updates)
    assert (update.kind, update.notice_key, update.update_no) == ("retraction_in", "41999999", 1)
    (paper,) = rows(engine, store.papers)
    assert paper.is_retracted and paper.announce_no == 1
    # seen again: not a second update
    upsert_papers(
        engine, [pubmed_record(notices=[retraction], is_retracted=True)], now=T0 + timedelta(days=31)
    )
    assert classify_and_announce(engine, clf, now=T0 + timedelta(days=31, minutes=1)).updates_flagged == 0


def test_retraction_arriving_with_the_first_record_is_part_of_the_paper_not_an_update(
    engine: sa.Engine,
) -> None:
    retraction = Notice("retraction_in", pmid="41999999")
    upsert_papers(engine, [pubmed_record(notices=[retraction])], now=T0)
    result = classify_and_announce(engine, KeywordClassifier(), now=T0 + timedelta(minutes=1))
    assert result.announced == 1 and result.updates_flagged == 0
    (paper,) = rows(engine, store.papers)
    assert paper.is_retracted
    (update,) = rows(engine, store.paper_updates)
    assert update.update_no is None


def test_batches_smaller_than_the_input_give_the_same_result(engine: sa.Engine) -> None:
    records = [
        feed_item(
            source_key=f"k{i}",
            doi=f"10.5555/lupus.{i % 7}",
            title=f"Lupus cohort report number {i % 7} of the registry",
        )
        for i in range(20)
    ]
    stats = upsert_papers(engine, records, now=T0, batch_size=3)
    assert len(rows(engine, store.papers)) == 7
    assert len(rows(engine, store.paper_sources)) == 20
    assert stats.new == 7


def test_topics_are_replaced_on_reclassification(engine: sa.Engine) -> None:
    upsert_papers(engine, [feed_item(title="Lupus nephritis in pregnancy: a registry study")], now=T0)
    classify_and_announce(engine, KeywordClassifier(), now=T0)
    assert sorted(t.label for t in rows(engine, store.paper_topics)) == ["pregnancy", "renal"]
    upsert_papers(
        engine, [feed_item(title="Lupus nephritis outcomes: a registry study")], now=T0 + timedelta(days=1)
    )
    stats = classify_and_announce(engine, KeywordClassifier(), now=T0 + timedelta(days=1))
    assert stats.classified == 1
    assert [t.label for t in rows(engine, store.paper_topics)] == ["renal"]


@pytest.mark.parametrize("kind", ["erratum_in", "expression_of_concern_in"])
def test_erratum_and_concern_after_announcement_are_updates(engine: sa.Engine, kind: str) -> None:
    upsert_papers(engine, [feed_item()], now=T0)
    classify_and_announce(engine, KeywordClassifier(), now=T0)
    upsert_papers(
        engine,
        [feed_item(notices=[Notice(kind, doi="10.1177/09612033251234567e")])],
        now=T0 + timedelta(days=1),
    )
    assert classify_and_announce(engine, KeywordClassifier(), now=T0 + timedelta(days=1)).updates_flagged == 1


def test_classify_and_announce_with_the_project_classifier(engine: sa.Engine) -> None:
    from lupus_alerts.classify import Classifier, load_taxonomy

    upsert_papers(
        engine,
        [
            feed_item(
                source_key="ln",
                doi="10.1000/ln",
                title="Belimumab plus standard therapy in active lupus nephritis",
                abstract="In biopsy-proven lupus nephritis, renal response improved with belimumab.",
            ),
            feed_item(
                source_key="lv",
                doi="10.1000/lv",
                title="Lupus vulgaris: cutaneous tuberculosis in a child",
                journal="British Journal of Dermatology",
                abstract="Mycobacterium tuberculosis infection of the skin.",
            ),
        ],
        now=T0,
    )
    stats = classify_and_announce(engine, Classifier(load_taxonomy()), now=T0 + timedelta(minutes=1))
    assert (stats.classified, stats.lupus, stats.not_lupus, stats.announced) == (2, 1, 1, 1)
    papers = {p.doi: p for p in rows(engine, store.papers)}
    assert papers["10.1000/ln"].announce_no == 1 and papers["10.1000/lv"].announce_no is None
    stored_topics = {t.label for t in rows(engine, store.paper_topics)}
    assert stored_topics == {t["label"] for t in papers["10.1000/ln"].classification["topics"]}
    assert stats.per_topic == dict.fromkeys(sorted(stored_topics), 1)


def test_identifiers_that_cannot_be_pmids_or_dois_are_dropped_not_fatal(engine: sa.Engine) -> None:
    stats = upsert_papers(
        engine, [feed_item(pmid="PMC1234567 (not a PMID)", doi="10.1000/" + "x" * 600)], now=T0
    )
    assert stats.new == 1
    (paper,) = rows(engine, store.papers)
    assert paper.pmid is None and paper.doi is None


def test_merging_papers_keeps_one_flagged_update_per_notice(engine: sa.Engine) -> None:
    clf = KeywordClassifier()
    erratum = Notice("erratum_in", pmid="41999998")
    # paper A: a feed item, announced, then an erratum arrives and is flagged as update #1
    upsert_papers(engine, [feed_item(title="HCQ in lupus pregnancy: the PROMISSE cohort")], now=T0)
    classify_and_announce(engine, clf, now=T0 + timedelta(minutes=1))
    upsert_papers(
        engine,
        [feed_item(title="HCQ in lupus pregnancy: the PROMISSE cohort", notices=[erratum])],
        now=T0 + timedelta(days=1),
    )
    assert classify_and_announce(engine, clf, now=T0 + timedelta(days=1, minutes=1)).updates_flagged == 1
    # paper B: the PubMed record without DOI, carrying the same erratum from its first arrival
    upsert_papers(engine, [pubmed_record(doi=None, notices=[erratum])], now=T0 + timedelta(days=2))
    classify_and_announce(engine, clf, now=T0 + timedelta(days=2, minutes=1))
    assert len(rows(engine, store.paper_updates)) == 2
    # the PubMed record gains the DOI: A and B become one paper, with one erratum row, still #1
    stats = upsert_papers(engine, [pubmed_record(notices=[erratum])], now=T0 + timedelta(days=3))
    assert stats.merged == 1
    (update,) = rows(engine, store.paper_updates)
    (paper,) = rows(engine, store.papers)
    assert (update.paper_id, update.update_no) == (paper.id, 1)
    again = classify_and_announce(engine, clf, now=T0 + timedelta(days=3, minutes=1))
    assert (again.announced, again.updates_flagged) == (0, 0)


def test_a_paper_whose_sources_name_a_doi_held_by_another_paper_is_joined_with_it(engine: sa.Engine) -> None:
    # PubMed corrects the DOI of a record: the paper now has DOI Y, its feed source still says X
    upsert_papers(engine, [feed_item(doi="10.1177/x")], now=T0)
    upsert_papers(engine, [pubmed_record(doi="10.1177/x")], now=T0 + timedelta(days=1))
    upsert_papers(engine, [pubmed_record(doi="10.1177/y")], now=T0 + timedelta(days=2))
    (paper,) = rows(engine, store.papers)
    assert paper.doi == "10.1177/y"
    # another feed then carries DOI X under a different title: a second paper holds X ...
    upsert_papers(
        engine,
        [feed_item("other", doi="10.1177/x", title="A different title for the same lupus paper")],
        now=T0 + timedelta(days=3),
    )
    assert len(rows(engine, store.papers)) == 2
    # ... until the first paper is touched again: its own source says X, so the two are one
    stats = upsert_papers(
        engine, [pubmed_record(doi="10.1177/y", abstract="Revised abstract.")], now=T0 + timedelta(days=4)
    )
    assert stats.merged == 1
    (merged,) = rows(engine, store.papers)
    assert merged.doi == "10.1177/y" and merged.pmid == "41000001"
    assert len(rows(engine, store.paper_sources)) == 3


def test_rows_stored_without_a_record_hash_are_still_compared_by_content(engine: sa.Engine) -> None:
    """The hash only short-cuts the comparison: a row written without one (by hand, or by an
    older version) is compared field by field, so an unchanged re-poll stays unchanged."""
    first = upsert_papers(engine, [feed_item(), pubmed_record()], now=T0)
    with engine.begin() as conn:
        conn.execute(sa.update(store.papers).values(record_hash=None, needs_classification=False))
        conn.execute(sa.update(store.paper_sources).values(record_hash=None))
    again = upsert_papers(engine, [feed_item(), pubmed_record()], now=T0 + timedelta(days=1))
    assert (again.new, again.updated, again.unchanged) == (0, 0, 1)
    assert again.unchanged_ids == first.new_ids
    assert [p.needs_classification for p in rows(engine, store.papers)] == [False]
    changed = upsert_papers(
        engine, [pubmed_record(abstract="OBJECTIVE: A longer abstract. " * 5)], now=T0 + timedelta(days=2)
    )
    assert (changed.updated, changed.unchanged) == (1, 0)
    (paper,) = rows(engine, store.papers)
    assert paper.needs_classification is True and paper.record_hash is not None
    assert paper.record["abstract"].startswith("OBJECTIVE: A longer abstract.")


def test_keys_with_quotes_commas_braces_and_backslashes_are_found_again(engine: sa.Engine) -> None:
    """Lookups send their keys as one array/JSON parameter: keys that need escaping there must
    still match (a feed's guid can be any string; SICI DOIs carry <>;() characters)."""
    odd = [
        feed_item(
            source_key='tag:x,2026:{"a"}\\b',
            doi="10.1002/(SICI)1097-0258(19980815)17:15<1661::AID>3.0.CO;2-2",
        ),
        feed_item(
            source_key="https://journals.example/a?b=1,2&c={3}",
            doi=None,
            title="Complement levels and flares in childhood-onset lupus: a cohort",
        ),
    ]
    first = upsert_papers(engine, odd, now=T0)
    again = upsert_papers(engine, odd, now=T0 + timedelta(days=1))
    assert first.new == 2
    assert (again.new, again.updated, again.unchanged) == (0, 0, 2)
    assert {s.last_seen_at for s in rows(engine, store.paper_sources)} == {T0 + timedelta(days=1)}


def test_the_pending_index_holds_only_unclassified_papers_and_serves_announces_query(
    engine: sa.Engine,
) -> None:
    P = store.papers
    # the query announce.classify_and_announce walks pending papers with
    pending = sa.select(P.c.id).where(P.c.needs_classification.is_(True), P.c.id > 0).order_by(P.c.id)
    upsert_papers(engine, [feed_item(source_key=f"k{i}", doi=f"10.1000/p{i}") for i in range(3)])
    with engine.connect() as conn:
        sql = str(pending.compile(engine, compile_kwargs={"literal_binds": True}))
        if engine.dialect.name == "sqlite":
            plan = " ".join(str(r[-1]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
            definition = conn.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE name = 'ix_papers_needs_classification'"
            ).scalar()
            assert definition.endswith("WHERE needs_classification IS 1")  # partial
        else:
            conn.exec_driver_sql("SET enable_seqscan = off")
            plan = " ".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + sql))
            definition = conn.exec_driver_sql(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_papers_needs_classification'"
            ).scalar()
            assert definition.endswith("WHERE (needs_classification IS TRUE)")  # partial
        assert "ix_papers_needs_classification" in plan
        assert len(conn.execute(pending).all()) == 3
    classify_and_announce(engine, KeywordClassifier())
    with engine.connect() as conn:
        assert conn.execute(pending).all() == []


def test_title_matching_in_both_directions_and_the_doi_less_index(engine: sa.Engine) -> None:
    # A DOI-less feed item arriving after the PubMed record (which has the DOI) joins it: a record
    # without a DOI may be any paper. A record with a DOI that found no paper by it is looked up
    # among the papers stored without a DOI only, through their partial index.
    upsert_papers(engine, [pubmed_record()], now=T0)
    stats = upsert_papers(engine, [feed_item(doi=None)], now=T0 + timedelta(hours=1))
    assert (stats.new, stats.updated) == (0, 1)
    assert len(rows(engine, store.papers)) == 1
    other = "Belimumab and renal flares in lupus nephritis: a constructed registry study"
    upsert_papers(engine, [feed_item(doi=None, title=other, source_key="x")], now=T0)
    later = pubmed_record(title=other, source_key="2", pmid="2", doi="10.1/x")
    stats = upsert_papers(engine, [later], now=T0)
    assert (stats.new, stats.updated) == (0, 1)
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            from lupus_alerts.dedupe.match import _SQLITE_DOI_LESS_TITLES

            explained = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + _SQLITE_DOI_LESS_TITLES, ("[]",))
            plan = " ".join(str(r[-1]) for r in explained)
            assert "ix_papers_title_key_doi_less" in plan
            definition = conn.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE name = 'ix_papers_title_key_doi_less'"
            ).scalar()
            assert definition.endswith("WHERE doi IS NULL")
        else:
            definition = conn.exec_driver_sql(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_papers_title_key_doi_less'"
            ).scalar()
            assert definition.endswith("WHERE (doi IS NULL)")


# -- announcement numbering: what the mutation check found undefended (issue 15) ---------------


def test_a_call_with_nothing_new_reports_both_counters_where_they_stand(engine: sa.Engine) -> None:
    upsert_papers(engine, [feed_item()], now=T0)
    classify_and_announce(engine, KeywordClassifier(), now=T0 + timedelta(minutes=1))
    idle = classify_and_announce(engine, KeywordClassifier(), now=T0 + timedelta(hours=1))
    assert (idle.announced, idle.announce_from, idle.announce_to) == (0, 1, 1)
    assert (idle.updates_flagged, idle.update_from, idle.update_to) == (0, 0, 0)


def test_updates_are_numbered_in_the_order_they_were_detected_each_its_own_number(engine: sa.Engine) -> None:
    clf = KeywordClassifier()
    first = feed_item(doi="10.1000/u.1", title="Lupus nephritis paper one", source_key="u1")
    second = feed_item(doi="10.1000/u.2", title="Lupus nephritis paper two", source_key="u2")
    upsert_papers(engine, [first, second], now=T0)
    classify_and_announce(engine, clf, now=T0 + timedelta(minutes=1))
    # the later notice is stored first, so ids do not follow detection
    late = Notice("erratum_in", doi="10.1000/u.2e")
    early = Notice("erratum_in", doi="10.1000/u.1e")
    upsert_papers(engine, [dataclasses.replace(second, notices=[late])], now=T0 + timedelta(days=2))
    upsert_papers(engine, [dataclasses.replace(first, notices=[early])], now=T0 + timedelta(days=1))
    stats = classify_and_announce(engine, clf, now=T0 + timedelta(days=3))
    assert (stats.updates_flagged, stats.update_from, stats.update_to) == (2, 0, 2)
    numbers = {u.notice_key: u.update_no for u in rows(engine, store.paper_updates)}
    assert numbers == {"10.1000/u.1e": 1, "10.1000/u.2e": 2}


def test_a_notice_detected_in_the_same_instant_as_the_announcement_is_not_an_update(
    engine: sa.Engine,
) -> None:
    upsert_papers(engine, [feed_item()], now=T0)
    classify_and_announce(engine, KeywordClassifier(), now=T0 + timedelta(minutes=1))
    notice = Notice("erratum_in", doi="10.1177/09612033251234567e")
    upsert_papers(engine, [feed_item(notices=[notice])], now=T0 + timedelta(minutes=1))
    assert classify_and_announce(engine, KeywordClassifier(), now=T0 + timedelta(days=1)).updates_flagged == 0


def test_a_call_with_nothing_new_reports_the_update_counter_where_it_stands(engine: sa.Engine) -> None:
    clf = KeywordClassifier()
    upsert_papers(engine, [feed_item()], now=T0)
    classify_and_announce(engine, clf, now=T0 + timedelta(minutes=1))
    notice = Notice("erratum_in", doi="10.1177/09612033251234567e")
    upsert_papers(engine, [feed_item(notices=[notice])], now=T0 + timedelta(days=1))
    assert classify_and_announce(engine, clf, now=T0 + timedelta(days=2)).updates_flagged == 1
    idle = classify_and_announce(engine, clf, now=T0 + timedelta(days=3))
    assert (idle.updates_flagged, idle.update_from, idle.update_to) == (0, 1, 1)


def test_a_lupus_paper_still_waiting_for_classification_is_not_numbered(engine: sa.Engine) -> None:
    # Re-marked by a concurrent ingest between classifying and numbering: its topics may change,
    # so it waits for the next call rather than going out with the old ones.
    upsert_papers(engine, [feed_item()], now=T0)
    with engine.begin() as conn:
        conn.execute(sa.update(store.papers).values(is_lupus=True, needs_classification=True))
    stats = announce.AnnounceStats()
    announce._number(engine, T0 + timedelta(minutes=1), stats)
    assert (stats.announced, stats.announce_to) == (0, 0)
    assert [p.announce_no for p in rows(engine, store.papers)] == [None]


@pytest.fixture
def pg_engines(pg_url: str) -> Iterator[tuple[sa.Engine, sa.Engine]]:
    """Two engines on one PostgreSQL store: the numbering step's, and a concurrent writer's."""
    store.upgrade(pg_url)
    mine, other = store.make_engine(pg_url), store.make_engine(pg_url)
    yield mine, other
    mine.dispose()
    other.dispose()


def _meanwhile(engine: sa.Engine, statement_start: str, act: Callable[[], None]) -> list[int]:
    """Run `act` (on another connection, committed) just before `engine` first sends a statement
    starting with `statement_start`: a concurrent step landing between a read and its write."""
    fired: list[int] = []

    def before(
        conn: sa.Connection, cursor: Any, statement: str, params: Any, context: Any, executemany: bool
    ) -> None:
        if not fired and statement.startswith(statement_start):
            fired.append(1)
            act()

    sa.event.listen(engine, "before_cursor_execute", before)
    return fired


@pytest.mark.postgres
def test_a_paper_numbered_by_a_concurrent_step_stops_the_numbering_and_keeps_its_number(
    pg_engines: tuple[sa.Engine, sa.Engine],
) -> None:
    mine, other = pg_engines
    upsert_papers(mine, [feed_item()], now=T0)
    with mine.begin() as conn:
        conn.execute(sa.update(store.papers).values(is_lupus=True, needs_classification=False))
    (pid,) = [p.id for p in rows(mine, store.papers)]

    def concurrent_announce() -> None:
        with other.begin() as c:
            c.execute(sa.update(store.papers).where(store.papers.c.id == pid).values(announce_no=999))

    fired = _meanwhile(mine, "UPDATE papers SET announce_no", concurrent_announce)
    with pytest.raises(announce.AnnounceConflict, match=f"paper {pid} was announced by a concurrent step"):
        announce._number(mine, T0 + timedelta(minutes=1), announce.AnnounceStats())
    assert fired
    # the concurrent number stands, and the failed step handed out nothing
    assert [p.announce_no for p in rows(mine, store.papers)] == [999]
    with mine.connect() as conn:
        assert store.counter_value(conn, announce.ANNOUNCE_COUNTER) == 0


@pytest.mark.postgres
def test_an_update_numbered_by_a_concurrent_step_keeps_its_number(
    pg_engines: tuple[sa.Engine, sa.Engine],
) -> None:
    mine, other = pg_engines
    clf = KeywordClassifier()
    upsert_papers(mine, [feed_item()], now=T0)
    classify_and_announce(mine, clf, now=T0 + timedelta(minutes=1))
    notice = Notice("erratum_in", doi="10.1177/09612033251234567e")
    upsert_papers(mine, [feed_item(notices=[notice])], now=T0 + timedelta(days=1))

    def concurrent_flag() -> None:
        with other.begin() as c:
            c.execute(sa.update(store.paper_updates).values(update_no=77))

    fired = _meanwhile(mine, "UPDATE paper_updates SET update_no", concurrent_flag)
    classify_and_announce(mine, clf, now=T0 + timedelta(days=2))
    assert fired
    assert [u.update_no for u in rows(mine, store.paper_updates)] == [77]


def test_papers_first_seen_in_the_same_instant_are_numbered_in_id_order(engine: sa.Engine) -> None:
    # One upsert stores a whole batch with one first_seen_at: the id breaks the tie, so numbers
    # follow the order the papers were stored in, whatever order the table's rows lie in.
    # (Rows are written highest id first, so a scan in storage order meets them reversed.)
    ids = list(range(40, 0, -1))
    with engine.begin() as c:
        for pid in ids:
            c.execute(
                sa.insert(store.papers).values(
                    id=pid,
                    doi=f"10.1000/tie.{pid}",
                    title=f"Lupus nephritis paper {pid}",
                    record={},
                    is_lupus=True,
                    needs_classification=False,
                    first_seen_at=T0,
                    updated_at=T0,
                )
            )
    classify_and_announce(engine, KeywordClassifier(), now=T0 + timedelta(hours=1))
    numbers = {p.id: p.announce_no for p in rows(engine, store.papers)}
    assert numbers == {pid: pid for pid in ids}


def test_notices_detected_in_the_same_instant_are_numbered_in_id_order(engine: sa.Engine) -> None:
    # The same tie for updates: one upsert can bring several notices for announced papers.
    upsert_papers(engine, [feed_item()], now=T0)
    classify_and_announce(engine, KeywordClassifier(), now=T0 + timedelta(minutes=1))
    [paper] = rows(engine, store.papers)
    ids = list(range(30, 0, -1))
    with engine.begin() as c:  # highest id first, so storage order is the reverse of id order
        for uid in ids:
            c.execute(
                sa.insert(store.paper_updates).values(
                    id=uid,
                    paper_id=paper.id,
                    kind="erratum_in",
                    notice_key=f"10.1000/erratum.{uid}",
                    notice={},
                    detected_at=T0 + timedelta(days=1),
                )
            )
    classify_and_announce(engine, KeywordClassifier(), now=T0 + timedelta(days=2))
    numbers = {u.id: u.update_no for u in rows(engine, store.paper_updates)}
    assert numbers == {uid: uid for uid in ids}
