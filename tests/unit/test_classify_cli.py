"""`lupus-alerts classify` and `lupus-alerts classify eval`, run through the CLI entry point.

Records are constructed (hand-written) paper-schema lines, except the seed-paper fixture.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from lupus_alerts.cli import main
from lupus_alerts.cli.classify import classify_stream

SEED = Path(__file__).parent.parent / "fixtures" / "classify" / "seed_papers.jsonl"

GOOD = {
    "title": "Belimumab for lupus nephritis",
    "abstract": "A randomised, placebo-controlled trial.",
    "mesh": ["Lupus Nephritis"],  # bare descriptor strings are accepted
    "publication_types": ["Randomized Controlled Trial"],
    "keywords": ["belimumab"],
}


def run(lines: list[str]) -> tuple[int, list[dict], str]:
    out, err = io.StringIO(), io.StringIO()
    rc = classify_stream(io.StringIO("".join(lines)), out, err)
    return rc, [json.loads(x) for x in out.getvalue().splitlines()], err.getvalue()


def test_each_line_is_written_back_with_is_lupus_and_topics() -> None:
    rc, rows, err = run([json.dumps(GOOD) + "\n"])
    assert rc == 0 and err == ""
    (row,) = rows
    assert row["title"] == GOOD["title"]  # the input fields are kept
    assert row["is_lupus"] is True
    by_label = {t["label"]: t for t in row["topics"]}
    assert {"nephrology", "therapeutics"} <= set(by_label)
    assert 0 < by_label["nephrology"]["score"] <= 1
    assert "MeSH Lupus Nephritis" in by_label["nephrology"]["evidence"]
    assert "publication type Randomized Controlled Trial" in by_label["therapeutics"]["evidence"]


def test_bad_lines_are_reported_by_number_and_the_rest_classified() -> None:
    lines = [
        json.dumps(GOOD) + "\n",
        "{not json\n",
        json.dumps({"abstract": "no title here"}) + "\n",
        "\n",  # blank lines are skipped, not errors
        json.dumps({"title": "Lupus vulgaris of the ear"}) + "\n",
        json.dumps(["a", "list"]) + "\n",
    ]
    rc, rows, err = run(lines)
    assert rc == 1
    assert [r["title"] for r in rows] == [GOOD["title"], "Lupus vulgaris of the ear"]
    assert rows[1]["is_lupus"] is False and rows[1]["topics"] == []
    assert "line 2: not valid JSON" in err
    assert "line 3: no title" in err
    assert "line 6: expected a JSON object" in err
    assert "3 line(s) could not be classified" in err


def test_cli_reads_a_file_through_main(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["classify", str(SEED)])
    out = capsys.readouterr().out.splitlines()
    assert rc == 0
    assert len(out) == 6
    assert [json.loads(x)["is_lupus"] for x in out] == [True, True, False, True, True, True]


def test_cli_stdin_in_a_subprocess() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "lupus_alerts.cli", "classify", "-"],
        input=json.dumps(GOOD) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["is_lupus"] is True


def test_eval_prints_per_label_and_overall_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gold = tmp_path / "gold.jsonl"
    recs = [
        {**GOOD, "gold_is_lupus": True, "gold_topics": ["nephrology", "therapeutics"]},
        {"title": "Grey wolves (Canis lupus) in Poland", "gold_is_lupus": False, "gold_topics": []},
        # deliberately wrong gold: the report must show a miss
        {
            "title": "Neonatal lupus and congenital heart block",
            "gold_is_lupus": True,
            "gold_topics": ["genetics"],
        },
    ]
    gold.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    rc = main(["classify", "eval", str(gold), "--errors"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "text only (MeSH removed)" in out
    assert "relevance accuracy 1.000 (3/3)" in out
    genetics = next(line for line in out.splitlines() if line.startswith("genetics"))
    assert genetics.split()[1:] == ["1", "0.000", "0.000", "0.000"]
    assert "micro-F1" in out and "macro-F1" in out
    assert "Neonatal lupus and congenital heart block" in out  # listed by --errors


def test_eval_without_gold_fields_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "plain.jsonl"
    f.write_text(json.dumps(GOOD) + "\n", encoding="utf-8")
    assert main(["classify", "eval", str(f)]) == 1
    assert "no gold_is_lupus" in capsys.readouterr().err


def test_missing_file_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["classify", "/nonexistent/papers.jsonl"]) == 1
    assert "cannot read /nonexistent/papers.jsonl" in capsys.readouterr().err


def test_real_pubmed_records_only_the_lupus_trial_is_lupus() -> None:
    # 176 real PubMed records (tests/fixtures/pubmed, provenance in SOURCES.md): one is a lupus
    # trial (PMID 15968009), the other 175 are not about lupus.
    from lupus_alerts.pubmed import parse_pubmed_bytes

    xml = Path(__file__).parent.parent / "fixtures" / "pubmed" / "fatcat_pubmedsample_2019.xml"
    papers, _deleted, _problems = parse_pubmed_bytes(xml.read_bytes())
    rc, rows, err = run([json.dumps(p.to_dict()) + "\n" for p in papers])
    assert rc == 0, err
    lupus = [r for r in rows if r["is_lupus"]]
    assert [r["pmid"] for r in lupus] == ["15968009"]
    (trial,) = lupus
    therapeutics = next(t for t in trial["topics"] if t["label"] == "therapeutics")
    assert "publication type Randomized Controlled Trial" in therapeutics["evidence"]
    assert "MeSH Lupus Erythematosus, Systemic (major topic)" in trial["relevance_evidence"]


def test_eval_without_a_file_reports_real_papers_first_then_the_written_examples(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rc = main(["classify", "eval"])
    out = capsys.readouterr().out
    assert rc == 0, out
    real = out.index("== Real PubMed papers, frozen test split")
    written = out.index("== Written examples, labelled test split")
    guard = out.index("== Relevance guard")
    assert real < written < guard
    real_part = out[real:written]
    assert "real/test.jsonl: 74 papers, text only (MeSH removed)" in real_part
    for line in ("micro-F1", "macro-F1", "label precision", "relevance accuracy", "nephrology", "infection"):
        assert line in real_part
    assert "1603 records, 0 called lupus (must be 0)" in out[guard:]
    assert "Cross-validated on the real dev split" in out
