"""`lupus-alerts digest send` (real and --dry-run) against a store and an outbox directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from factories import add_papers

from lupus_alerts import store, subscribers, tokens
from lupus_alerts.cli import main


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(tokens.SECRET_ENV, "cli-test-secret-0123456789abcdef")
    monkeypatch.delenv("LUPUS_ALERTS_STORE_URL", raising=False)
    cfg = tmp_path / "lupus-alerts.yaml"
    cfg.write_text(
        f"data_dir: data\nstore_url: sqlite:///{tmp_path / 'store.db'}\n"
        "mail:\n  mode: outbox\n  outbox_dir: outbox\n"
    )
    store.upgrade(f"sqlite:///{tmp_path / 'store.db'}")
    return cfg


def _engine(tmp_path: Path) -> sa.Engine:
    return store.make_engine(f"sqlite:///{tmp_path / 'store.db'}")


def test_dry_run_writes_the_outbox_and_changes_nothing(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    eng = _engine(tmp_path)
    s = subscribers.add(eng, email="ana@example.org", from_beginning=True)
    add_papers(eng, [["nephrology"], ["dermatology"]])
    out = tmp_path / "dry"
    rc = main(
        [
            "--config",
            str(config),
            "digest",
            "send",
            "--dry-run",
            "--date",
            "2026-11-27",
            "--outbox",
            str(out),
            "--json",
        ]
    )
    result = json.loads(capsys.readouterr().out)
    assert rc == 0 and result["sent"] == 1 and result["dry_run"] is True
    assert len(list(out.glob("*.eml"))) == 1 and len(list(out.glob("*.html"))) == 2  # + index.html
    with eng.connect() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(store.deliveries)).scalar() == 0
    assert subscribers.get(eng, s.id).cursor == 0


def test_send_in_outbox_mode_then_rerun_sends_nothing(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    eng = _engine(tmp_path)
    subscribers.add(eng, email="ana@example.org", from_beginning=True)
    subscribers.add(eng, email="bo@example.org", from_beginning=True)
    add_papers(eng, [["nephrology"]])
    args = ["--config", str(config), "digest", "send", "--date", "2026-11-27", "--json", "--connections", "2"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(args) == 0
    second = json.loads(capsys.readouterr().out)
    assert (first["sent"], second["sent"], second["planned"]) == (2, 0, 0)
    emls = list((tmp_path / "outbox").glob("*.eml"))
    assert len(emls) == 2
    assert main(["--config", str(config), "digest", "ledger"]) == 0
    assert "sent" in capsys.readouterr().out


def test_send_without_secret_exits_1_with_the_fix(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(tokens.SECRET_ENV)
    monkeypatch.delenv("AIRFLOW_CONN_LUPUS_ALERTS_SECRET", raising=False)
    assert main(["--config", str(config), "digest", "send"]) == 1
    assert "LUPUS_ALERTS_SECRET" in capsys.readouterr().err
