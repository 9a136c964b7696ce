"""Security tests: each file is named for what it defends (docs/security.md lists them).

The helpers the integration tests use (a real SMTP sink) are shared from tests/integration, the
store seeding from tests/factories.py; `web_app` serves the real app with uvicorn on a free port.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "integration"))

SECRET = "security-test-secret-0123456789abcdef"


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    from lupus_alerts import tokens

    monkeypatch.setenv(tokens.SECRET_ENV, SECRET)
    monkeypatch.delenv("AIRFLOW_CONN_LUPUS_ALERTS_SECRET", raising=False)
