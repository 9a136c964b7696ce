"""Digest emails: building the MIME message, and the transports that deliver it.

`build_message` is pure: a rendered `digest.Digest` in, an `EmailMessage` out, with a
Message-ID derived from (subscriber, period) so that a retry of the same digest carries the same
Message-ID. Transports share one interface, `send(msg) -> SendResult`, and are context managers:

- `SmtpTransport`: one SMTP connection (plain, STARTTLS or implicit TLS, per the Airflow
  connection's extras as Airflow's SMTP provider reads them) for many messages, paced to a rate,
  reconnecting once when the server has dropped an idle connection. Replies are classified:
  2xx sent, 4xx transient, 5xx permanent; a connection lost after the message body was sent is
  "unknown" (the server may have accepted it), which the ledger never retries on its own.
- `OutboxTransport`: one `.eml` file per message, named from the Message-ID (so rewriting the
  same digest is a no-op), an `.html` preview beside it, and an `index.html` listing them.

Modules: `transport` (the interface, results and errors), `message` (building the message),
`smtp`, `outbox`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from lupus_alerts.mailer.message import (
    LIST_ID_NAME,
    DigestMessage,
    build_link_message,
    build_message,
    envelope_sender,
    html_of,
    list_id,
    message_id_for,
    recipients,
    sender_domain,
    wire_bytes,
)
from lupus_alerts.mailer.outbox import OutboxTransport, outbox_name
from lupus_alerts.mailer.smtp import SmtpTransport, classify_reply
from lupus_alerts.mailer.transport import (
    MailerError,
    MessageBuildError,
    SendResult,
    SendStatus,
    Transport,
    TransportError,
)

if TYPE_CHECKING:
    from lupus_alerts.config import Settings


def transport_from_settings(
    settings: Settings, *, outbox_dir: str | os.PathLike[str] | None = None
) -> Transport:
    """The configured transport (mail.mode): SMTP via mail.smtp_connection_id, or the outbox.

    `outbox_dir` forces the outbox (dry runs). Use it as a context manager.
    """
    if outbox_dir is not None:
        return OutboxTransport(outbox_dir)
    if settings.mail.mode == "outbox":
        return OutboxTransport(settings.mail.outbox_dir)
    return SmtpTransport.from_connection(
        settings.mail.smtp_connection_id, rate_per_second=settings.mail.rate_per_second
    )


__all__ = [
    "LIST_ID_NAME",
    "DigestMessage",
    "MailerError",
    "MessageBuildError",
    "OutboxTransport",
    "SendResult",
    "SendStatus",
    "SmtpTransport",
    "Transport",
    "TransportError",
    "build_link_message",
    "build_message",
    "classify_reply",
    "envelope_sender",
    "html_of",
    "list_id",
    "message_id_for",
    "outbox_name",
    "recipients",
    "sender_domain",
    "transport_from_settings",
    "wire_bytes",
]
