"""The project's configuration: one YAML file, validated once at load.

The file is `lupus-alerts.yaml` in the working directory unless `LUPUS_ALERTS_CONFIG` names
another. Secrets never live here: they come from Airflow connections or the environment (see
`lupus_alerts.connections`). Relative paths in the file are relative to the file itself.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

CONFIG_ENV = "LUPUS_ALERTS_CONFIG"
STORE_URL_ENV = "LUPUS_ALERTS_STORE_URL"
DEFAULT_CONFIG_NAME = "lupus-alerts.yaml"

# Finds lupus in the lupus-erythematosus sense (SLE, nephritis, cutaneous/discoid, neonatal,
# drug-induced, neuropsychiatric, lupus-related antiphospholipid syndrome), indexed or not yet
# indexed, and keeps out lupus vulgaris (cutaneous TB), lupus pernio (sarcoidosis) and Canis
# lupus unless the paper is indexed or titled as lupus erythematosus. Reasoning in
# docs/pubmed-query.md.
DEFAULT_PUBMED_QUERY = (
    '(("Lupus Erythematosus, Systemic"[Mesh] OR "Lupus Nephritis"[Mesh]'
    ' OR "Lupus Erythematosus, Cutaneous"[Mesh] OR "Lupus Erythematosus, Discoid"[Mesh]'
    ' OR "Lupus Vasculitis, Central Nervous System"[Mesh] OR "Lupus Coagulation Inhibitor"[Mesh]'
    ' OR "lupus erythematosus"[tiab] OR "systemic lupus"[tiab] OR "lupus nephritis"[tiab]'
    ' OR "cutaneous lupus"[tiab] OR "discoid lupus"[tiab] OR "chilblain lupus"[tiab]'
    ' OR "neonatal lupus"[tiab] OR "drug-induced lupus"[tiab] OR "drug induced lupus"[tiab]'
    ' OR "neuropsychiatric lupus"[tiab] OR NPSLE[tiab] OR "lupus anticoagulant"[tiab]'
    ' OR "lupus-like"[tiab] OR "lupus flare"[tiab] OR "lupus flares"[tiab] OR "lupus-prone"[tiab]'
    ' OR "childhood-onset lupus"[tiab] OR "juvenile lupus"[tiab] OR "pediatric lupus"[tiab]'
    ' OR "lupus patients"[tiab] OR "lupus pregnancy"[tiab]'
    ' OR (("Antiphospholipid Syndrome"[Mesh] OR antiphospholipid[tiab]) AND lupus[tiab]))'
    ' NOT (("Lupus Vulgaris"[Mesh] OR "lupus vulgaris"[tiab] OR "lupus pernio"[tiab]'
    ' OR "Wolves"[Mesh] OR "Canis lupus"[tiab])'
    ' NOT ("Lupus Erythematosus, Systemic"[Mesh] OR "Lupus Erythematosus, Cutaneous"[Mesh]'
    ' OR "lupus erythematosus"[ti] OR "systemic lupus"[ti] OR "lupus nephritis"[ti])))'
)


class ConfigError(Exception):
    """The configuration file is missing or invalid. The message names file, field and fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PubMedSettings(_Strict):
    base_url: str = "https://eutils.ncbi.nlm.nih.gov/entrez/eutils/"
    query: str = DEFAULT_PUBMED_QUERY
    connection_id: str = "ncbi_default"
    overlap_days: int = Field(7, ge=0, le=365)
    initial_lookback_days: int = Field(7, ge=1, le=36500)
    batch_size: int = Field(500, ge=1, le=10000)
    max_hits_per_window: int = Field(9999, ge=1, le=9999)
    timeout_s: float = Field(30.0, gt=0)
    max_retries: int = Field(6, ge=0, le=20)

    @field_validator("base_url")
    @classmethod
    def _slash(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return v if v.endswith("/") else v + "/"


class FeedConfig(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    name: str
    publisher: str
    url: str
    all_lupus: bool = False  # every item is about lupus (a lupus journal)
    verified: bool = False  # URL seen to serve a feed (see docs/feeds.md)

    @field_validator("url")
    @classmethod
    def _http(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return v


class FeedSettings(_Strict):
    timeout_s: float = Field(20.0, gt=0)
    max_bytes: int = Field(10_000_000, ge=1_000)
    concurrency: int = Field(8, ge=1, le=64)
    user_agent: str = "lupus-alerts/0.1 (literature alerts for lupus clinicians; mailto:ops@example.org)"


class DigestSettings(_Strict):
    sender: str = "Lupus Alerts <digest@lupus-alerts.example.org>"
    reply_to: str = "editors@lupus-alerts.example.org"
    public_base_url: str = "https://lupus-alerts.example.org"
    unsubscribe_mailto: str = "unsubscribe@lupus-alerts.example.org"
    max_papers: int = Field(50, ge=1, le=1000)
    timezone: str = "UTC"
    # Preferences links expire (an expired one offers to mail a fresh link); unsubscribe links
    # never do (RFC 8058: recipients click old mail). See docs/security.md.
    preferences_link_days: int = Field(60, ge=1, le=3650)

    @field_validator("sender", "reply_to", "public_base_url", "unsubscribe_mailto")
    @classmethod
    def _one_line(cls, v: str) -> str:
        # These go into every message's headers: a control character would make every digest
        # unbuildable (each subscriber's row failed for a configuration typo). Refused at load.
        if any(ord(c) < 32 or ord(c) == 127 or c in "\u2028\u2029" for c in v):
            raise ValueError("must be one line without control characters")
        return v


class MailSettings(_Strict):
    mode: Literal["outbox", "smtp"] = "outbox"
    outbox_dir: Path = Path("outbox")
    smtp_connection_id: str = "smtp_default"
    rate_per_second: float = Field(20.0, gt=0)
    max_permanent_failures: int = Field(3, ge=1)


class ScheduleSettings(_Strict):
    ingest_cron: str = "0 5 * * *"
    # Digests normally follow the ingest's asset event; this time is the fallback that sends
    # late digests when the ingest failed (see docs/operations.md).
    digest_fallback_cron: str = "0 9 * * *"
    timezone: str = "UTC"


class Settings(_Strict):
    """The whole validated configuration."""

    data_dir: Path = Path("data")
    store_url: str | None = None  # default: SQLite file in data_dir
    taxonomy: Path | None = None  # default: the packaged taxonomy
    pubmed: PubMedSettings = PubMedSettings()
    feeds: list[FeedConfig] = []
    feed_settings: FeedSettings = FeedSettings()
    digest: DigestSettings = DigestSettings()
    mail: MailSettings = MailSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    source_file: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _unique_feed_ids(self) -> Settings:
        seen: set[str] = set()
        for f in self.feeds:
            if f.id in seen:
                raise ValueError(f"feed id {f.id!r} appears twice")
            seen.add(f.id)
        return self

    @property
    def database_url(self) -> str:
        """The store's SQLAlchemy URL: $LUPUS_ALERTS_STORE_URL, else `store_url`, else SQLite in data_dir."""
        # The environment wins so deployments can keep a password-bearing URL out of the YAML.
        if os.environ.get(STORE_URL_ENV):
            return os.environ[STORE_URL_ENV]
        if self.store_url:
            return self.store_url
        return f"sqlite:///{(self.data_dir / 'lupus-alerts.db').resolve()}"

    def placeholder_problems(self) -> list[str]:
        """What still points at a placeholder or demo value: links to a reserved domain (RFC
        2606: example.*, *.test, *.invalid, localhost) or over plain http, a sender or a reply
        address on one. A live run refuses to start with any; `config check` lists them."""
        problems = []
        d = self.digest
        base = urlsplit(d.public_base_url)
        if base.scheme != "https":
            problems.append(
                f"digest.public_base_url {d.public_base_url!r} is not https: unsubscribe links must "
                "be https (RFC 8058), at the public address of the web app"
            )
        if _reserved_host(base.hostname or ""):
            problems.append(
                f"digest.public_base_url {d.public_base_url!r} is a placeholder: set the public "
                "address where the unsubscribe and preferences pages are served"
            )
        for name, value in (
            ("digest.sender", d.sender),
            ("digest.reply_to", d.reply_to),
            ("digest.unsubscribe_mailto", d.unsubscribe_mailto),
        ):
            domain = value.rstrip("> ").rpartition("@")[2]
            if value and _reserved_host(domain):
                problems.append(f"{name} {value!r} is a placeholder address: set your own")
        return problems

    def feed(self, feed_id: str) -> FeedConfig:
        for f in self.feeds:
            if f.id == feed_id:
                return f
        raise KeyError(f"no feed with id {feed_id!r} in the configuration")


_RESERVED_TLDS = ("example", "test", "invalid", "localhost")
OPERATOR_EMAIL_ENV = "LUPUS_ALERTS_OPERATOR_EMAIL"
OPERATOR_EMAIL_VAR_ENV = "AIRFLOW_VAR_LUPUS_ALERTS_OPERATOR_EMAIL"


def live_problems(
    settings: Settings, environ: Mapping[str, str] | None = None, *, demo_secret: str | None = None
) -> list[str]:
    """Why this configuration and environment must not run for real, each with its fix (empty: fine).

    The link-signing secret missing, short, a placeholder or the demo's (`demo_secret`); no
    operator address for failure alerts, or a placeholder one; and the configuration's own
    placeholders (`Settings.placeholder_problems`). `make run` refuses to start on any, and so
    does the compose deployment's init (`lupus-alerts config check --strict`).
    """
    from lupus_alerts import tokens

    environ = os.environ if environ is None else environ
    problems: list[str] = []
    try:  # refuses a missing, short or placeholder secret, as every path that signs links does
        raw = tokens.get_secret(environ.get(tokens.SECRET_ENV) or None)
    except tokens.MissingSecret as e:
        problems.append(str(e))
    else:
        if demo_secret and raw.decode("utf-8", "replace") == demo_secret:
            problems.append(
                f"{tokens.SECRET_ENV} is the demo's secret (.demo/link-secret): live links need their own"
            )
    operator = (environ.get(OPERATOR_EMAIL_VAR_ENV) or environ.get(OPERATOR_EMAIL_ENV) or "").strip()
    if not operator:
        problems.append(
            f"no operator address for failure alerts: set {OPERATOR_EMAIL_ENV} (or the Airflow "
            f"Variable lupus_alerts_operator_email, e.g. through {OPERATOR_EMAIL_VAR_ENV})"
        )
    elif _reserved_host(operator.rpartition("@")[2]):
        problems.append(f"the operator address {operator!r} is a placeholder: set your team's address")
    return problems + settings.placeholder_problems()


def _reserved_host(host: str) -> bool:
    # RFC 2606 / 6761 names that can never be a real deployment's, and loopback addresses.
    h = host.strip().strip(".").lower()
    labels = h.split(".")
    if not h or labels[-1] in _RESERVED_TLDS:
        return True
    if len(labels) >= 2 and labels[-2] == "example" and labels[-1] in ("com", "org", "net"):
        return True
    return h.startswith("127.") or h in ("::1", "[::1]", "0.0.0.0")


# scheme://user:password@host in any text (URLs in messages, a YAML error quoting a line).
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]*:)(?P<pw>[^\s@/]+)(?P<at>@)")


def redact_url(url: str) -> str:
    """A database or service URL with its password replaced by ***, for printing and logging."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a SQLAlchemy URL: fall back to the generic pattern
        return redact_text(url)


def redact_text(text: str) -> str:
    """`text` with the password of every `scheme://user:password@` in it replaced by ***."""
    return _URL_PASSWORD.sub(lambda m: f"{m['head']}***{m['at']}", text)


def config_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The config file to use: the argument, else $LUPUS_ALERTS_CONFIG, else ./lupus-alerts.yaml."""
    return Path(path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_NAME)


def load_config(path: str | os.PathLike[str] | None = None) -> Settings:
    """Read and validate the configuration; raise ConfigError naming file, field and problem."""
    p = config_path(path)
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{p}: configuration file not found (set {CONFIG_ENV} or create {DEFAULT_CONFIG_NAME})"
        ) from None
    except yaml.YAMLError as e:
        raise ConfigError(_yaml_error(p, e)) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: the top level must be a mapping of settings")
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_describe(p, e)) from None
    return _resolve_paths(settings, p)


