"""Signed tokens for the links in a digest (unsubscribe, manage preferences).

A token is `<subscriber id>.<MAC>`: the MAC is HMAC-SHA256 over a version tag, the purpose and
the subscriber id, keyed with the deployment's secret, truncated to 128 bits and base64url
encoded. So a token is good for one subscriber and one purpose only, cannot be forged or guessed
without the secret (2^128 candidates per subscriber), and is safe in a URL query.

Tokens do not expire: an unsubscribe link must keep working in a mail read months later (mail
providers test them). Rotating the secret invalidates every link already sent.

The secret comes from the environment variable `LUPUS_ALERTS_SECRET`, else the Airflow connection
`lupus_alerts_secret` (its password, or extra `secret`). Nothing is read at import.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from lupus_alerts import connections

if TYPE_CHECKING:
    from lupus_alerts.config import Settings

SECRET_ENV = "LUPUS_ALERTS_SECRET"
SECRET_CONN_ID = "lupus_alerts_secret"
PURPOSES = ("unsubscribe", "preferences")
# A shorter secret is almost certainly a placeholder; refuse it rather than sign weakly.
MIN_SECRET_BYTES = 16
_MAC_BYTES = 16
_VERSION = b"lupus-alerts/token/v1"


class TokenError(Exception):
    """Base class for token problems."""


class MissingSecret(TokenError):
    """No signing secret is configured (or it is too short to be a real secret)."""


class InvalidToken(TokenError):
    """The token is malformed, tampered with, signed with another secret, or for another purpose."""


def get_secret(secret: bytes | str | None = None) -> bytes:
    """The signing secret: the argument if given, else the environment, else the connection."""
    value: bytes | str | None = secret
    if value is None:
        value = connections.secret("secret", conn_id=SECRET_CONN_ID, env=SECRET_ENV)
    if value is None or value == "" or value == b"":
        raise MissingSecret(
            f"no link-signing secret: set the environment variable {SECRET_ENV} or define the "
            f"Airflow connection {SECRET_CONN_ID!r} (its password is the secret), e.g. "
            f"`export {SECRET_ENV}=\"$(python -c 'import secrets; print(secrets.token_urlsafe(32))')\"`"
        )
    raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    if len(raw) < MIN_SECRET_BYTES:
        raise MissingSecret(f"the link-signing secret must be at least {MIN_SECRET_BYTES} bytes long")
    return raw


def _mac(key: bytes, subscriber_id: int, purpose: str) -> bytes:
    msg = b"|".join((_VERSION, purpose.encode("ascii"), str(subscriber_id).encode("ascii")))
    return hmac.new(key, msg, hashlib.sha256).digest()[:_MAC_BYTES]


def _check_purpose(purpose: str) -> None:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r} (expected one of {', '.join(PURPOSES)})")


def make_token(subscriber_id: int, purpose: str, *, secret: bytes | str | None = None) -> str:
    """A URL-safe token proving `purpose` (unsubscribe | preferences) for one subscriber."""
    _check_purpose(purpose)
    if isinstance(subscriber_id, bool) or not isinstance(subscriber_id, int) or subscriber_id < 0:
        raise ValueError(f"subscriber_id must be a non-negative int, not {subscriber_id!r}")
    mac = _mac(get_secret(secret), subscriber_id, purpose)
    return f"{subscriber_id}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode('ascii')}"


def check_token(token: str, purpose: str, *, secret: bytes | str | None = None) -> int:
    """The subscriber id a valid token was made for; raise InvalidToken otherwise.

    MissingSecret propagates: a server without its secret must fail loudly, not reject everyone.
    """
    _check_purpose(purpose)
    key = get_secret(secret)
    if not isinstance(token, str) or len(token) > 64:
        raise InvalidToken("malformed token")
    sid_text, sep, mac_text = token.partition(".")
    # Only canonical decimal ids: "007" or "+7" would otherwise alias a valid token.
    if not sep or not sid_text.isascii() or not sid_text.isdigit() or str(int(sid_text)) != sid_text:
        raise InvalidToken("malformed token")
    try:
        given = base64.urlsafe_b64decode(mac_text + "=" * (-len(mac_text) % 4))
    except (binascii.Error, ValueError):
        raise InvalidToken("malformed token") from None
    subscriber_id = int(sid_text)
    if not hmac.compare_digest(given, _mac(key, subscriber_id, purpose)):
        raise InvalidToken("bad signature")
    # base64 decoding tolerates non-canonical trailing bits; require the exact encoding too.
    if base64.urlsafe_b64encode(given).rstrip(b"=").decode("ascii") != mac_text:
        raise InvalidToken("malformed token")
    return subscriber_id


def link(
    base_url: str, path: str, subscriber_id: int, purpose: str, *, secret: bytes | str | None = None
) -> str:
    """`base_url` + `/path?token=...` for one subscriber (base_url is where web.app is served)."""
    token = make_token(subscriber_id, purpose, secret=secret)
    return f"{base_url.rstrip('/')}/{path.lstrip('/')}?{urlencode({'token': token})}"


def unsubscribe_url(settings: Settings, subscriber_id: int, *, secret: bytes | str | None = None) -> str:
    """The one-click unsubscribe URL for a subscriber (settings.digest.public_base_url + /unsubscribe)."""
    return link(settings.digest.public_base_url, "unsubscribe", subscriber_id, "unsubscribe", secret=secret)


def preferences_url(settings: Settings, subscriber_id: int, *, secret: bytes | str | None = None) -> str:
    """The manage-preferences URL for a subscriber (settings.digest.public_base_url + /preferences)."""
    return link(settings.digest.public_base_url, "preferences", subscriber_id, "preferences", secret=secret)
