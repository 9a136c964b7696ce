"""The demo's sample data: the replay servers on localhost, its configuration, its subscribers."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import yaml

from lupus_alerts.demo.common import (
    DEMO_DATA,
    DEMO_FEEDS,
    DEMO_PUBLIC_BASE_URL,
    DEMO_SUBSCRIBERS,
    MOVED_FEED,
    CaughtMail,
    DemoServers,
)

# -- sample data and servers -------------------------------------------------------------------


def demo_corpus(today: date) -> list[Any]:
    """The E-utilities corpus: constructed demo records plus the real PubMed fixture records.

    Creation dates are spread over the last six days, so today's run window finds them.
    """
    from lupus_alerts.testing.eutils_replay import CorpusRecord, article_records, default_fixture_paths

    records = []
    paths = [DEMO_DATA / "pubmed_demo.xml", *default_fixture_paths()]
    i = 0
    for path in paths:
        if not path.exists():
            continue
        for pmid, xml in article_records(path):
            if pmid:
                records.append(CorpusRecord(pmid, today - timedelta(days=i % 6), xml))
                i += 1
    return records


@contextmanager
def sample_servers(today: date, *, alerts_dir: Path | None = None) -> Iterator[DemoServers]:
    """Start the E-utilities replay, the feed server and the operator-mail catcher; stop them after.

    With `alerts_dir`, each mail the catcher receives is also written there as it arrives
    (`alert-<n>.eml`), so the operator can read failure alerts while `make up` runs.
    """
    from aiosmtpd.controller import Controller

    from lupus_alerts.testing.eutils_replay import EutilsReplay
    from lupus_alerts.testing.feeds_replay import serve_feed
    from lupus_alerts.testing.replay import ReplayServer

    caught: list[CaughtMail] = []

    class _Catcher:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            content = envelope.original_content or envelope.content
            caught.append(CaughtMail(envelope.mail_from, list(envelope.rcpt_tos), content))
            if alerts_dir is not None:
                alerts_dir.mkdir(parents=True, exist_ok=True)
                (alerts_dir / f"alert-{len(caught)}.eml").write_bytes(content)
            return "250 OK"

    with ExitStack() as stack:
        eutils = stack.enter_context(EutilsReplay(demo_corpus(today)))
        feeds = stack.enter_context(ReplayServer())
        urls = {}
        for fid, _name, _pub, file, _all in DEMO_FEEDS:
            urls[fid] = serve_feed(feeds, f"/feeds/{file}", (DEMO_DATA / file).read_bytes())
        # No route: the moved feed answers 404, as a journal's retired feed URL does.
        urls[MOVED_FEED[0]] = feeds.url + "/feeds/ard-current.rss"
        port = free_port()
        smtp = Controller(_Catcher(), hostname="127.0.0.1", port=port)
        smtp.start()
        stack.callback(smtp.stop)
        yield DemoServers(eutils.base_url, urls, port, caught, eutils, feeds)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (aiosmtpd's controller cannot take port 0)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_demo_config(
    root: Path,
    servers: DemoServers,
    *,
    mail_mode: str = "outbox",
    schedule: Mapping[str, str] | None = None,
    public_base_url: str = DEMO_PUBLIC_BASE_URL,
    store_url: str | None = None,
) -> Path:
    """Write `root/lupus-alerts.yaml` pointing at the sample servers; returns its path.

    `public_base_url` is where the digests' links go (the web app `make up` serves);
    `store_url` replaces the SQLite store in `root/data`.
    """
    feeds = [
        {"id": fid, "name": name, "publisher": pub, "url": servers.feed_urls[fid], "all_lupus": all_lupus}
        for fid, name, pub, _file, all_lupus in DEMO_FEEDS
    ]
    fid, name, pub = MOVED_FEED
    feeds.append({"id": fid, "name": name, "publisher": pub, "url": servers.feed_urls[fid]})
    config = {
        "data_dir": "data",
        "pubmed": {"base_url": servers.eutils_url, "max_retries": 2, "timeout_s": 10},
        "feeds": feeds,
        "feed_settings": {"timeout_s": 10},
        "digest": {"public_base_url": public_base_url, "max_papers": 25},
        "mail": {"mode": mail_mode, "outbox_dir": "outbox", "rate_per_second": 100},
    }
    if store_url:
        config["store_url"] = store_url
    if schedule:
        config["schedule"] = dict(schedule)
    root.mkdir(parents=True, exist_ok=True)
    path = root / "lupus-alerts.yaml"
    header = "# Written by `python -m lupus_alerts.demo`: the demo's sample servers on localhost.\n"
    path.write_text(header + yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def add_demo_subscribers(config_path: Path, day: date) -> list[int]:
    """The four demo subscribers (idempotent); the weekly one is due on `day`'s weekday."""
    from lupus_alerts import subscribers
    from lupus_alerts.pipeline import load_settings, open_store

    engine = open_store(load_settings(config_path))
    ids = []
    for n, spec in enumerate(DEMO_SUBSCRIBERS):
        weekly = n == len(DEMO_SUBSCRIBERS) - 1
        try:
            sub = subscribers.add(
                engine,
                email=spec["email"],
                name=spec["name"],
                topics=spec["topics"],
                frequency="weekly" if weekly else "daily",
                weekday=day.weekday() if weekly else None,
                max_papers=25,
                from_beginning=True,
            )
        except subscribers.SubscriberExists:
            sub = subscribers.get(engine, spec["email"])
        ids.append(sub.id)
    return ids
