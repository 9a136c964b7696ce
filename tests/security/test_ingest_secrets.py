"""M1: the NCBI API key (and the operator's address) never appear in error text.

Each E-utilities error path is provoked through the real replay server (or a closed port) with
a recognisable key and address, through the Airflow task functions (`pipeline.search_pubmed`,
`pipeline.fetch_pubmed`). Then every place an error can end up is searched for them: every log
record at DEBUG from every logger (urllib3's and requests' included), the exception raised to
Airflow with its whole chain and traceback, and the store (its SQL rows and its database files).

Several fault bodies echo the key on purpose: NCBI's own 429 and "API key invalid" bodies carry
it in their `api-key` field, and error pages of proxies reflect the request they refused.
"""

from __future__ import annotations

import json
import logging
import traceback
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from urllib.parse import quote, quote_plus
from xml.sax.saxutils import escape

import pytest
import sqlalchemy as sa
from factories import make_settings

from lupus_alerts import pipeline, store
from lupus_alerts.config import Settings
from lupus_alerts.demo import free_port
from lupus_alerts.eutils import EutilsClient, EutilsError
from lupus_alerts.testing.eutils_replay import EFETCH_PATH, ESEARCH_PATH, EutilsReplay, corpus_from_files
from lupus_alerts.testing.replay import Fault

PUBMED = Path(__file__).parent.parent / "fixtures" / "pubmed"
START = date(2024, 3, 1)
WINDOW = {"start": "2024-03-01T00:00:00", "end": "2024-03-02T00:00:00", "origin": "data_interval"}

# A key in NCBI's form (36 hex characters) and an address, both unique to this test session.
KEY = uuid.uuid4().hex + "f00d"
EMAIL = f"canary-{uuid.uuid4().hex[:10]}@ops.example.org"
SECRETS = [KEY, EMAIL, quote(EMAIL), quote_plus(EMAIL), quote(EMAIL, safe="")]
REFLECTED = f"db=pubmed&term=lupus&tool=lupus-alerts&email={quote_plus(EMAIL)}&api_key={KEY}"


def _faults() -> dict[str, tuple[str, Fault, int, str]]:
    """Error path -> (path to inject at, fault, how many times, what the error must still say)."""
    many = 10  # more than every retry
    # NCBI's own bodies for a rate-limited and an invalid key name the key they counted against.
    rate_limited = {"error": "API rate limit exceeded", "api-key": KEY, "count": "11", "limit": "10"}
    invalid_key = {"error": "API key invalid", "api-key": KEY, "type": "api-key", "status": "unknown"}
    errorlist = (
        f"<eSearchResult><Count>0</Count><ErrorList><PhraseNotFound>{escape(REFLECTED)}</PhraseNotFound>"
    )
    return {
        "http-429-after-retries": (
            ESEARCH_PATH,
            Fault(status=429, retry_after="0", body=json.dumps(rate_limited).encode()),
            many,
            "HTTP 429",
        ),
        "http-503-after-retries": (
            ESEARCH_PATH,
            Fault(status=503, body=f"<html>Unavailable: /esearch.fcgi?{REFLECTED}</html>".encode()),
            many,
            "HTTP 503",
        ),
        "http-400-invalid-key": (
            ESEARCH_PATH,
            Fault(status=400, body=json.dumps(invalid_key).encode()),
            1,
            "API key invalid",
        ),
        "timeout": (ESEARCH_PATH, Fault(delay=1.0), many, "Timeout"),
        "esearch-neither-json-nor-xml": (
            ESEARCH_PATH,
            Fault(status=200, body=f"Proxy refused esearch.fcgi?{REFLECTED}".encode()),
            1,
            "neither JSON nor XML",
        ),
        "esearch-malformed-json": (
            ESEARCH_PATH,
            Fault(status=200, body=b'{"esearchresult": {"count": '),
            1,
            "JSON unreadable",
        ),
        "esearch-malformed-xml": (
            ESEARCH_PATH,
            Fault(status=200, body=f"<eSearchResult><Count>{KEY}</Count".encode()),
            1,
            "XML unreadable",
        ),
        "esearch-error-field": (
            ESEARCH_PATH,
            Fault(
                status=200, body=json.dumps({"esearchresult": {"ERROR": f"Bad query: {REFLECTED}"}}).encode()
            ),
            1,
            "Bad query",
        ),
        "esearch-errorlist": (
            ESEARCH_PATH,
            Fault(status=200, body=(errorlist + "</ErrorList></eSearchResult>").encode()),
            1,
            "PhraseNotFound",
        ),
        "efetch-error-body": (
            EFETCH_PATH,
            Fault(
                status=200,
                body=f"<eFetchResult><ERROR>Bad request {escape(REFLECTED)}</ERROR></eFetchResult>".encode(),
            ),
            1,
            "EFetch error",
        ),
        "efetch-truncated-after-retries": (EFETCH_PATH, Fault(truncate_to=300), many, "efetch"),
    }


