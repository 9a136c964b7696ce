"""Airflow connection strings are read without Airflow (JSON and URI forms)."""

from __future__ import annotations

import pytest

from lupus_alerts.connections import get_connection, parse_connection, secret


def test_json_form_with_extras() -> None:
    c = parse_connection(
        "smtp_default",
        '{"conn_type":"smtp","host":"127.0.0.1","port":2525,"extra":{"disable_ssl":true}}',
    )
    assert (c.conn_type, c.host, c.port, c.extra) == ("smtp", "127.0.0.1", 2525, {"disable_ssl": True})


def test_uri_form_with_credentials_and_query_extras() -> None:
    c = parse_connection("ncbi_default", "http://tool%40x:s3cr%2Ft@eutils.example.org:8080/?email=a%40b.org")
    assert c.login == "tool@x"
    assert c.password == "s3cr/t"
    assert c.host == "eutils.example.org"
    assert c.port == 8080
    assert c.extra == {"email": "a@b.org"}


def test_env_variable_is_found_and_missing_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_LUPUS_TEST", '{"conn_type":"generic","password":"pw"}')
    assert get_connection("lupus_test").password == "pw"
    monkeypatch.delenv("AIRFLOW_CONN_LUPUS_TEST")
    monkeypatch.delenv("AIRFLOW_CTX_DAG_ID", raising=False)
    assert get_connection("lupus_test") is None


def test_secret_prefers_env_over_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_S", '{"conn_type":"generic","password":"from-conn"}')
    assert secret("key", conn_id="s", env="LUPUS_TEST_SECRET") == "from-conn"
    monkeypatch.setenv("LUPUS_TEST_SECRET", "from-env")
    assert secret("key", conn_id="s", env="LUPUS_TEST_SECRET") == "from-env"
