"""Delivery to a folder: one `.eml` file per message, named from its Message-ID."""

from __future__ import annotations

import html as html_lib
import os
import re
import tempfile
import threading
from email import policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    pass

from lupus_alerts.mailer.message import html_of, recipients, wire_bytes
from lupus_alerts.mailer.transport import SendResult, TransportError


def outbox_name(message_id: str) -> str:
    """A file-name stem for a Message-ID: its characters that are safe in a file name."""
    stem = re.sub(r"[^A-Za-z0-9._@-]", "_", message_id.strip().strip("<>"))
    return stem or "message"


class OutboxTransport:
    """Writes each message to `<dir>/<message-id>.eml`, with an `.html` preview and `index.html`.

    Idempotent: a message whose file exists is not written again (the same digest has the same
    Message-ID). Files are written atomically (temporary file, then rename), so a crash never
    leaves half a message that would later count as sent.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._lock = threading.Lock()
        self.written = 0

    def __enter__(self) -> Self:
        self.directory.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Refresh index.html."""
        if self.directory.exists():
            self.write_index()

    def path_for(self, message_id: str) -> Path:
        return self.directory / f"{outbox_name(message_id)}.eml"

    def was_sent(self, message_id: str) -> bool:
        return self.path_for(message_id).exists()

    def send(self, msg: EmailMessage) -> SendResult:
        rcpts = recipients(msg)
        if len(rcpts) != 1:
            raise ValueError(f"a digest goes to exactly one recipient, this message has {len(rcpts)}")
        mid = str(msg["Message-ID"] or "")
        if not mid:
            raise ValueError("a message needs a Message-ID to be written to the outbox")
        eml = self.path_for(mid)
        if eml.exists():
            return SendResult("sent", None, "already in the outbox", rcpts[0])
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            html = html_of(msg)
            if html is not None:
                _atomic_write(eml.with_suffix(".html"), html.encode("utf-8"))
            # The .eml last: its existence is what marks the message as delivered.
            _atomic_write(eml, wire_bytes(msg))
        except OSError as e:
            raise TransportError(f"cannot write to the outbox {self.directory}: {e}") from e
        self.written += 1
        return SendResult("sent", None, f"written to {eml.name}", rcpts[0])

    def write_index(self) -> Path:
        """(Re)write index.html listing every message in the outbox, newest first."""
        rows = []
        parser = BytesHeaderParser(policy=policy.default)
        for eml in sorted(self.directory.glob("*.eml"), key=lambda p: p.stat().st_mtime, reverse=True):
            with eml.open("rb") as f:
                h = parser.parse(f)
            rows.append(
                '<tr><td>{date}</td><td>{to}</td><td><a href="{html}">{subject}</a></td>'
                '<td><a href="{eml}">.eml</a></td></tr>'.format(
                    date=html_lib.escape(str(h["Date"] or "")),
                    to=html_lib.escape(str(h["To"] or "")),
                    subject=html_lib.escape(str(h["Subject"] or "(no subject)")),
                    html=html_lib.escape(eml.with_suffix(".html").name, quote=True),
                    eml=html_lib.escape(eml.name, quote=True),
                )
            )
        page = (
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Outbox</title>'
            "<style>body{font-family:sans-serif}td{padding:4px 8px;border-bottom:1px solid #ddd}</style>"
            f"</head><body><h1>Outbox: {len(rows)} message(s)</h1>"
            "<table><tr><th>Date</th><th>To</th><th>Subject</th><th>Raw</th></tr>"
            + "".join(rows)
            + "</table></body></html>"
        )
        index = self.directory / "index.html"
        _atomic_write(index, page.encode("utf-8"))
        return index


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