FAULTS = _faults()
CASES = [
    (task, path)
    for path, (where, *_rest) in sorted(FAULTS.items())
    for task in ("search_pubmed", "fetch_pubmed")
    if not (task == "search_pubmed" and where == EFETCH_PATH)  # the search task makes no EFetch call
]


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.setenv("NCBI_API_KEY", KEY)
    monkeypatch.setenv("NCBI_EMAIL", EMAIL)
    monkeypatch.setenv("LUPUS_ALERTS_RATELIMIT_DIR", str(tmp_path / "ratelimit"))
    monkeypatch.delenv("LUPUS_ALERTS_STORE_URL", raising=False)
    yield make_settings(
        data_dir=str(tmp_path),
        store_url=f"sqlite:///{tmp_path / 'store.db'}",
        pubmed={
            # A short query: the client used to send those as GETs, with the key in the URL.
            "query": "lupus nephritis[tiab]",
            "base_url": "http://127.0.0.1:9/entrez/eutils/",
            "timeout_s": 0.4,
            "max_retries": 1,
        },
    )


def _with_base(settings: Settings, base_url: str) -> Settings:
    return settings.model_copy(update={"pubmed": settings.pubmed.model_copy(update={"base_url": base_url})})


def _store_text(settings: Settings) -> str:
    """Every row of every table, and the database files' bytes, as one searchable text."""
    engine = store.make_engine(settings.database_url)
    parts: list[str] = []
    with engine.connect() as conn:
        for table in store.metadata.sorted_tables:
            parts.extend(repr(tuple(r)) for r in conn.execute(sa.select(table)))
    engine.dispose()
    db = Path(settings.database_url.split("///", 1)[1])
    for f in db.parent.glob(db.name + "*"):
        parts.append(f.read_bytes().decode("latin-1"))
    return "\n".join(parts)


def _leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


def _run_task(task: str, settings: Settings) -> BaseException:
    with pytest.raises(EutilsError) as caught:
        if task == "search_pubmed":
            pipeline.search_pubmed(settings, window=WINDOW)
        else:
            pipeline.fetch_pubmed(settings, window=WINDOW, run_id=f"leak-test-{task}")
    return caught.value


def _everything_an_operator_can_see(exc: BaseException, caplog: pytest.LogCaptureFixture) -> str:
    # What Airflow prints for a failed task: the exception with its chain and traceback.
    shown = "".join(traceback.format_exception(exc))
    attrs = repr(vars(exc)) if hasattr(exc, "__dict__") else ""
    records = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''} {r.args!r}" for r in caplog.records)
    return "\n".join([shown, attrs, records, caplog.text])


@pytest.mark.parametrize(("task", "path"), CASES, ids=[f"{t}-{p}" for t, p in CASES])
def test_ncbi_key_and_email_stay_out_of_logs_errors_and_store(
    task: str, path: str, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    where, fault, times, says = FAULTS[path]
    caplog.set_level(logging.DEBUG)  # every logger, urllib3's connection pool included
    corpus = corpus_from_files([PUBMED / "biopython_pubmed1.xml"], start=START)
    with EutilsReplay(corpus) as replay:
        replay.server.inject(where, fault, times)
        s = _with_base(settings, replay.base_url)
        exc = _run_task(task, s)
        seen = list(replay.server.requests)
    assert any(r.path == where for r in seen), "the fault was never reached"
    # The key did travel to NCBI, in the body of a POST and never in a URL ...
    assert all(r.params.get("api_key") == KEY and r.method == "POST" and not r.query for r in seen)
    # ... the operator still learns what went wrong ...
    text = _everything_an_operator_can_see(exc, caplog)
    assert says in str(exc)
    # ... and the key and the address are nowhere.
    assert _leaks(text) == [], text[:3000]
    if task == "fetch_pubmed":
        assert _leaks(_store_text(s)) == []
        (row,) = pipeline.run_records(store.make_engine(s.database_url), f"leak-test-{task}")
        assert says in row["error"]


@pytest.mark.parametrize("task", ["search_pubmed", "fetch_pubmed"])
def test_connection_refused_names_no_key(
    task: str, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    s = _with_base(settings, f"http://127.0.0.1:{free_port()}/entrez/eutils/")  # nothing listens
    exc = _run_task(task, s)
    text = _everything_an_operator_can_see(exc, caplog)
    assert "ConnectionError" in text  # the reason is still there for the operator
    assert _leaks(text) == [], text[:3000]
    if task == "fetch_pubmed":
        assert _leaks(_store_text(s)) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f"GET /esearch.fcgi?db=pubmed&api_key={KEY}&tool=t",
            "GET /esearch.fcgi?db=pubmed&api_key=[redacted]&tool=t",
        ),
        (f"?email={quote_plus(EMAIL)}&x=1", "?email=[redacted]&x=1"),
        ('{"api-key":"0123456789abcdef0123456789abcdef0123"}', '{"api-key":"[redacted]"}'),
        ("api_key=some-other-key", "api_key=[redacted]"),
        (f"key {KEY} and mail {EMAIL}", "key [redacted] and mail [redacted]"),
        ("tool=lupus-alerts&db=pubmed", "tool=lupus-alerts&db=pubmed"),  # tool is not a secret
    ],
    ids=["query-key", "query-email", "json-api-key", "any-api-key", "values", "tool-kept"],
)
def test_redact_hides_keys_and_addresses_in_any_form(text: str, expected: str) -> None:
    from lupus_alerts.eutils import redact

    assert redact(text, [KEY, EMAIL]) == expected


def test_client_redacts_what_it_was_configured_with(tmp_path: Path) -> None:
    c = EutilsClient(base_url="http://127.0.0.1:9/", api_key=KEY, email=EMAIL)
    assert c.redact(f"{KEY} {quote(EMAIL, safe='')}") == "[redacted] [redacted]"
    c.close()
