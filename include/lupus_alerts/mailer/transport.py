"""What every transport shares: the result of one send, the errors, the interface."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    pass

SendStatus = Literal["sent", "transient", "permanent", "unknown"]


class MailerError(Exception):
    """Base class for mail problems the caller cannot fix by retrying one message."""


class TransportError(MailerError):
    """The transport cannot deliver at all (cannot connect, cannot log in, outbox unwritable)."""


class MessageBuildError(MailerError, ValueError):
    """The message cannot be built from this data (a header value with a control character, a
    display name too long for a header line). Retrying cannot help; the data must change."""


@dataclass(frozen=True, slots=True)
class SendResult:
    """What happened to one message: its status, the SMTP code and text (None for the outbox)."""

    status: SendStatus
    code: int | None = None
    message: str = ""
    recipient: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "sent"


class Transport(Protocol):
    """What delivery needs from a transport."""

    def send(self, msg: EmailMessage) -> SendResult: ...

    def was_sent(self, message_id: str) -> bool | None:
        """True/False when the transport can tell whether message_id went out, None when it cannot."""
        ...
