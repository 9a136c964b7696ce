"""`lupus-alerts papers list|show|store` against a real store (records are constructed)."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import pytest

from lupus_alerts import store
from lupus_alerts.announce import classify_and_announce
from lupus_alerts.cli import main
from lupus_alerts.dedupe import upsert_papers
from lupus_alerts.models import Classification, Notice, Paper, TopicLabel

T0 = datetime(2026, 11, 2, 6, 0)


class NephritisClassifier:
    """A tiny real classifier: lupus when the title says so, topic "renal" for nephritis."""

    def classify(self, paper: Paper) -> Classification:
        t = paper.title.lower()
        topics = [TopicLabel("renal", 0.8, ["title: nephritis"])] if "nephritis" in t else []
        return Classification("lupus" in t, 0.9 if "lupus" in t else 0.1, ["title: lupus"], topics)


@pytest.fixture
def filled(store_url: str) -> str:
    engine = store.make_engine(store_url)
    upsert_papers(
        engine,
        [
            Paper(
                source="feed:lupus",
                source_key="a",
                title="Lupus nephritis and obinutuzumab: a trial",
                doi="doi:10.1177/AAA",
                journal="Lupus",
                pub_date=date(2026, 10, 1),
            ),
            Paper(
                source="feed:ard",
                source_key="b",
                title="Cutaneous lupus and JAK inhibition in practice",
                doi="10.1136/bbb",
                journal="Ann Rheum Dis",
            ),
        ],
        now=T0,
    )
    upsert_papers(
        engine,
        [
            Paper(
                source="pubmed",
                source_key="41000001",
                pmid="41000001",
                title="Lupus nephritis and obinutuzumab: a trial.",
                doi="10.1177/aaa",
                journal="Lupus",
            )
        ],
        now=datetime(2026, 11, 5),
    )
    classify_and_announce(engine, NephritisClassifier(), now=datetime(2026, 11, 5, 1))
    upsert_papers(
        engine,
        [
            Paper(
                source="pubmed",
                source_key="41000001",
                pmid="41000001",
                title="Lupus nephritis and obinutuzumab: a trial.",
                doi="10.1177/aaa",
                journal="Lupus",
                notices=[Notice("erratum_in", pmid="41000099")],
            )
        ],
        now=datetime(2026, 11, 9),
    )
    classify_and_announce(engine, NephritisClassifier(), now=datetime(2026, 11, 9, 1))
    engine.dispose()
    return store_url


def test_papers_list_filters_by_topic_and_since(filled: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["papers", "list", "--url", filled, "--json"]) == 0
    all_rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["doi"] for r in all_rows} == {"10.1177/aaa", "10.1136/bbb"}
    assert main(["papers", "list", "--url", filled, "--json", "--topic", "renal"]) == 0
    renal = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["doi"] for r in renal] == ["10.1177/aaa"]
    assert renal[0]["topics"][0]["evidence"] == ["title: nephritis"]
    assert main(["papers", "list", "--url", filled, "--json", "--since", "2026-11-03"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["papers", "list", "--url", filled, "--limit", "1"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert len(table) == 2 and "title" in table[0]


def test_papers_show_finds_by_any_doi_form_or_pmid_with_provenance(
    filled: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for key in ("https://doi.org/10.1177/AAA", "41000001"):
        assert main(["papers", "show", key, "--url", filled, "--json"]) == 0
        shown = json.loads(capsys.readouterr().out)
        assert shown["doi"] == "10.1177/aaa" and shown["pmid"] == "41000001"
        assert [s["source"] for s in shown["sources"]] == ["feed:lupus", "pubmed"]
        assert shown["sources"][0]["first_seen_at"] == "2026-11-02T06:00:00"
        assert shown["updates"][0]["kind"] == "erratum_in" and shown["updates"][0]["update_no"] == 1
        assert shown["announce_no"] == 1
    assert main(["papers", "show", "10.1177/aaa", "--url", filled]) == 0
    text = capsys.readouterr().out
    assert "feed:lupus" in text and "renal" in text and "update #1" in text


def test_papers_show_reports_unknown_and_unparseable_ids(
    filled: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["papers", "show", "10.9999/none", "--url", filled]) == 1
    assert main(["papers", "show", "not an id", "--url", filled]) == 2


def test_papers_store_upserts_json_lines(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = tmp_path / "papers.jsonl"
    recs = [
        Paper(
            source="feed:x",
            source_key="1",
            title="Lupus anticoagulant testing in practice today",
            doi="10.1000/x1",
        ),
        Paper(
            source="pubmed",
            source_key="2",
            pmid="2",
            title="Lupus anticoagulant testing in practice today.",
            doi="10.1000/X1",
        ),
    ]
    lines.write_text("".join(json.dumps(p.to_dict()) + "\n" for p in recs))
    assert main(["papers", "store", str(lines), "--url", store_url]) == 0
    assert "1 new papers" in capsys.readouterr().out
    assert main(["papers", "store", str(lines), "--url", store_url]) == 0
    assert "0 new papers, 0 updated, 1 unchanged" in capsys.readouterr().out
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    assert main(["papers", "store", str(bad), "--url", store_url]) == 1
