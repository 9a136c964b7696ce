"""Configuration: validated once, errors name the file, the field and the problem."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lupus_alerts.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[2]


def test_shipped_config_is_valid() -> None:
    s = load_config(REPO / "lupus-alerts.yaml")
    assert s.pubmed.base_url.startswith("https://eutils.ncbi.nlm.nih.gov/")
    assert s.database_url.startswith("sqlite:////")


def test_misspelt_field_is_named_in_the_error(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("pubmed:\n  overlap_dayz: 3\n")
    with pytest.raises(ConfigError) as e:
        load_config(cfg)
    assert str(cfg) in str(e.value)
    assert "pubmed.overlap_dayz" in str(e.value)
    assert "unknown field" in str(e.value)


def test_wrong_type_names_field_and_problem(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("digest:\n  max_papers: many\n")
    with pytest.raises(ConfigError, match=r"digest\.max_papers: .*integer"):
        load_config(cfg)


def test_duplicate_feed_ids_are_rejected(tmp_path: Path) -> None:
    feed = "{id: lupus, name: Lupus, publisher: SAGE, url: 'https://example.org/rss'}"
    cfg = tmp_path / "dup.yaml"
    cfg.write_text(f"feeds:\n  - {feed}\n  - {feed}\n")
    with pytest.raises(ConfigError, match="appears twice"):
        load_config(cfg)


def test_relative_paths_resolve_against_the_config_file(tmp_path: Path) -> None:
    cfg = tmp_path / "sub" / "c.yaml"
    cfg.parent.mkdir()
    cfg.write_text("data_dir: d\nstore_url: sqlite:///x/store.db\nmail: {outbox_dir: out}\n")
    s = load_config(cfg)
    assert s.data_dir == cfg.parent / "d"
    assert s.database_url == f"sqlite:///{cfg.parent / 'x' / 'store.db'}"
    assert s.mail.outbox_dir == cfg.parent / "out"


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_config_check_cli_exits_nonzero_and_names_field(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("digest:\n  sendr: someone@example.org\n")
    r = subprocess.run(
        [sys.executable, "-m", "lupus_alerts.cli", "config", "check", str(cfg)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    assert "digest.sendr" in r.stderr


def test_config_check_cli_accepts_the_shipped_file() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "lupus_alerts.cli", "config", "check", str(REPO / "lupus-alerts.yaml")],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert "OK" in r.stdout
