"""One subscriber's digest for one ledger range, ready to send: the step that sending and the
dry run share, so a preview shows exactly the mail a send would produce."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection

from lupus_alerts import mailer, store, tokens
from lupus_alerts.delivery.ledger import DeliveryError, _naive, _valid_address

if TYPE_CHECKING:
    from lupus_alerts.config import Settings
    from lupus_alerts.subscribers import Subscriber


@dataclass(slots=True)
class Composed:
    """The mail to send, or why there is none."""

    message: mailer.DigestMessage | None = None
    paper_count: int = 0
    # a permanent reason (the address or the subscriber's data cannot make a mail)
    failure: str | None = None
    bad_address: bool = False  # the failure counts towards bouncing the subscriber

    @property
    def empty(self) -> bool:
        """Nothing to send: an empty digest to a subscriber who does not want one."""
        return self.message is None and self.failure is None


@dataclass(slots=True)
class Composer:
    """What every digest of one run shares: the settings, the signing secret, the run's clock,
    and the digest windows each (announce, update) range is loaded into once."""

    settings: Settings
    secret: bytes
    now: datetime
    build: Callable[..., Any]
    windows: dict[Any, Any] = field(default_factory=dict)

    @classmethod
    def for_run(cls, settings: Settings, now: datetime | None, build: Callable[..., Any] | None) -> Composer:
        """Raises DeliveryError, before anything is read or claimed, if links cannot be signed."""
        try:
            secret = tokens.get_secret()
        except tokens.MissingSecret as e:
            raise DeliveryError(str(e)) from e
        if build is None:
            from lupus_alerts.digest import build_digest as build
        return cls(settings, secret, _naive(now) if now else store.utcnow(), build)

    def compose(
        self,
        conn: Connection,
        sub: Subscriber,
        *,
        announce: tuple[int, int],
        update: tuple[int, int],
        period: str,
        message_id: str,
    ) -> Composed:
        """The digest of the range (from exclusive, to inclusive), not of the subscriber's current
        cursors: a retry renders the same mail. Exceptions other than a message that cannot be
        built propagate (the caller decides whether the row stays retryable)."""
        if not _valid_address(sub.email):
            return Composed(failure="invalid email address", bad_address=True)
        view = dataclasses.replace(sub, cursor=int(announce[0]), update_cursor=int(update[0]))
        dg = self.build(
            conn,
            self.settings,
            view,
            announce_to=int(announce[1]),
            update_to=int(update[1]),
            period=period,
            now=self.now,
            windows=self.windows,
            secret=self.secret,
        )
        if dg.is_empty and not sub.send_when_empty:
            return Composed()
        unsubscribe = dg.unsubscribe_url or tokens.unsubscribe_url(
            self.settings, sub.link_key, issued=self.now.date(), secret=self.secret
        )
        try:
            msg = mailer.build_message(
                dg, settings=self.settings, unsubscribe_url=unsubscribe, now=self.now, message_id=message_id
            )
        except mailer.MessageBuildError as e:
            # The subscriber's own data cannot go into a mail (a stored name with a line
            # break): retrying cannot help; the operator fixes the data.
            return Composed(failure=f"the message could not be built: {e}")
        return Composed(message=msg, paper_count=dg.paper_count)
