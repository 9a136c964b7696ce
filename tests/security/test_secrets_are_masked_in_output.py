"""L7: a password in the store URL never reaches the terminal or a log.

`config check` printed the store URL with its password. It is masked there, in `db upgrade`, and
in a configuration error that quotes the offending line.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lupus_alerts.cli import main as cli
from lupus_alerts.config import redact_text, redact_url

PASSWORD = "s3cr3t-Pa55word"


@pytest.mark.parametrize("where", ["yaml", "environment"])
def test_config_check_masks_the_store_password(tmp_path: Path, monkeypatch, capsys, where: str) -> None:
    url = f"postgresql+psycopg2://lupus:{PASSWORD}@db.hospital-one.org:5432/lupus_alerts"
    cfg = tmp_path / "lupus-alerts.yaml"
    if where == "yaml":
        monkeypatch.delenv("LUPUS_ALERTS_STORE_URL", raising=False)
        cfg.write_text(yaml.safe_dump({"store_url": url}), encoding="utf-8")
    else:
        monkeypatch.setenv("LUPUS_ALERTS_STORE_URL", url)
        cfg.write_text("{}\n", encoding="utf-8")
    assert cli(["config", "check", str(cfg)]) == 0
    out = capsys.readouterr()
    assert PASSWORD not in out.out + out.err
    assert "store:    postgresql+psycopg2://lupus:***@db.hospital-one.org:5432/lupus_alerts" in out.out


def test_db_upgrade_masks_the_password(pg_url: str, capsys) -> None:
    # The test server trusts local connections, so any password connects: a real URL with one.
    url = pg_url.replace("://postgres@", f"://postgres:{PASSWORD}@")
    assert cli(["db", "upgrade", "--url", url]) == 0
    out = capsys.readouterr().out
    assert PASSWORD not in out and ":***@" in out


def test_a_configuration_error_that_quotes_the_line_masks_the_password(tmp_path: Path, capsys) -> None:
    cfg = tmp_path / "lupus-alerts.yaml"
    cfg.write_text(f"store_url: postgresql://lupus:{PASSWORD}@db/x: oops\n", encoding="utf-8")
    assert cli(["config", "check", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "not valid YAML at line 1, column 51: mapping values are not allowed here" in err
    for i in range(4, len(PASSWORD) + 1):  # not even a piece of it
        assert PASSWORD[-i:] not in err and PASSWORD[:i] not in err


@pytest.mark.parametrize(
    "text,expected",
    [
        ("sqlite:////data/x.db", "sqlite:////data/x.db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        (f"postgresql://u:{PASSWORD}@h/db", "postgresql://u:***@h/db"),
        (
            f"see redis://:{PASSWORD}@redis:6379/0 and smtp://a:{PASSWORD}@mail",
            "see redis://:***@redis:6379/0 and smtp://a:***@mail",
        ),
    ],
)
def test_redaction_masks_exactly_the_password(text: str, expected: str) -> None:
    assert redact_text(text) == expected
    if " " not in text:
        assert PASSWORD not in redact_url(text)
