"""H1: a live run never signs links with a demo secret or sends alerts to a demo address.

`make run` (`python -m lupus_alerts.demo --live`) refuses to start, before Airflow is touched,
without a real link-signing secret and operator address, or with a configuration that still
points at placeholders; the environment it builds holds no demo value. The demo's own secret
is made on the machine and is in no file of the repository. The compose deployment's init
runs the same check (`config check --strict`).
"""

from __future__ import annotations

import subprocess
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from lupus_alerts import demo
from lupus_alerts.cli import main as cli

REAL_SECRET = "pX3v9QmL2sT8wYbN4rKc7HdJ1fGz6EaU"
REAL_OPERATOR = "lupus-ops@rheum-unit.hospital-one.org"
LIVE_CONFIG = {
    "digest": {
        "sender": "Lupus Alerts <digest@hospital-one.org>",
        "reply_to": "editors@hospital-one.org",
        "public_base_url": "https://alerts.hospital-one.org/lupus-alerts",
        "unsubscribe_mailto": "unsubscribe@hospital-one.org",
    },
    "mail": {"mode": "smtp"},
}
# Values that must never reach a live run: the demo's constant of before (it is in the
# repository's history), .env.example's placeholder made long enough to pass the length check.
PLACEHOLDER_SECRETS = (
    "demo-only-link-signing-secret-not-for-production",
    "change-me-change-me-change-me",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
)


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A valid live configuration and environment; tests take away one thing at a time."""
    cfg = tmp_path / "lupus-alerts.yaml"
    cfg.write_text(yaml.safe_dump({**LIVE_CONFIG, "data_dir": str(tmp_path / "data")}), encoding="utf-8")
    monkeypatch.setenv("LUPUS_ALERTS_SECRET", REAL_SECRET)
    monkeypatch.setenv("LUPUS_ALERTS_OPERATOR_EMAIL", REAL_OPERATOR)
    for key in (
        "AIRFLOW_VAR_LUPUS_ALERTS_OPERATOR_EMAIL",
        "LUPUS_ALERTS_STORE_URL",
        "LUPUS_ALERTS_RETRY_DELAY_S",
    ):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow_home"))
    return cfg


def _run_live(cfg: Path, demo_root: Path) -> int:
    return demo.main(["--live", "--config", str(cfg), "--root", str(demo_root)])


def _refused(cfg: Path, capsys: pytest.CaptureFixture[str], demo_root: Path) -> str:
    assert _run_live(cfg, demo_root) == 2
    err = capsys.readouterr().err
    assert "refusing to run live" in err
    # Refused before anything started: no Airflow home, no store.
    assert not (cfg.parent / "airflow_home").exists()
    assert not (cfg.parent / "data").exists()
    return err


def test_live_run_refuses_to_start_without_a_secret(
    live, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("LUPUS_ALERTS_SECRET")
    monkeypatch.delenv("AIRFLOW_CONN_LUPUS_ALERTS_SECRET", raising=False)
    assert "no link-signing secret" in _refused(live, capsys, tmp_path / "demo")


def test_live_run_refuses_the_demos_own_secret(
    live, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    demo_root = tmp_path / "demo"
    monkeypatch.setenv("LUPUS_ALERTS_SECRET", demo.demo_secret(demo_root))
    assert "is the demo's secret" in _refused(live, capsys, demo_root)


@pytest.mark.parametrize("secret", PLACEHOLDER_SECRETS)
def test_live_run_refuses_a_placeholder_secret(
    live, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, secret
) -> None:
    monkeypatch.setenv("LUPUS_ALERTS_SECRET", secret)
    assert "is a placeholder, not a secret" in _refused(live, capsys, tmp_path / "demo")


@pytest.mark.parametrize("operator", [None, "operators@demo.example.org", "ops@lupus-alerts.example.org"])
def test_live_run_refuses_without_a_real_operator_address(
    live, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, operator
) -> None:
    if operator is None:
        monkeypatch.delenv("LUPUS_ALERTS_OPERATOR_EMAIL")
    else:
        monkeypatch.setenv("LUPUS_ALERTS_OPERATOR_EMAIL", operator)
    assert "operator address" in _refused(live, capsys, tmp_path / "demo")


def test_live_run_refuses_the_shipped_placeholder_configuration(
    live, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    shipped = yaml.safe_load((demo.REPO / "lupus-alerts.yaml").read_text(encoding="utf-8"))
    live.write_text(yaml.safe_dump({**shipped, "data_dir": str(tmp_path / "data")}), encoding="utf-8")
    err = _refused(live, capsys, tmp_path / "demo")
    for field in ("digest.public_base_url", "digest.sender", "digest.reply_to", "digest.unsubscribe_mailto"):
        assert field in err


def test_the_demos_local_config_is_refused_live(
    live, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The demo's config (links to http://localhost) cannot be run live by mistake."""
    servers = demo.DemoServers(
        "http://127.0.0.1:1/", {f[0]: "http://127.0.0.1:1/f" for f in demo.DEMO_FEEDS}, 0
    )
    servers.feed_urls[demo.MOVED_FEED[0]] = "http://127.0.0.1:1/m"
    cfg = demo.write_demo_config(tmp_path / "demo", servers)
    err = _refused(cfg, capsys, tmp_path / "demo")
    assert f"digest.public_base_url '{demo.DEMO_PUBLIC_BASE_URL}' is not https" in err


