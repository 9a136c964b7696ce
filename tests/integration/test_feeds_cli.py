"""`lupus-alerts feeds check|poll|health|list` against feeds served over real sockets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from lupus_alerts.cli import main
from lupus_alerts.testing.feeds_replay import serve_feed_dir
from lupus_alerts.testing.replay import Fault, ReplayServer

FIXTURES = Path(__file__).parent.parent / "fixtures" / "feeds"


@pytest.fixture
def served() -> Iterator[tuple[ReplayServer, dict[str, str]]]:
    with ReplayServer() as srv:
        yield srv, serve_feed_dir(srv, FIXTURES)


@pytest.fixture
def config(tmp_path: Path, served: tuple[ReplayServer, dict[str, str]]) -> Path:
    srv, urls = served
    feeds = [
        {
            "id": "sage",
            "name": "Lupus",
            "publisher": "SAGE",
            "url": urls["constructed_sage_lupus"],
            "all_lupus": True,
        },
        {
            "id": "springer",
            "name": "Clinical Rheumatology",
            "publisher": "Springer",
            "url": urls["constructed_springer_clinrheum"],
        },
        {"id": "gone", "name": "Gone Journal", "publisher": "X", "url": srv.url + "/feeds/missing.xml"},
    ]
    path = tmp_path / "lupus-alerts.yaml"
    path.write_text(
        yaml.safe_dump(
            {"data_dir": str(tmp_path / "data"), "feeds": feeds, "feed_settings": {"timeout_s": 2}}
        )
    )
    return path


def test_feeds_check_prints_table_and_fails_for_the_missing_feed(
    config: Path, served: tuple[ReplayServer, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["--config", str(config), "feeds", "check"])
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["feed", "http", "items", "kept", "dois", "last", "modified", "secs", "error"]
    rows = {line.split()[0]: line.split() for line in lines[2:5]}
    assert rows["sage"][1:5] == ["200", "2", "2", "2"]
    assert rows["springer"][1:5] == ["200", "2", "1", "1"]  # the knee osteoarthritis item is filtered
    # Last-Modified is shown (the served file's modification time, an HTTP date)
    assert "GMT" in " ".join(rows["sage"]) and "GMT" in " ".join(rows["springer"])
    assert rows["gone"][1] == "404" and "HTTP 404" in " ".join(rows["gone"])
    assert "2 of 3 feeds ok; failed: gone" in out
    assert rc == 1
    # check writes nothing: no store was created
    assert not (config.parent / "data").exists()


def test_feeds_check_single_feed_ok(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(config), "feeds", "check", "--feed", "sage"]) == 0
    assert "1 of 1 feeds ok" in capsys.readouterr().out


def test_unknown_feed_is_a_usage_error(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(config), "feeds", "check", "--feed", "nope"]) == 2
    assert "unknown feed id(s): nope" in capsys.readouterr().err


def test_feeds_poll_then_health(
    config: Path, served: tuple[ReplayServer, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", str(config), "db", "upgrade"]) == 0
    srv, _ = served
    srv.inject("/feeds/constructed_springer_clinrheum.rss.xml", Fault(status=503))
    rc = main(["--config", str(config), "feeds", "poll"])
    out = capsys.readouterr().out
    assert rc == 1
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:5]}
    assert rows["sage"][1:7] == ["200", "2", "2", "2", "2", "0"]  # http items kept dois new updated
    assert rows["springer"][1] == "503"

    assert main(["--config", str(config), "feeds", "poll", "--feed", "sage"]) == 0
    assert "not modified" in capsys.readouterr().out

    assert main(["--config", str(config), "feeds", "health"]) == 0
    health = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[2:]}
    assert "ok" in health["sage"].split()[1]
    assert health["springer"].split()[1] == "failing" and "HTTP 503" in health["springer"]


def test_feeds_list(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(config), "feeds", "list"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines()[2:]] == ["sage", "springer", "gone"]
