"""Unsubscribe, preferences and the paper list over HTTP: a small public FastAPI app.

Served two ways (docs/delivery.md explains the choice): mounted on the Airflow 3 API server by
`plugins/lupus_alerts_plugin.py` under `/lupus-alerts`, or standalone with
`lupus-alerts web serve` (uvicorn). Either way `digest.public_base_url` must point at it.

- `GET  /unsubscribe?token=`  a confirmation page with a button. Link scanners and prefetchers
  follow GETs; a GET never unsubscribes anyone.
- `POST /unsubscribe?token=`  RFC 8058 one-click (body `List-Unsubscribe=One-Click`, sent by the
  mail provider, no cookies, no login) and the confirmation page's button. Idempotent: 200 again.
- `GET/POST /preferences?token=`  topics, frequency and weekday.
- `GET  /papers?from=&to=[&topic=]`  the lupus papers announced in (from, to], oldest first, a
  page at a time: the "see them all online" link of a digest that holds more papers than the
  subscriber's maximum. Public (the list is the same for everyone, no token) and cacheable.

A missing, malformed or tampered token gets 400 with a page that says nothing about anyone; a
valid token for a subscriber who no longer exists gets the same page with 404. Token pages are
not cached, not indexed, and send no Referer (the token is in the URL); the paper list may be
cached for a few minutes. Bad `/papers` parameters get 400 with a page of their own. Airflow
does not authenticate plugin apps, which is what these public endpoints need. Nothing is loaded
at import: the configuration and the store engine are opened on the first request.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import DictLoader, Environment, select_autoescape
from sqlalchemy.engine import Engine

from lupus_alerts import digest, subscribers, tokens
from lupus_alerts import store as db

log = logging.getLogger(__name__)

WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

_SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
}

# The paper list holds no personal data and changes only when a paper is reclassified or
# retracted, so browsers and proxies may keep it a few minutes; everything else stays as above.
_PUBLIC_HEADERS = {**_SECURITY_HEADERS, "Cache-Control": "public, max-age=300"}

# A page of the paper list; the next page starts after its last paper (keyset paging, so a page
# costs one indexed range scan however far into the range it is).
PAPERS_PAGE_SIZE = 500
# announce_no is a BIGINT; longer numbers are refused before they reach the database.
_ANNOUNCE_NO = re.compile(r"[0-9]{1,18}")

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
    "unsubscribe_confirm.html": """{% extends "base.html" %}{% block title %}Unsubscribe{% endblock %}
{% block heading %}Unsubscribe from Lupus Alerts?{% endblock %}{% block body %}
{% if already %}<p class="ok">You are already unsubscribed. You will not receive any more digests.</p>
{% else %}<p>You will stop receiving the Lupus Alerts literature digest.</p>
<form method="post" action="unsubscribe?token={{ token|urlencode }}">
<input type="hidden" name="List-Unsubscribe" value="One-Click">
<button type="submit">Unsubscribe</button></form>
<p class="muted">Prefer fewer emails? <a href="preferences?token={{ prefs_token|urlencode }}">Change topics or
frequency</a> instead.</p>{% endif %}{% endblock %}""",
    "unsubscribed.html": """{% extends "base.html" %}{% block title %}Unsubscribed{% endblock %}
{% block heading %}You are unsubscribed{% endblock %}{% block body %}
<p class="ok">You will not receive any more Lupus Alerts digests.</p>
<p class="muted">Unsubscribed by mistake? <a href="preferences?token={{ prefs_token|urlencode }}">Subscribe
again</a>.</p>{% endblock %}""",
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


class _Store:
    """The engine, opened on first use from the configuration (or a factory, in tests)."""

    def __init__(self, engine_factory: Callable[[], Engine] | None) -> None:
        self._factory = engine_factory
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    def engine(self) -> Engine:
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    if self._factory is not None:
                        self._engine = self._factory()
                    else:
                        from lupus_alerts import store
                        from lupus_alerts.config import load_config

                        self._engine = store.get_engine(load_config().database_url)
        return self._engine


def _page(
    name: str, http_status: int = 200, *, headers: Mapping[str, str] = _SECURITY_HEADERS, **ctx: Any
) -> HTMLResponse:
    return HTMLResponse(_env.get_template(name).render(**ctx), status_code=http_status, headers=dict(headers))


def _invalid(status: int = 400) -> HTMLResponse:
    return _page("invalid.html", status)


class _BadLink(Exception):
    def __init__(self, status: int) -> None:
        self.status = status


def _subscriber_for(store: _Store, token: str | None, purpose: str) -> subscribers.Subscriber:
    if not token:
        raise _BadLink(400)
    try:
        sid = tokens.check_token(token, purpose)
    except tokens.InvalidToken:
        raise _BadLink(400) from None
    try:
        return subscribers.get(store.engine(), sid)
    except subscribers.SubscriberNotFound:
        raise _BadLink(404) from None


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
    engine: Engine,
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
    with engine.connect() as conn:
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


def create_app(
    *, engine_factory: Callable[[], Engine] | None = None, papers_page_size: int = PAPERS_PAGE_SIZE
) -> FastAPI:
    """The unsubscribe/preferences/paper-list app.

    `engine_factory` overrides the configured store (tests); `papers_page_size` is the number of
    papers on one page of `/papers`.
    """
    store = _Store(engine_factory)
    app = FastAPI(
        title="Lupus Alerts: unsubscribe and preferences",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @app.exception_handler(_BadLink)
    async def _bad_link(request: Request, exc: _BadLink) -> Response:
        return _invalid(exc.status)

    @app.exception_handler(tokens.MissingSecret)
    async def _no_secret(request: Request, exc: tokens.MissingSecret) -> Response:
        log.error("lupus-alerts web: %s", exc)
        return _page("unavailable.html", 503)

    @app.get("/unsubscribe", response_class=HTMLResponse)
    def unsubscribe_page(token: str | None = None) -> Response:
        sub = _subscriber_for(store, token, "unsubscribe")
        return _page(
            "unsubscribe_confirm.html",
            token=token,
            prefs_token=tokens.make_token(sub.id, "preferences"),
            already=sub.status == "unsubscribed",
        )

    @app.post("/unsubscribe", response_class=HTMLResponse)
    async def unsubscribe(request: Request, token: str | None = None) -> Response:
        form = await _form(request)
        token = token or (form.get("token") or [None])[0]
        sub = _subscriber_for(store, token, "unsubscribe")
        # The token is the authority; the RFC 8058 body is not required, so a client that posts
        # an empty body still unsubscribes (the spec asks servers to be liberal here).
        if sub.status != "unsubscribed":
            subscribers.set_status(store.engine(), sub.id, "unsubscribed")
            log.info("subscriber %s unsubscribed (one-click=%s)", sub.id, "List-Unsubscribe" in form)
        return _page("unsubscribed.html", prefs_token=tokens.make_token(sub.id, "preferences"))

    def _prefs_page(
        sub: subscribers.Subscriber, token: str, http_status: int = 200, **extra: Any
    ) -> Response:
        return _page(
            "preferences.html",
            http_status,
            token=token,
            unsub_token=tokens.make_token(sub.id, "unsubscribe"),
            topics=list(subscribers.topic_labels().items()),
            chosen=sub.topics or frozenset(),
            all_topics=sub.topics is None,
            frequency=sub.frequency,
            weekday=sub.weekday if sub.weekday is not None else 0,
            weekdays=WEEKDAY_NAMES,
            status=sub.status,
            **extra,
        )

    @app.get("/preferences", response_class=HTMLResponse)
    def preferences_page(token: str | None = None) -> Response:
        sub = _subscriber_for(store, token, "preferences")
        return _prefs_page(sub, token or "")

    @app.post("/preferences", response_class=HTMLResponse)
    async def preferences(request: Request, token: str | None = None) -> Response:
        form = await _form(request)
        sub = _subscriber_for(store, token, "preferences")
        frequency = (form.get("frequency") or [sub.frequency])[0]
        weekday: str | None = (form.get("weekday") or [None])[0] if frequency == "weekly" else None
        topics: list[str] | None = None if form.get("all_topics") else form.get("topics", [])
        changes: dict[str, Any] = {"topics": topics, "frequency": frequency, "weekday": weekday}
        if sub.status != "active":
            changes["status"] = "active"  # saving preferences is an explicit wish for digests
        try:
            updated = subscribers.update(store.engine(), sub.id, **changes)
        except subscribers.InvalidSubscriber as e:
            # The message names a field and a rule, never anyone's data.
            return _prefs_page(sub, token or "", 422, error=str(e))
        return _prefs_page(updated, token or "", saved=True)

    @app.exception_handler(_BadRange)
    async def _bad_range(request: Request, exc: _BadRange) -> Response:
        return _page("papers_invalid.html", 400, bad_topic=exc.bad_topic)

    # `from` is a Python keyword, hence the alias; the values are read as text and checked here
    # so a bad link gets the project's 400 page rather than FastAPI's 422 JSON.
    @app.get("/papers", response_class=HTMLResponse)
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
        page = list_papers(store.engine(), lo, hi, topics=chosen, page_size=papers_page_size)
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

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


app = create_app()
