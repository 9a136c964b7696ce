"""Unsubscribe and preferences over HTTP: a small FastAPI app, public and token-guarded.

Served two ways (docs/delivery.md explains the choice): mounted on the Airflow 3 API server by
`plugins/lupus_alerts_plugin.py` under `/lupus-alerts`, or standalone with
`lupus-alerts web serve` (uvicorn). Either way `digest.public_base_url` must point at it.

- `GET  /unsubscribe?token=`  a confirmation page with a button. Link scanners and prefetchers
  follow GETs; a GET never unsubscribes anyone.
- `POST /unsubscribe?token=`  RFC 8058 one-click (body `List-Unsubscribe=One-Click`, sent by the
  mail provider, no cookies, no login) and the confirmation page's button. Idempotent: 200 again.
- `GET/POST /preferences?token=`  topics, frequency and weekday.

A missing, malformed or tampered token gets 400 with a page that says nothing about anyone; a
valid token for a subscriber who no longer exists gets the same page with 404. Pages are not
cached, not indexed, and send no Referer (the token is in the URL). Airflow does not authenticate
plugin apps, which is what these public endpoints need. Nothing is loaded at import: the
configuration and the store engine are opened on the first request.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import DictLoader, Environment, select_autoescape
from sqlalchemy.engine import Engine

from lupus_alerts import subscribers, tokens

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


def _page(name: str, http_status: int = 200, **ctx: Any) -> HTMLResponse:
    return HTMLResponse(
        _env.get_template(name).render(**ctx), status_code=http_status, headers=_SECURITY_HEADERS
    )


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


def create_app(*, engine_factory: Callable[[], Engine] | None = None) -> FastAPI:
    """The unsubscribe/preferences app. `engine_factory` overrides the configured store (tests)."""
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

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


app = create_app()
