"""The web app served for real (uvicorn on a free port, in a thread) and the links a subscriber
actually receives (a digest planned, sent over SMTP to a real sink, and read back)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import uvicorn
from factories import make_settings
from smtp_sink import SmtpSink, free_port, text_part

from lupus_alerts import delivery, mailer, web
from lupus_alerts.config import Settings

DAY = date(2026, 11, 27)
NOW = datetime(2026, 11, 27, 9, 0)


def settings_for(
    tmp_path: Path, base_url: str = "https://alerts.example.org/lupus-alerts", **extra: Any
) -> Settings:
    return make_settings(tmp_path, digest={"public_base_url": base_url}, **extra)


@contextmanager
def serve(app: Any, *, access_log: bool = False) -> Iterator[str]:
    """`app` on 127.0.0.1 at a free port; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="info" if access_log else "warning", access_log=access_log
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def app_for(engine: Any, settings: Settings, **kw: Any) -> Any:
    return web.create_app(engine_factory=lambda: engine, settings_factory=lambda: settings, **kw)


def send_digests(
    engine: Any, settings: Settings, sink: SmtpSink, *, day: date = DAY, now: datetime = NOW
) -> Any:
    """Plan and send `day`'s digests over SMTP to `sink`; returns the DeliveryStats."""
    plan = delivery.plan_period(engine, settings, day=day, now=now)
    with mailer.SmtpTransport("127.0.0.1", sink.port, timeout=5) as t:
        return delivery.send_due(engine, settings, day=day, subscriber_ids=plan.due, now=now, transport=t)


def links_in(msg: EmailMessage) -> dict[str, str]:
    """The one-click unsubscribe URL (List-Unsubscribe) and the preferences URL of a received digest."""
    one_click = re.match(r"<([^>]+)>", msg["List-Unsubscribe"])
    prefs = re.search(r'href="([^"]*/preferences\?token=[^"]+)"', text_part(msg, "html"))
    assert one_click is not None and prefs is not None, "the digest lacks one of its links"
    return {"unsubscribe": one_click.group(1), "preferences": prefs.group(1).replace("&amp;", "&")}


def rebase(url: str, base: str) -> str:
    """A link from a digest, pointed at the test server instead of the public address."""
    path = url.split("/lupus-alerts/", 1)[1]
    return f"{base}/{path}"
