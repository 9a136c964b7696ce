"""`lupus-alerts papers parse`: JSON lines in the paper schema, problems on stderr."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lupus_alerts.cli import main
from lupus_alerts.models import Paper

FIXTURES = Path(__file__).parent.parent / "fixtures"
PUBMED = FIXTURES / "pubmed"


def test_prints_one_paper_schema_object_per_record(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["papers", "parse", "--source", "pubmed", str(PUBMED / "fatcat_pubmedsample_2019.xml")])
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert rc == 0
    assert len(lines) == 176
    papers = [Paper.from_dict(json.loads(line)) for line in lines]
    assert papers[0].pmid == "973217" and papers[0].source == "pubmed"
    assert "deleted: PMIDs 23203860" in err
    first = json.loads(lines[0])
    for key in (
        "doi",
        "pmid",
        "pmcid",
        "title",
        "abstract",
        "authors",
        "journal",
        "issns",
        "pub_date",
        "pub_date_text",
        "epub_date",
        "publication_types",
        "mesh",
        "keywords",
        "language",
        "notices",
        "is_retracted",
        "url",
    ):
        assert key in first


def test_problems_go_to_stderr_and_set_the_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["papers", "parse", str(PUBMED / "constructed_edge_cases.xml")])
    out, err = capsys.readouterr()
    assert rc == 1
    assert [json.loads(line)["pmid"] for line in out.splitlines()] == ["99000001", "99000002", "99000003"]
    assert "problem: PMID ?: PubmedParseError: record has no PMID" in err


def test_reads_stdin_with_dash() -> None:
    data = (PUBMED / "fatcat_pubmed_19129924_fragment.xml").read_bytes()
    proc = subprocess.run(
        [sys.executable, "-m", "lupus_alerts.cli", "papers", "parse", "-"],
        input=data,
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.decode().splitlines()
    assert json.loads(line)["doi"] == "10.3389/neuro.11.006.2008"


def test_missing_file_is_a_reported_failure(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rc = main(["papers", "parse", str(tmp_path / "nope.xml")])
    assert rc == 1
    assert "cannot read" in capsys.readouterr().err


def test_feed_source_prints_what_the_feed_parser_reads(capsys: pytest.CaptureFixture[str]) -> None:
    from lupus_alerts import feeds

    path = FIXTURES / "feeds" / "biorxiv_rdf_miniflux_whitespace_urls.rdf.xml"
    rc = main(["papers", "parse", "--source", "feed", str(path)])
    out, _err = capsys.readouterr()
    expected = [
        p.to_dict() for p in feeds.parse_feed_bytes(path.read_bytes(), feed=None, headers=None).papers
    ]
    got = [json.loads(line) for line in out.splitlines()]
    for d in (*expected, *got):
        d.pop("fetched_at")  # the feed parser stamps the time it read the feed
    assert rc == 0
    assert expected and got == json.loads(json.dumps(expected))


def test_feed_entity_bomb_is_refused_with_a_message_not_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rc = main(["papers", "parse", "--source", "feed", str(FIXTURES / "feeds-malformed" / "xmlbomb.xml")])
    out, err = capsys.readouterr()
    assert rc == 1
    assert out == ""
    assert "xmlbomb.xml" in err and "entit" in err and "Traceback" not in err
