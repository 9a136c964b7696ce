"""Unsubscribe, preferences and the paper list over HTTP: a small public FastAPI app.

Its own service, never part of Airflow (docs/operations.md, "Which ports are public"):
`lupus-alerts web serve` (uvicorn, `--workers N` processes), the `lupus-alerts-web` service in
docker-compose.yaml, behind the operator's reverse proxy; `digest.public_base_url` points there.

- `GET  /unsubscribe?token=`  a confirmation page with a button. Link scanners and prefetchers
  follow GETs (and HEADs); neither ever unsubscribes anyone.
- `POST /unsubscribe?token=`  RFC 8058 one-click (body `List-Unsubscribe=One-Click`, sent by the
  mail provider, no cookies, no login) and the confirmation page's button. Idempotent: 200 again,
  and of concurrent POSTs exactly one changes the status.
- `GET/POST /preferences?token=`  topics, frequency and weekday. Preferences links expire after
  `digest.preferences_link_days`; an expired one gets a page that offers a fresh link.
- `POST /email-link?token=`  mail a fresh preferences link to the subscriber's own address (from
  an expired preferences link, or the unsubscribe pages, which never hand out a preferences
  token themselves); at most one such mail per subscriber every LINK_MAIL_INTERVAL.
- `GET  /papers?from=&to=[&topic=]`  the lupus papers announced in (from, to], oldest first, a
  page at a time: the "see them all online" link of a digest that holds more papers than the
  subscriber's maximum. Public (the list is the same for everyone, no token) and cacheable.
- `GET  /healthz`  readiness: 200 when the store answers, 503 when it does not.
  `GET /livez`  liveness: 200 while the process serves requests.

A missing, malformed or tampered token gets 400 with a page that says nothing about anyone; a
valid token for a subscriber who no longer exists (or whose links were revoked) gets the same
page with 404. Token pages are not cached, not indexed, and send no Referer (the token is in the
URL); every response carries the security headers, error pages included. The store unreachable,
or a lock or statement timeout: 503 with a page. Handlers are plain functions (FastAPI runs them
in its thread pool), and every transaction has a lock timeout and a statement timeout, so a slow
database never stalls the event loop. Tokens are kept out of uvicorn's access log. Nothing is
loaded at import: the configuration and the store engine are opened on the first request.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import sqlalchemy as sa
from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import DictLoader, Environment, select_autoescape
from sqlalchemy.engine import Connection, Engine

from lupus_alerts import digest, mailer, subscribers, tokens
from lupus_alerts import store as db

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from lupus_alerts.config import Settings

log = logging.getLogger(__name__)

WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
# How long a request waits for a row lock (PostgreSQL) or the write lock (SQLite), and how long
# one statement may run, before the request gets a 503 page instead of holding a worker.
LOCK_TIMEOUT_S = 5.0
STATEMENT_TIMEOUT_S = 10.0
# At most one "here is a fresh link" mail per subscriber in this interval.
LINK_MAIL_INTERVAL = timedelta(minutes=10)

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
}

# The paper list holds no personal data and changes only when a paper is reclassified or
# retracted, so browsers and proxies may keep it a few minutes; everything else stays as above.
_PUBLIC_HEADERS = {**SECURITY_HEADERS, "Cache-Control": "public, max-age=300"}

# A page of the paper list; the next page starts after its last paper (keyset paging, so a page
# costs one indexed range scan however far into the range it is).
PAPERS_PAGE_SIZE = 500
# announce_no is a BIGINT; longer numbers are refused before they reach the database.
_ANNOUNCE_NO = re.compile(r"[0-9]{1,18}")
# Pages also reachable with a trailing slash (a mail client or a person may add one).
_PAGES = ("unsubscribe", "preferences", "email-link", "papers")

_TEMPLATES = {
    "base.html": """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex, nofollow">