def test_the_live_environment_holds_no_demo_value(live, tmp_path: Path) -> None:
    demo_root = tmp_path / "demo"
    demo_secret = demo.demo_secret(demo_root)
    env = demo.live_env(tmp_path / "airflow_home", live, demo_root=demo_root)
    assert env["LUPUS_ALERTS_SECRET"] == REAL_SECRET
    assert env["AIRFLOW_VAR_LUPUS_ALERTS_OPERATOR_EMAIL"] == REAL_OPERATOR
    assert env["AIRFLOW_VAR_LUPUS_ALERTS_ALERT_SENDER"] == "digest@hospital-one.org"
    assert "LUPUS_ALERTS_RETRY_DELAY_S" not in env  # the DAGs' real back-off
    assert "AIRFLOW_CONN_SMTP_DEFAULT" not in env  # not the demo's local catcher
    for key, value in env.items():
        assert "demo.example.org" not in value, key
        assert demo_secret not in value, key
        assert "not-for-production" not in value, key
    # while the demo's environment does carry the demo's values, and only its own secret
    demo_env = demo.airflow_env(
        tmp_path / "airflow_home", demo_root / "lupus-alerts.yaml", operator_smtp_port=25
    )
    assert demo_env["LUPUS_ALERTS_SECRET"] == demo_secret
    assert demo_env["AIRFLOW_VAR_LUPUS_ALERTS_OPERATOR_EMAIL"] == "operators@demo.example.org"


def test_the_demo_secret_is_made_on_this_machine_and_is_in_no_file_of_the_repository(tmp_path: Path) -> None:
    a, b = demo.demo_secret(tmp_path / "a"), demo.demo_secret(tmp_path / "b")
    assert a != b and len(a) >= 40
    assert demo.demo_secret(tmp_path / "a") == a  # stable for a demo folder (its outbox links work)
    assert (tmp_path / "a" / "link-secret").stat().st_mode & 0o077 == 0  # owner only
    assert not hasattr(demo, "DEMO_SECRET")
    for value in (a, "demo-only-link-signing-secret-not-for-production"):
        found = subprocess.run(
            ["git", "grep", "-l", "-F", value, "--", ".", ":!tests"],  # tests name it as a bad value
            cwd=demo.REPO,
            capture_output=True,
            text=True,
            check=False,
        )
        assert found.stdout == "", f"{value!r} is in {found.stdout}"


def test_config_check_strict_fails_on_placeholders_and_passes_a_real_deployment(
    live, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(["config", "check", "--strict", str(live)]) == 0
    monkeypatch.setenv("LUPUS_ALERTS_SECRET", PLACEHOLDER_SECRETS[1])
    assert cli(["config", "check", "--strict", str(demo.REPO / "lupus-alerts.yaml")]) == 1
    out = capsys.readouterr().out
    assert "error:    LUPUS_ALERTS_SECRET is a placeholder" in out
    assert "error:    digest.public_base_url" in out


def test_the_compose_deployment_checks_before_it_starts_and_requires_its_secrets() -> None:
    compose = yaml.safe_load((demo.REPO / "docker-compose.yaml").read_text(encoding="utf-8"))
    init = compose["services"]["airflow-init"]
    script = init["command"][1]
    assert script.index("lupus-alerts config check --strict") < script.index("lupus-alerts db upgrade")
    env = init["environment"]
    assert env["LUPUS_ALERTS_SECRET"].startswith("${LUPUS_ALERTS_SECRET:?")
    assert env["AIRFLOW_VAR_LUPUS_ALERTS_OPERATOR_EMAIL"].startswith("${LUPUS_ALERTS_OPERATOR_EMAIL:?")


def test_every_path_that_signs_links_refuses_a_placeholder_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not only `make run`: the CLI send, the scheduler's tasks (send_due) and the web app."""
    import requests
    from factories import add_papers
    from webapp import app_for, serve, settings_for

    from lupus_alerts import delivery, store, subscribers

    url = f"sqlite:///{tmp_path / 'store.db'}"
    store.upgrade(url)
    engine = store.make_engine(url)
    subscribers.add(engine, email="ana@example.org", from_beginning=True)
    add_papers(engine, [["nephrology"]])
    cfg = tmp_path / "lupus-alerts.yaml"
    cfg.write_text(
        yaml.safe_dump({"store_url": url, "mail": {"outbox_dir": str(tmp_path / "out")}}), encoding="utf-8"
    )
    monkeypatch.setenv("LUPUS_ALERTS_SECRET", PLACEHOLDER_SECRETS[1])
    assert cli(["--config", str(cfg), "digest", "send", "--date", "2026-11-27"]) == 1
    assert "LUPUS_ALERTS_SECRET is a placeholder" in capsys.readouterr().err
    settings = settings_for(tmp_path)
    with pytest.raises(delivery.DeliveryError, match="placeholder"):
        delivery.send_due(engine, settings, now=datetime(2026, 11, 27, 9))
    with serve(app_for(engine, settings)) as base:
        r = requests.get(f"{base}/unsubscribe?token=x.1.AAAAAAAAAAAAAAAAAAAAAA", timeout=5)
    assert r.status_code == 503 and "Temporarily unavailable" in r.text
    assert not list((tmp_path / "out").glob("*.eml"))  # nothing was sent
    engine.dispose()