def _yaml_error(path: Path, e: yaml.YAMLError) -> str:
    # PyYAML's own message quotes a snippet of the offending line, which may be a store URL with
    # its password (cut anywhere, so a pattern cannot always find it): say where, not what.
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or type(e).__name__
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    context = getattr(e, "context", None)
    return redact_text(f"{path}: not valid YAML{where}: {problem}" + (f" ({context})" if context else ""))


def settings_from_dict(raw: dict, base_dir: Path | None = None) -> Settings:
    """Validate settings given as a dict (tests, tools); relative paths resolve from base_dir."""
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_describe(Path("<dict>"), e)) from None
    return _resolve_paths(settings, (base_dir or Path.cwd()) / "<dict>")


def _resolve_paths(s: Settings, file: Path) -> Settings:
    base = file.parent.resolve()

    def res(x: Path | None) -> Path | None:
        return None if x is None else (x if x.is_absolute() else (base / x).resolve())

    store_url = s.store_url
    if store_url and store_url.startswith("sqlite:///") and not store_url.startswith("sqlite:////"):
        rel = store_url.removeprefix("sqlite:///")
        if rel and rel != ":memory:":
            store_url = f"sqlite:///{(base / rel).resolve()}"
    return s.model_copy(
        update={
            "data_dir": res(s.data_dir),
            "taxonomy": res(s.taxonomy),
            "store_url": store_url,
            "mail": s.mail.model_copy(update={"outbox_dir": res(s.mail.outbox_dir)}),
            "source_file": file if file.name != "<dict>" else None,
        }
    )


def _describe(path: Path, err: ValidationError) -> str:
    lines = [f"{path}: invalid configuration ({err.error_count()} problem(s))"]
    for e in err.errors():
        where = ".".join(str(x) for x in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            msg = "unknown field (misspelt? see lupus-alerts.yaml.example for the valid fields)"
        else:
            msg = e["msg"]
        lines.append(f"  - {where}: {msg}")
    return "\n".join(lines)
