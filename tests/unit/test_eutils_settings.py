"""Where the E-utilities client takes its identity and settings from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lupus_alerts.config import PubMedSettings
from lupus_alerts.eutils import EutilsClient
from lupus_alerts.ratelimit import NCBI_RATE_WITH_KEY, NCBI_RATE_WITHOUT_KEY


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (
        "NCBI_API_KEY",
        "NCBI_EMAIL",
        "NCBI_TOOL",
        "AIRFLOW_CONN_NCBI_DEFAULT",
        "AIRFLOW_CTX_DAG_ID",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LUPUS_ALERTS_RATELIMIT_DIR", str(tmp_path))


def test_connection_supplies_key_email_and_tool(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {"conn_type": "http", "password": "conn-key", "extra": {"email": "a@example.org", "tool": "t1"}}
    monkeypatch.setenv("AIRFLOW_CONN_NCBI_DEFAULT", json.dumps(conn))
    with EutilsClient.from_settings(PubMedSettings(batch_size=123)) as c:
        assert (c.api_key, c.email, c.tool, c.batch_size) == ("conn-key", "a@example.org", "t1", 123)
        assert c.limiter.rate == NCBI_RATE_WITH_KEY


def test_api_key_may_sit_in_the_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_NCBI_DEFAULT", json.dumps({"conn_type": "http", "extra": {"api_key": "x"}})
    )
    with EutilsClient.from_settings(PubMedSettings()) as c:
        assert c.api_key == "x"


def test_environment_overrides_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_NCBI_DEFAULT", json.dumps({"password": "conn-key", "extra": {"email": "a@x"}})
    )
    monkeypatch.setenv("NCBI_API_KEY", "env-key")
    monkeypatch.setenv("NCBI_EMAIL", "env@example.org")
    monkeypatch.setenv("NCBI_TOOL", "env-tool")
    with EutilsClient.from_settings(PubMedSettings()) as c:
        assert (c.api_key, c.email, c.tool) == ("env-key", "env@example.org", "env-tool")


def test_without_a_key_the_limit_is_three_per_second() -> None:
    with EutilsClient.from_settings(PubMedSettings(base_url="http://127.0.0.1:9/x")) as c:
        assert c.api_key is None and c.tool == "lupus-alerts"
        assert c.limiter.rate == NCBI_RATE_WITHOUT_KEY
        assert c.base_url == "http://127.0.0.1:9/x/"
