"""The app: its routes, in groups (error pages, unsubscribe, preferences, fresh links, the paper
list, health), each a small function that registers its handlers."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import sqlalchemy as sa
from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.engine import Connection, Engine

from lupus_alerts import mailer, subscribers, tokens
from lupus_alerts import store as db
from lupus_alerts.web._store import _UNAVAILABLE_ERRORS, LOCK_TIMEOUT_S, STATEMENT_TIMEOUT_S, _Store
from lupus_alerts.web.links import (
    LINK_MAIL_INTERVAL,
    _BadLink,
    _claims,
    _ExpiredLink,
    _form,
    _subscriber,
    _today,
)
from lupus_alerts.web.papers import PAPERS_PAGE_SIZE, _BadRange, list_papers, parse_range
from lupus_alerts.web.security import (
    _PUBLIC_HEADERS,
    SECURITY_HEADERS,
    _install_access_log_filter,
    _SecurityHeaders,
)

if TYPE_CHECKING:
    from lupus_alerts.config import Settings

log = logging.getLogger("lupus_alerts.web")


WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


# Pages also reachable with a trailing slash (a mail client or a person may add one).
_PAGES = ("unsubscribe", "preferences", "email-link", "papers")


# The pages are Jinja templates in web/templates/ (autoescaped: nothing a visitor or a paper
# sends can become markup).
_env = Environment(
    loader=FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _page(
    name: str, http_status: int = 200, *, headers: Mapping[str, str] = SECURITY_HEADERS, **ctx: Any
) -> HTMLResponse:
    return HTMLResponse(_env.get_template(name).render(**ctx), status_code=http_status, headers=dict(headers))


def _unavailable() -> HTMLResponse:
    return _page("unavailable.html", 503, headers={**SECURITY_HEADERS, "Retry-After": "60"})


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
    _add_error_pages(app, store)
    _add_unsubscribe(app, store)
    _add_preferences(app, store)
    _add_email_link(app, store, transport_factory)
    _add_papers(app, store, papers_page_size)
    _add_slash_redirects(app)
    _add_health(app, store)
    return app


def _resolve(store: _Store, conn: Connection, token: str | None, purpose: str) -> subscribers.Subscriber:
    """The subscriber of a valid, current `purpose` token; _BadLink or _ExpiredLink otherwise."""
    claims = _claims(token, (purpose,))
    sub = _subscriber(conn, claims)
    if purpose == "unsubscribe":
        return sub  # never expires (RFC 8058: one-click must work from old mail)
    assert token is not None
    if claims.expired(_today(), store.settings().digest.preferences_link_days):
        raise _ExpiredLink(token)
    return sub


def _add_error_pages(app: FastAPI, store: _Store) -> None:
    """A page for every failure, with the security headers: bad or expired links, the store or
    the secret unavailable (503), anything else (500)."""

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

    @app.exception_handler(_BadRange)
    async def _bad_range(request: Request, exc: _BadRange) -> Response:
        return _page("papers_invalid.html", 400, bad_topic=exc.bad_topic)

    @app.exception_handler(Exception)
    async def _error(request: Request, exc: Exception) -> Response:
        log.error("lupus-alerts web: unexpected error", exc_info=exc)
        return _page("error.html", 500)


def _add_unsubscribe(app: FastAPI, store: _Store) -> None:
    @app.api_route("/unsubscribe", methods=["GET", "HEAD"], response_class=HTMLResponse)
    def unsubscribe_page(token: str | None = None) -> Response:
        with store.read() as conn:
            sub = _resolve(store, conn, token, "unsubscribe")
        # No preferences token here: anyone holding the unsubscribe link (a forwarded digest, a
        # scanner) would get the right to change topics and resubscribe. A button mails one to
        # the subscriber instead.
        return _page("unsubscribe_confirm.html", token=token, already=sub.status == "unsubscribed")

    @app.post("/unsubscribe", response_class=HTMLResponse)
    def unsubscribe(token: str | None = None, form: dict[str, list[str]] = Depends(_form)) -> Response:
        token = token or (form.get("token") or [None])[0]
        with store.write() as conn:
            sub = _resolve(store, conn, token, "unsubscribe")
            changed = subscribers.unsubscribe(conn, sub.id)
        # The token is the authority; the RFC 8058 body is not required, so a client that posts
        # an empty body still unsubscribes (the spec asks servers to be liberal here).
        if changed:
            log.info("subscriber %s unsubscribed (one-click=%s)", sub.id, "List-Unsubscribe" in form)
        return _page("unsubscribed.html", token=token)


def _prefs_page(sub: subscribers.Subscriber, token: str, http_status: int = 200, **extra: Any) -> Response:
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


def _add_preferences(app: FastAPI, store: _Store) -> None:
    @app.api_route("/preferences", methods=["GET", "HEAD"], response_class=HTMLResponse)
    def preferences_page(token: str | None = None) -> Response:
        with store.read() as conn:
            sub = _resolve(store, conn, token, "preferences")
        return _prefs_page(sub, token or "")

    @app.post("/preferences", response_class=HTMLResponse)
    def preferences(token: str | None = None, form: dict[str, list[str]] = Depends(_form)) -> Response:
        frequency_given = (form.get("frequency") or [None])[0]
        try:
            with store.write() as conn:
                sub = _resolve(store, conn, token, "preferences")
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
                sub = _resolve(store, conn, token, "preferences")
            return _prefs_page(sub, token or "", 422, error=str(e))
        return _prefs_page(updated, token or "", saved=True)


def _send_link(
    store: _Store, transport_factory: Callable[[], mailer.Transport] | None, sub: subscribers.Subscriber
) -> None:
    settings = store.settings()
    now = db.utcnow()
    url = tokens.preferences_url(settings, sub.link_key, issued=now.date())
    msg = mailer.build_link_message(settings, name=sub.name, email=sub.email, url=url, now=now)
    factory = transport_factory or (lambda: mailer.transport_from_settings(settings))
    with factory() as transport:  # type: ignore[attr-defined]
        result = transport.send(msg)
    if not result.ok:
        raise mailer.TransportError(f"the link mail was not accepted: {result.code} {result.message}")


def _add_email_link(
    app: FastAPI, store: _Store, transport_factory: Callable[[], mailer.Transport] | None
) -> None:
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
                _send_link(store, transport_factory, sub)
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


def _add_papers(app: FastAPI, store: _Store, page_size: int) -> None:
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
            page = list_papers(conn, lo, hi, topics=chosen, page_size=page_size)
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


def _add_slash_redirects(app: FastAPI) -> None:
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


def _add_health(app: FastAPI, store: _Store) -> None:
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
