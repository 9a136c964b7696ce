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

Modules: `app` (routes), `links` (tokens to subscribers), `papers` (the paper list), `security`
(headers, log redaction), `_store` (timeouts); the pages are Jinja templates in `templates/`.
"""

from lupus_alerts.web.app import create_app
from lupus_alerts.web.security import SECURITY_HEADERS, RedactTokens, redact_tokens

__all__ = ["SECURITY_HEADERS", "RedactTokens", "app", "create_app", "redact_tokens"]

app = create_app()
