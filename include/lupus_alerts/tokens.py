"""Signed tokens for the links in a digest (unsubscribe, manage preferences).

A token is `<link key>.<issue day>.<MAC>`:

- the link key is the subscriber's own random key (`subscribers.link_key`, 128 bits, never
  reused), not the database id: a deleted subscriber's old links can never act on whoever gets
  the id next, and the links say nothing about how many subscribers there are;
- the issue day (days since 1970-01-01, UTC) lets a link expire: preferences links do after
  `digest.preferences_link_days`; unsubscribe links never do (RFC 8058 recipients click mail
  read months later);
- the MAC is HMAC-SHA256 over a version tag, the purpose, the key and the day, keyed with the
  deployment's secret, truncated to 128 bits and base64url encoded.

So a token is good for one subscriber and one purpose only, cannot be forged or guessed without
the secret, and is safe in a URL. Revoking one subscriber's links = giving them a new link key
(`subscribers.revoke_links`); rotating the secret invalidates every link already sent.

Tokens of the first format (`<subscriber id>.<MAC>`, "v1", no key and no day) are still
recognised, so that the unsubscribe links in mail sent before the upgrade keep working; the web
app honours them only to unsubscribe subscribers that existed at the upgrade
(`subscribers.legacy_links`), never for preferences.

The secret comes from the environment variable `LUPUS_ALERTS_SECRET`, else the Airflow connection
`lupus_alerts_secret` (its password, or extra `secret`). Nothing is read at import.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import date, timedelta
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
# Secrets that are somebody's placeholder, not a secret: the value shipped in .env.example, the
# docs' "change me"s, the demo's constant of before (it is in the repository's history).
PLACEHOLDER_MARKERS = ("change-me", "changeme", "change_me", "not-for-production", "placeholder", "example")
MAX_TOKEN_CHARS = 96
_MAC_BYTES = 16
_VERSION = b"lupus-alerts/token/v2"
_LEGACY_VERSION = b"lupus-alerts/token/v1"
_EPOCH = date(1970, 1, 1)
# A link key as new_link_key() makes it (22 characters), with room for longer ones.
_KEY = re.compile(r"[A-Za-z0-9_-]{16,43}")
# Canonical decimals only: "007" or "+7" would otherwise alias a valid token.
_NUMBER = re.compile(r"0|[1-9][0-9]{0,9}")


class TokenError(Exception):
    """Base class for token problems."""


class MissingSecret(TokenError):
    """No signing secret is configured (or it is too short to be a real secret)."""


class InvalidToken(TokenError):
    """The token is malformed, tampered with, signed with another secret, or for another purpose."""


@dataclass(frozen=True, slots=True)
class Claims:
    """What a valid token proves. A current token carries `link_key` and `issued`; a token of the
    first format carries only `legacy_id` (the subscriber id it was made for)."""

    purpose: str
    link_key: str | None = None
    issued: date | None = None
    legacy_id: int | None = None

    @property
    def is_legacy(self) -> bool:
        return self.legacy_id is not None

    def expired(self, today: date, max_age_days: int) -> bool:
        """Older than `max_age_days` on `today` (a legacy token has no date: always expired)."""
        return self.issued is None or (today - self.issued) > timedelta(days=max_age_days)


def new_link_key() -> str:
    """A fresh random link key (128 bits, base64url): one per subscriber, never reused."""
    return secrets.token_urlsafe(16)


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
    text = raw.decode("utf-8", "replace").lower()
    if any(m in text for m in PLACEHOLDER_MARKERS) or len(set(raw)) < 8:
        raise MissingSecret(
            f"{SECRET_ENV} is a placeholder, not a secret: generate one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
        )
    return raw


def _mac(key: bytes, purpose: str, link_key: str, day: int) -> bytes:
    msg = b"|".join((_VERSION, purpose.encode("ascii"), link_key.encode("ascii"), str(day).encode("ascii")))
    return hmac.new(key, msg, hashlib.sha256).digest()[:_MAC_BYTES]


def _legacy_mac(key: bytes, purpose: str, subscriber_id: int) -> bytes:
    msg = b"|".join((_LEGACY_VERSION, purpose.encode("ascii"), str(subscriber_id).encode("ascii")))
    return hmac.new(key, msg, hashlib.sha256).digest()[:_MAC_BYTES]


def _b64(mac: bytes) -> str:
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def _check_purpose(purpose: str) -> None:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r} (expected one of {', '.join(PURPOSES)})")


def make_token(link_key: str, purpose: str, *, issued: date, secret: bytes | str | None = None) -> str:
    """A URL-safe token proving `purpose` (unsubscribe | preferences) for the subscriber whose
    link key is `link_key`, issued on `issued` (UTC day)."""
    _check_purpose(purpose)
    if not isinstance(link_key, str) or not _KEY.fullmatch(link_key):
        raise ValueError(f"not a link key: {link_key!r}")
    day = (issued - _EPOCH).days
    if day < 0:
        raise ValueError(f"issue day {issued} is before 1970")
    return f"{link_key}.{day}.{_b64(_mac(get_secret(secret), purpose, link_key, day))}"


def make_legacy_token(subscriber_id: int, purpose: str, *, secret: bytes | str | None = None) -> str:
    """A token of the first format (`<id>.<MAC>`), as mail sent before link keys carried.

    Only for tests and tools that need to reproduce such a link; nothing sends new ones.
    """
    _check_purpose(purpose)
    if isinstance(subscriber_id, bool) or not isinstance(subscriber_id, int) or subscriber_id < 0:
        raise ValueError(f"subscriber_id must be a non-negative int, not {subscriber_id!r}")
    return f"{subscriber_id}.{_b64(_legacy_mac(get_secret(secret), purpose, subscriber_id))}"


def _decode_mac(text: str) -> bytes:
    try:
        mac = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise InvalidToken("malformed token") from None
    # base64 decoding tolerates non-canonical trailing bits: require the exact encoding. (A
    # truncated MAC fails compare_digest against the full one: never compare a prefix.)
    if _b64(mac) != text:
        raise InvalidToken("malformed token")
    return mac


def check_token(token: str, purpose: str, *, secret: bytes | str | None = None) -> Claims:
    """What a valid token for `purpose` proves; raise InvalidToken otherwise.

    Says nothing about expiry or whether the subscriber still exists: the caller decides (see
    `Claims.expired`). MissingSecret propagates: a server without its secret must fail loudly,
    not reject everyone.
    """
    _check_purpose(purpose)
    key = get_secret(secret)
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or not token.isascii():
        raise InvalidToken("malformed token")
    parts = token.split(".")
    if len(parts) == 3:
        link_key, day_text, mac_text = parts
        if not _KEY.fullmatch(link_key) or not _NUMBER.fullmatch(day_text):
            raise InvalidToken("malformed token")
        given = _decode_mac(mac_text)
        day = int(day_text)
        if not hmac.compare_digest(given, _mac(key, purpose, link_key, day)):
            raise InvalidToken("bad signature")
        return Claims(purpose, link_key=link_key, issued=_EPOCH + timedelta(days=day))
    if len(parts) == 2:
        sid_text, mac_text = parts
        if not _NUMBER.fullmatch(sid_text):
            raise InvalidToken("malformed token")
        given = _decode_mac(mac_text)
        sid = int(sid_text)
        if not hmac.compare_digest(given, _legacy_mac(key, purpose, sid)):
            raise InvalidToken("bad signature")
        return Claims(purpose, legacy_id=sid)
    raise InvalidToken("malformed token")


def link(base_url: str, path: str, token: str) -> str:
    """`base_url` + `/path?token=...` (base_url is where web.app is served)."""
    return f"{base_url.rstrip('/')}/{path.lstrip('/')}?{urlencode({'token': token})}"


def unsubscribe_url(
    settings: Settings, link_key: str, *, issued: date, secret: bytes | str | None = None
) -> str:
    """The one-click unsubscribe URL for a subscriber (settings.digest.public_base_url + /unsubscribe)."""
    token = make_token(link_key, "unsubscribe", issued=issued, secret=secret)
    return link(settings.digest.public_base_url, "unsubscribe", token)


def preferences_url(
    settings: Settings, link_key: str, *, issued: date, secret: bytes | str | None = None
) -> str:
    """The manage-preferences URL for a subscriber (settings.digest.public_base_url + /preferences)."""
    token = make_token(link_key, "preferences", issued=issued, secret=secret)
    return link(settings.digest.public_base_url, "preferences", token)