<title>{% block title %}Lupus Alerts{% endblock %}</title>
<style>
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:36em;margin:2em auto;
padding:0 1em;
color:#1f2933;line-height:1.5}
h1{font-size:1.4em;color:#7b1e3a}button{font-size:1em;padding:.6em 1.4em;border:0;border-radius:4px;
background:#7b1e3a;color:#fff;cursor:pointer}fieldset{border:1px solid #ccd;margin:1em 0}
label{display:block;margin:.2em 0}.muted{color:#5f6b7a;font-size:.9em}.ok{color:#1d6b36}
ol.papers{padding-left:1.4em}ol.papers li{margin:0 0 1em}.badge{display:inline-block;font-size:.75em;
padding:0 .5em;margin-right:.3em;border-radius:3px;background:#e8eef6;color:#123b66}.bad{color:#b3261e}
@media (prefers-color-scheme: dark){body{background:#15181c;color:#e4e7eb}h1{color:#f08aa8}}
</style></head>
<body><h1>{% block heading %}Lupus Alerts{% endblock %}</h1>{% block body %}{% endblock %}</body></html>""",
    "invalid.html": """{% extends "base.html" %}{% block title %}Link not valid{% endblock %}
{% block heading %}This link is not valid{% endblock %}{% block body %}
<p>The link may be incomplete (some mail programs break long links) or out of date.
Please use the link from your most recent digest, or reply to a digest to ask us for help.</p>
{% endblock %}""",
    "unavailable.html": """{% extends "base.html" %}{% block title %}Unavailable{% endblock %}
{% block heading %}Temporarily unavailable{% endblock %}{% block body %}
<p>Please try again later, or reply to a digest and we will do it for you.</p>{% endblock %}""",
    "error.html": """{% extends "base.html" %}{% block title %}Something went wrong{% endblock %}
{% block heading %}Something went wrong{% endblock %}{% block body %}
<p>Please try again later, or reply to a digest and we will do it for you.</p>{% endblock %}""",
    "unsubscribe_confirm.html": """{% extends "base.html" %}{% block title %}Unsubscribe{% endblock %}
{% block heading %}Unsubscribe from Lupus Alerts?{% endblock %}{% block body %}
{% if already %}<p class="ok">You are already unsubscribed. You will not receive any more digests.</p>
{% else %}<p>You will stop receiving the Lupus Alerts literature digest.</p>
<form method="post" action="unsubscribe?token={{ token|urlencode }}">
<input type="hidden" name="List-Unsubscribe" value="One-Click">
<button type="submit">Unsubscribe</button></form>{% endif %}
<form method="post" action="email-link?token={{ token|urlencode }}">
<p class="muted">Prefer fewer emails, or other topics? <button type="submit">Email me a link to my
preferences</button></p></form>{% endblock %}""",
    "unsubscribed.html": """{% extends "base.html" %}{% block title %}Unsubscribed{% endblock %}
{% block heading %}You are unsubscribed{% endblock %}{% block body %}
<p class="ok">You will not receive any more Lupus Alerts digests.</p>
<form method="post" action="email-link?token={{ token|urlencode }}">
<p class="muted">Unsubscribed by mistake? <button type="submit">Email me a link to subscribe
again</button></p></form>{% endblock %}""",
    "expired.html": """{% extends "base.html" %}{% block title %}Link expired{% endblock %}
{% block heading %}This link has expired{% endblock %}{% block body %}
<p>Links to change your preferences work for {{ days }} days. We can email a fresh link to the
address your digests go to.</p>
<form method="post" action="email-link?token={{ token|urlencode }}">
<button type="submit">Email me a new link</button></form>
<p class="muted">To stop the digests, use the unsubscribe link in any digest: it does not expire.</p>
{% endblock %}""",
    "link_sent.html": """{% extends "base.html" %}{% block title %}Link sent{% endblock %}
{% block heading %}Check your inbox{% endblock %}{% block body %}
<p class="ok">We have emailed a link to your preferences to the address your digests go to.
It may take a few minutes to arrive; we send at most one every {{ minutes }} minutes.</p>
{% endblock %}""",
    "papers_invalid.html": """{% extends "base.html" %}{% block title %}Link not valid{% endblock %}
{% block heading %}This link is not valid{% endblock %}{% block body %}
<p>The list of papers needs <code>from</code> and <code>to</code>, whole numbers with
<code>from</code> not above <code>to</code>{% if bad_topic %}, and a known topic{% endif %}.
Please use the link from your digest.</p>{% endblock %}""",
    "papers.html": """{% extends "base.html" %}{% block title %}Lupus papers{% endblock %}
{% block heading %}Lupus papers{% if topic_name %}: {{ topic_name }}{% endif %}{% endblock %}
{% block body %}
{% if papers %}<p class="muted">{{ papers|length }} paper{% if papers|length != 1 %}s{% endif %}
{% if next_url %} on this page{% endif %}, in the order they were announced.
{% if topic_name %}<a href="{{ all_topics_url }}">All topics</a>{% endif %}</p>
<ol class="papers">
{% for p in papers %}<li>{% if p.url %}<a href="{{ p.url }}" rel="noopener noreferrer">{{ p.title }}</a>
{%- else %}{{ p.title }}{% endif %}
{% if p.retracted %} <strong class="bad">Retracted</strong>{% endif %}<br>
{% for b in p.badges %}<span class="badge">{{ b }}</span>{% endfor %}
<span class="muted">{{ p.details }}</span></li>
{% endfor %}</ol>
{% if next_url %}<p><a href="{{ next_url }}">Next papers</a></p>{% endif %}
{% else %}<p>No lupus papers were announced in this range{% if topic_name %} on this topic{% endif %}.</p>
{% endif %}{% endblock %}""",
    "preferences.html": """{% extends "base.html" %}{% block title %}Digest preferences{% endblock %}
{% block heading %}Your digest preferences{% endblock %}{% block body %}
{% if saved %}<p class="ok">Saved.</p>{% endif %}
{% if error %}<p role="alert"><strong>Not saved:</strong> {{ error }}</p>{% endif %}
{% if status == "unsubscribed" %}<p>You are unsubscribed. Saving this form subscribes you again.</p>
{% elif status == "bounced" %}<p>Digests to your address were bounced by your mail server, so we stopped
sending. Saving this form starts them again.</p>{% endif %}
<form method="post" action="preferences?token={{ token|urlencode }}">
<fieldset><legend>Topics</legend>
<label><input type="checkbox" name="all_topics" value="1"{% if all_topics %} checked{% endif %}>
All topics</label>
{% for id, name in topics %}<label><input type="checkbox" name="topics" value="{{ id }}"
{%- if id in chosen %} checked{% endif %}> {{ name }}</label>
{% endfor %}</fieldset>
<fieldset><legend>How often</legend>
<label><input type="radio" name="frequency" value="daily"{% if frequency == "daily" %} checked{% endif %}>
Daily</label>
<label><input type="radio" name="frequency" value="weekly"{% if frequency == "weekly" %} checked{% endif %}>
Weekly, on <select name="weekday">{% for n in weekdays %}<option value="{{ loop.index0 }}"
{%- if weekday == loop.index0 %} selected{% endif %}>{{ n }}</option>{% endfor %}</select></label>
</fieldset>
<button type="submit">Save preferences</button></form>
<p class="muted"><a href="unsubscribe?token={{ unsub_token|urlencode }}">Unsubscribe</a></p>
{% endblock %}""",
}

_env = Environment(
    loader=DictLoader(_TEMPLATES),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)

# Database trouble the visitor can do nothing about but come back: 503, not 500.
_UNAVAILABLE_ERRORS = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError)


class _Store:
    """The settings and the engine, opened on first use from the configuration (or factories, in
    tests), and the transactions of one request, each with its lock and statement timeouts."""

    def __init__(
        self,
        engine_factory: Callable[[], Engine] | None,
        settings_factory: Callable[[], Settings] | None,
        *,
        lock_timeout_s: float,
        statement_timeout_s: float,
    ) -> None:
        self._engine_factory = engine_factory
        self._settings_factory = settings_factory
        self._engine: Engine | None = None
        self._settings: Settings | None = None
        self._lock = threading.Lock()
        self.lock_timeout_s = lock_timeout_s
        self.statement_timeout_s = statement_timeout_s

    def settings(self) -> Settings:
        if self._settings is None:
            with self._lock:
                if self._settings is None:
                    if self._settings_factory is not None:
                        self._settings = self._settings_factory()
                    else:
                        from lupus_alerts.config import load_config

                        self._settings = load_config()
        return self._settings

    def engine(self) -> Engine:
        if self._engine is None:
            settings = None if self._engine_factory is not None else self.settings()
            with self._lock:
                if self._engine is None:
                    if self._engine_factory is not None:
                        self._engine = self._engine_factory()
                    else:
                        assert settings is not None
                        self._engine = db.get_engine(settings.database_url)
        return self._engine

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction (on SQLite it never waits for a writer)."""
        with self._transaction(read_only=True) as conn:
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction, committed on success."""
        with self._transaction(read_only=False) as conn:
            yield conn

    @contextmanager
    def _transaction(self, *, read_only: bool) -> Iterator[Connection]:
        with self.engine().connect() as conn:
            if conn.dialect.name == "sqlite":
                with self._sqlite_limits(conn):
                    conn.execution_options(**{db.READ_ONLY: read_only})
                    with conn.begin():
                        yield conn
                return
            with conn.begin():
                if conn.dialect.name == "postgresql":
                    # SET LOCAL: for this transaction only, so the pooled connection (shared with
                    # nothing else in the web app, but maybe in tests) keeps its settings.
                    conn.exec_driver_sql(f"SET LOCAL lock_timeout = {int(self.lock_timeout_s * 1000)}")
                    conn.exec_driver_sql(
                        f"SET LOCAL statement_timeout = {int(self.statement_timeout_s * 1000)}"
                    )
                yield conn

    @contextmanager
    def _sqlite_limits(self, conn: Connection) -> Iterator[None]:
        # SQLite has no lock or statement timeout: the busy timeout bounds the wait for the
        # write lock (set before BEGIN IMMEDIATE, which is what waits), and a progress handler
        # interrupts a statement that runs past its deadline. Both are restored after, for the
        # pooled connection's next user.
        raw = conn.connection.driver_connection
        deadline = time.monotonic() + self.statement_timeout_s
        raw.execute(f"PRAGMA busy_timeout={int(self.lock_timeout_s * 1000)}")
        raw.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
        try:
            yield
        finally:
            raw.set_progress_handler(None, 0)
            raw.execute(f"PRAGMA busy_timeout={db.SQLITE_BUSY_TIMEOUT_MS}")


def _page(
    name: str, http_status: int = 200, *, headers: Mapping[str, str] = SECURITY_HEADERS, **ctx: Any
) -> HTMLResponse:
    return HTMLResponse(_env.get_template(name).render(**ctx), status_code=http_status, headers=dict(headers))


def _unavailable() -> HTMLResponse:
    return _page("unavailable.html", 503, headers={**SECURITY_HEADERS, "Retry-After": "60"})


class _BadLink(Exception):
    def __init__(self, status: int) -> None:
        self.status = status


class _ExpiredLink(Exception):
    def __init__(self, token: str) -> None:
        self.token = token


def _today() -> date:
    return datetime.now(UTC).date()


def _claims(token: str | None, purposes: Sequence[str]) -> tokens.Claims:
    if not token:
        raise _BadLink(400)
    for purpose in purposes:
        try:
            return tokens.check_token(token, purpose)
        except tokens.InvalidToken:
            continue
    raise _BadLink(400)


def _subscriber(conn: Connection, claims: tokens.Claims) -> subscribers.Subscriber:
    """The subscriber a valid token names; 404 when deleted or their links were revoked."""
    try:
        if claims.link_key is not None:
            return subscribers.get_by_link_key(conn, claims.link_key)
        assert claims.legacy_id is not None
        sub = subscribers.get(conn, claims.legacy_id)
    except subscribers.SubscriberNotFound:
        raise _BadLink(404) from None
    # A first-format token names an id, which SQLite hands out again: it counts only for a
    # subscriber who existed when such tokens were sent, and whose links were not revoked.
    if not sub.legacy_links:
        raise _BadLink(404)
    return sub


async def _form(request: Request) -> dict[str, list[str]]:
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        return {}
    form = await request.form()
    out: dict[str, list[str]] = {}
    for k, v in form.multi_items():
        if isinstance(v, str):
            out.setdefault(k, []).append(v)
    return out


_TOKEN_IN_QUERY = re.compile(r"(?i)((?:^|[?&;])token=)[^&;#\s\"]*")


def redact_tokens(text: str) -> str:
    """`text` (a request line, a URL) with every `token=` query value replaced by [redacted]."""
    return _TOKEN_IN_QUERY.sub(r"\1[redacted]", text)


class RedactTokens(logging.Filter):
    """Keeps link tokens out of uvicorn's access log (`GET /unsubscribe?token=[redacted]`).

    Attached to the `uvicorn.access` logger, so it applies before any handler writes the line.
    (Airflow's API server has its own access log, which already masks a `token` parameter.)
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_tokens(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact_tokens(record.msg)
        return True


def _install_access_log_filter() -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactTokens) for f in access.filters):
        access.addFilter(RedactTokens())


class _SecurityHeaders:
    """Every response carries the security headers, unless it set its own value (the paper
    list's Cache-Control): FastAPI's own 404/405/422 answers included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._defaults = [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in SECURITY_HEADERS.items()
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers.extend((k, v) for k, v in self._defaults if k not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _BadRange(Exception):
    def __init__(self, *, bad_topic: bool = False) -> None:
        self.bad_topic = bad_topic


@dataclass(frozen=True, slots=True)
class ListedPaper:
    """One paper as the web list shows it."""

    announce_no: int
    title: str
    url: str | None
    details: str  # "journal · date · authors"
    badges: tuple[str, ...]
    retracted: bool


@dataclass(frozen=True, slots=True)
class PaperPage:
    """A page of the paper list; `next_from` is where the next page starts (None: last page)."""

    papers: tuple[ListedPaper, ...]
    next_from: int | None


def parse_range(from_: str | None, to: str | None) -> tuple[int, int]:
    """The (from, to] bounds of a paper list link; raises ValueError unless 0 <= from <= to.

    Only plain digits count: `int()` would also accept "+1", " 1" and "1_000".
    """
    if from_ is None or to is None or not _ANNOUNCE_NO.fullmatch(from_) or not _ANNOUNCE_NO.fullmatch(to):
        raise ValueError("from and to must be whole numbers")
    lo, hi = int(from_), int(to)
    if lo > hi:
        raise ValueError("from must not be above to")
    return lo, hi


def _first_date(record: Mapping[str, Any], pub_date: Any) -> date | None:
    # The earliest known date, as the digest shows it (models.Paper.first_date).
    found: list[date] = []
    for v in (record.get("epub_date"), record.get("pub_date"), pub_date):
        if isinstance(v, date):
            found.append(v)
        elif isinstance(v, str) and v:
            try:
                found.append(date.fromisoformat(v[:10]))
            except ValueError:
                continue
    return min(found) if found else None


def list_papers(
    db_or_conn: Engine | Connection,
    announce_from: int,
    announce_to: int,
    *,
    topics: Sequence[str] = (),
    page_size: int = PAPERS_PAGE_SIZE,
) -> PaperPage:
    """The lupus papers announced in (announce_from, announce_to], by announce_no, one page.

    With `topics`, only papers labelled with at least one of them (a subscriber's choice, as the
    digest's overflow link passes it). Reads the store; writes nothing.
    """
    p, pt = db.papers, db.paper_topics
    q = (
        sa.select(p.c.id, p.c.announce_no, p.c.title, p.c.journal, p.c.pub_date, p.c.record, p.c.is_retracted)
        .where(p.c.announce_no > announce_from, p.c.announce_no <= announce_to, p.c.is_lupus.is_(True))
        .order_by(p.c.announce_no)
        .limit(page_size + 1)
    )
    if topics:
        q = q.where(sa.exists().where(pt.c.paper_id == p.c.id, pt.c.label.in_(list(topics))))
    with _connection(db_or_conn) as conn:
        rows = conn.execute(q).all()
        more = len(rows) > page_size
        rows = rows[:page_size]
        scores: dict[int, dict[str, float]] = {int(r.id): {} for r in rows}
        if rows:
            tq = sa.select(pt.c.paper_id, pt.c.label, pt.c.score).where(pt.c.paper_id.in_(list(scores)))
            for pid, label, score in conn.execute(tq):
                scores[int(pid)][label] = float(score)
    order = {k: i for i, k in enumerate(subscribers.topic_labels())}
    listed = []
    for r in rows:
        rec = r.record if isinstance(r.record, dict) else {}
        topics = scores[int(r.id)]
        ranked = sorted(topics, key=lambda t: (-topics[t], order.get(t, len(order)), t))
        journal = rec.get("journal") or rec.get("journal_iso") or r.journal or ""
        details = [
            str(journal),
            digest.format_date(_first_date(rec, r.pub_date)) or str(rec.get("pub_date_text") or ""),
            digest.authors_text(rec.get("authors") or ()),
        ]
        listed.append(
            ListedPaper(
                announce_no=int(r.announce_no),
                title=str(rec.get("title") or r.title or "(untitled)"),
                url=digest.paper_url(rec.get("doi"), rec.get("pmid"), rec.get("url")),
                details=" · ".join(d for d in details if d),
                badges=tuple(subscribers.topic_short_name(t) for t in ranked),
                retracted=bool(r.is_retracted or rec.get("is_retracted")),
            )
        )
    return PaperPage(tuple(listed), listed[-1].announce_no if more else None)


@contextmanager
def _connection(db_or_conn: Engine | Connection) -> Iterator[Connection]:
    if isinstance(db_or_conn, Connection):
        yield db_or_conn
    else:
        with db_or_conn.connect() as conn:
            yield conn


def create_app(
    *,
    engine_factory: Callable[[], Engine] | None = None,
    settings_factory: Callable[[], Settings] | None = None,
    transport_factory: Callable[[], mailer.Transport] | None = None,
    papers_page_size: int = PAPERS_PAGE_SIZE,
    lock_timeout_s: float = LOCK_TIMEOUT_S,
    statement_timeout_s: float = STATEMENT_TIMEOUT_S,
) -> FastAPI:
    """The unsubscribe/preferences/paper-list app.

    `engine_factory` and `settings_factory` override the configured store and settings (tests);
    `transport_factory` the transport that mails fresh links (default: the configured one,
    `mail.mode`); `papers_page_size` is the number of papers on one page of `/papers`; the
    timeouts bound each request's database work.
    """
    store = _Store(
        engine_factory,
        settings_factory,
        lock_timeout_s=lock_timeout_s,
        statement_timeout_s=statement_timeout_s,
    )
    _install_access_log_filter()
    app = FastAPI(
        title="Lupus Alerts: unsubscribe and preferences",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        # Starlette would answer "/unsubscribe/" with a redirect built from the Host header
        # (`Host: evil.example` -> http://evil.example/...): the app makes its own, relative.
        redirect_slashes=False,
    )
    app.add_middleware(_SecurityHeaders)

    @app.exception_handler(_BadLink)
    async def _bad_link(request: Request, exc: _BadLink) -> Response:
        return _page("invalid.html", exc.status)

    @app.exception_handler(_ExpiredLink)
    async def _expired(request: Request, exc: _ExpiredLink) -> Response:
        days = store.settings().digest.preferences_link_days
        return _page("expired.html", 410, token=exc.token, days=days)

    @app.exception_handler(tokens.MissingSecret)
    async def _no_secret(request: Request, exc: tokens.MissingSecret) -> Response:
        log.error("lupus-alerts web: %s", exc)
        return _unavailable()

    async def _store_unavailable(request: Request, exc: Exception) -> Response:
        # The database is down, or a lock or statement timeout fired: a page the visitor can
        # read, with the headers, instead of a bare 500 (or a request that hangs).
        log.warning("lupus-alerts web: the store is unavailable: %s", type(exc).__name__, exc_info=exc)
        return _unavailable()

    from lupus_alerts.config import ConfigError

    for exc_type in (*_UNAVAILABLE_ERRORS, ConfigError, mailer.TransportError):
        app.add_exception_handler(exc_type, _store_unavailable)

    @app.exception_handler(Exception)
    async def _error(request: Request, exc: Exception) -> Response:
        log.error("lupus-alerts web: unexpected error", exc_info=exc)
        return _page("error.html", 500)

    def _resolve(conn: Connection, token: str | None, purpose: str) -> subscribers.Subscriber:
        """The subscriber of a valid, current `purpose` token; _BadLink or _ExpiredLink otherwise."""
        claims = _claims(token, (purpose,))
        sub = _subscriber(conn, claims)
        if purpose == "unsubscribe":
            return sub  # never expires (RFC 8058: one-click must work from old mail)
        assert token is not None
        if claims.expired(_today(), store.settings().digest.preferences_link_days):
            raise _ExpiredLink(token)
        return sub

    @app.api_route("/unsubscribe", methods=["GET", "HEAD"], response_class=HTMLResponse)
    def unsubscribe_page(token: str | None = None) -> Response:
        with store.read() as conn:
            sub = _resolve(conn, token, "unsubscribe")
        # No preferences token here: anyone holding the unsubscribe link (a forwarded digest, a
        # scanner) would get the right to change topics and resubscribe. A button mails one to
        # the subscriber instead.
        return _page("unsubscribe_confirm.html", token=token, already=sub.status == "unsubscribed")

    @app.post("/unsubscribe", response_class=HTMLResponse)
    def unsubscribe(token: str | None = None, form: dict[str, list[str]] = Depends(_form)) -> Response:
        token = token or (form.get("token") or [None])[0]
        with store.write() as conn:
            sub = _resolve(conn, token, "unsubscribe")
            changed = subscribers.unsubscribe(conn, sub.id)
        # The token is the authority; the RFC 8058 body is not required, so a client that posts
        # an empty body still unsubscribes (the spec asks servers to be liberal here).
        if changed:
            log.info("subscriber %s unsubscribed (one-click=%s)", sub.id, "List-Unsubscribe" in form)
        return _page("unsubscribed.html", token=token)

    def _prefs_page(
        sub: subscribers.Subscriber, token: str, http_status: int = 200, **extra: Any
    ) -> Response:
        return _page(
            "preferences.html",
            http_status,
            token=token,
            unsub_token=tokens.make_token(sub.link_key, "unsubscribe", issued=_today()),
            topics=list(subscribers.topic_labels().items()),
            chosen=sub.topics or frozenset(),
            all_topics=sub.topics is None,
            frequency=sub.frequency,
            weekday=sub.weekday if sub.weekday is not None else 0,
            weekdays=WEEKDAY_NAMES,
            status=sub.status,
            **extra,
        )

    @app.api_route("/preferences", methods=["GET", "HEAD"], response_class=HTMLResponse)
    def preferences_page(token: str | None = None) -> Response:
        with store.read() as conn:
            sub = _resolve(conn, token, "preferences")
        return _prefs_page(sub, token or "")

    @app.post("/preferences", response_class=HTMLResponse)
    def preferences(token: str | None = None, form: dict[str, list[str]] = Depends(_form)) -> Response:
        frequency_given = (form.get("frequency") or [None])[0]
        try:
            with store.write() as conn:
                sub = _resolve(conn, token, "preferences")
                frequency = frequency_given or sub.frequency
                weekday = (form.get("weekday") or [None])[0] if frequency == "weekly" else None
                topics: list[str] | None = None if form.get("all_topics") else form.get("topics", [])
                changes: dict[str, Any] = {"topics": topics, "frequency": frequency, "weekday": weekday}
                if sub.status != "active":
                    changes["status"] = "active"  # saving preferences is an explicit wish for digests
                updated = subscribers.update(conn, sub.id, **changes)
        except subscribers.InvalidSubscriber as e:
            # Rolled back. The message names a field and a rule, never anyone's data.
            with store.read() as conn:
                sub = _resolve(conn, token, "preferences")
            return _prefs_page(sub, token or "", 422, error=str(e))
        return _prefs_page(updated, token or "", saved=True)

    def _send_link(sub: subscribers.Subscriber) -> None:
        settings = store.settings()
        now = db.utcnow()
        url = tokens.preferences_url(settings, sub.link_key, issued=now.date())
        msg = mailer.build_link_message(settings, name=sub.name, email=sub.email, url=url, now=now)
        factory = transport_factory or (lambda: mailer.transport_from_settings(settings))
        with factory() as transport:  # type: ignore[attr-defined]
            result = transport.send(msg)
        if not result.ok:
            raise mailer.TransportError(f"the link mail was not accepted: {result.code} {result.message}")

    @app.post("/email-link", response_class=HTMLResponse)
    def email_link(token: str | None = None, form: dict[str, list[str]] = Depends(_form)) -> Response:
        token = token or (form.get("token") or [None])[0]
        # Any valid link of this subscriber, expired or not: the mail goes to their own address.
        claims = _claims(token, ("preferences", "unsubscribe"))
        now = db.utcnow()
        with store.write() as conn:
            sub = _subscriber(conn, claims)
            may_send = subscribers.claim_link_mail(conn, sub.id, now=now, min_interval=LINK_MAIL_INTERVAL)
        if may_send:
            try:
                _send_link(sub)
            except (mailer.MailerError, OSError) as e:
                with store.write() as conn:  # let the visitor try again at once
                    conn.execute(
                        sa.update(db.subscribers)
                        .where(db.subscribers.c.id == sub.id)
                        .values(links_sent_at=None)
                    )
                if isinstance(e, mailer.TransportError):
                    raise
                raise mailer.TransportError(f"the link mail could not be sent: {e}") from e
            log.info("subscriber %s was mailed a fresh preferences link", sub.id)
        # The same page when throttled: it says nothing about whether a mail went out.
        return _page("link_sent.html", minutes=int(LINK_MAIL_INTERVAL.total_seconds() // 60))

    @app.exception_handler(_BadRange)
    async def _bad_range(request: Request, exc: _BadRange) -> Response:
        return _page("papers_invalid.html", 400, bad_topic=exc.bad_topic)

    # `from` is a Python keyword, hence the alias; the values are read as text and checked here
    # so a bad link gets the project's 400 page rather than FastAPI's 422 JSON.
    @app.api_route("/papers", methods=["GET", "HEAD"], response_class=HTMLResponse)
    def papers_page(
        from_: str | None = Query(None, alias="from"),
        to: str | None = None,
        topic: list[str] = Query(default=[]),
    ) -> Response:
        try:
            lo, hi = parse_range(from_, to)
        except ValueError:
            raise _BadRange() from None
        names = subscribers.topic_labels()
        chosen = sorted({t for t in topic if t})
        if any(t not in names for t in chosen):
            raise _BadRange(bad_topic=True)
        with store.read() as conn:
            page = list_papers(conn, lo, hi, topics=chosen, page_size=papers_page_size)
        next_url = None
        if page.next_from is not None:
            query = [("from", page.next_from), ("to", hi), *(("topic", t) for t in chosen)]
            next_url = "papers?" + urlencode(query)
        return _page(
            "papers.html",
            headers=_PUBLIC_HEADERS,
            papers=page.papers,
            next_url=next_url,
            topic_name=", ".join(names[t] for t in chosen) or None,
            all_topics_url="papers?" + urlencode({"from": lo, "to": hi}),
        )

    def _to_page(name: str) -> Callable[[Request], Response]:
        def redirect(request: Request) -> Response:
            # Relative ("../unsubscribe?token=..."): right wherever the app is mounted, and
            # never built from the Host header. 307 keeps a POST a POST.
            query = request.url.query
            return RedirectResponse(f"../{name}" + (f"?{query}" if query else ""), status_code=307)

        return redirect

    for name in _PAGES:
        app.add_api_route(
            f"/{name}/", _to_page(name), methods=["GET", "HEAD", "POST"], include_in_schema=False
        )

    @app.get("/healthz")
    def healthz() -> Response:
        """Readiness: the store answers a query within the statement timeout."""
        try:
            with store.read() as conn:
                conn.execute(sa.text("SELECT 1"))
        except Exception as e:  # any failure means "not ready"; the cause goes to the log
            log.warning("lupus-alerts web: health check failed: %s: %s", type(e).__name__, e)
            return JSONResponse(
                {"status": "unavailable", "database": "unreachable"}, 503, headers=SECURITY_HEADERS
            )
        return JSONResponse({"status": "ok", "database": "ok"}, headers=SECURITY_HEADERS)

    @app.get("/livez")
    def livez() -> Response:
        """Liveness: the process serves requests (restart it only when this fails)."""
        return JSONResponse({"status": "ok"}, headers=SECURITY_HEADERS)

    return app


app = create_app()
