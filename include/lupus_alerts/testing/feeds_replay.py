"""Serve journal feeds from localhost for tests, the benchmark and the demo.

Builds on `lupus_alerts.testing.replay.ReplayServer`: each feed file becomes a route that answers
conditional GETs (a content-hash ETag and the file's modification time as Last-Modified), so a
second poll gets 304 exactly as from a well-behaved publisher. `make_feed` writes a synthetic
RSS 2.0 feed in the Atypon/Wiley shape (dc: and prism: elements) for load tests.

Run `python -m lupus_alerts.testing.feeds_replay DIR` to serve a folder of feeds and print a
configuration snippet pointing `feeds:` at it (e.g. for `lupus-alerts feeds check`).
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

from lupus_alerts.config import FeedConfig
from lupus_alerts.testing.replay import ReplayServer

FEED_SUFFIXES = (".xml", ".rss", ".rdf", ".atom")
FEED_CONTENT_TYPE = "application/rss+xml; charset=utf-8"

_LUPUS_TITLES = (
    "Anifrolumab and renal response in systemic lupus erythematosus",
    "Lupus nephritis flares after hydroxychloroquine withdrawal",
    "Cutaneous lupus erythematosus and smoking: a cohort study",
    "Neuropsychiatric lupus in childhood-onset SLE",
)
_OTHER_TITLES = (
    "Urate-lowering therapy adherence in gout",
    "Knee osteoarthritis and physical activity",
    "Giant cell arteritis relapse after tocilizumab",
    "Axial spondyloarthritis imaging at diagnosis",
)


def feed_etag(body: bytes) -> str:
    """A strong ETag for a body: a quoted prefix of its SHA-1."""
    return '"' + hashlib.sha1(body).hexdigest()[:20] + '"'


def feed_id_for(name: str) -> str:
    """A valid feed id (`[a-z0-9][a-z0-9_-]*`) from a file name."""
    stem = name
    for suffix in (".expected.json", *FEED_SUFFIXES):
        stem = stem.removesuffix(suffix)
    return re.sub(r"[^a-z0-9_-]+", "-", stem.lower()).strip("-_") or "feed"


def serve_feed(
    server: ReplayServer,
    path: str,
    body: bytes,
    *,
    last_modified: float | None = None,
    content_type: str = FEED_CONTENT_TYPE,
    chunk_delay: float = 0.0,
) -> str:
    """Serve `body` at `path` with ETag and Last-Modified validators; returns the full URL."""
    server.add(
        path,
        body,
        content_type=content_type,
        etag=feed_etag(body),
        last_modified=time.time() if last_modified is None else last_modified,
        chunk_delay=chunk_delay,
    )
    return server.url + path


def serve_feed_dir(server: ReplayServer, directory: Path, *, prefix: str = "/feeds/") -> dict[str, str]:
    """Serve every feed file in `directory` under `prefix`; returns {feed id: URL}."""
    urls: dict[str, str] = {}
    for file in sorted(Path(directory).iterdir()):
        if not file.is_file() or not file.name.endswith(FEED_SUFFIXES):
            continue
        fid = feed_id_for(file.name)
        urls[fid] = serve_feed(
            server, f"{prefix}{file.name}", file.read_bytes(), last_modified=file.stat().st_mtime
        )
    return urls


def feed_configs(
    urls: dict[str, str], *, all_lupus: bool = False, publisher: str = "replay"
) -> list[FeedConfig]:
    """Feed registry entries for served feeds (name = id)."""
    return [
        FeedConfig(id=fid, name=fid, publisher=publisher, url=url, all_lupus=all_lupus, verified=True)
        for fid, url in urls.items()
    ]


def make_feed(
    n_items: int,
    *,
    journal: str = "Synthetic Journal of Rheumatology",
    feed_no: int = 0,
    doi_prefix: str = "10.5555",
    start: datetime | None = None,
) -> bytes:
    """A constructed RSS 2.0 feed of `n_items` items in the Atypon shape.

    Every item has a unique DOI (in prism:doi, dc:identifier and the /doi/ link), two authors
    packed in one dc:creator, a date and an abstract; half the items are about lupus so a
    relevance-filtered poll keeps about half.
    """
    start = start or datetime(2025, 11, 20, 8, 0, tzinfo=UTC)
    items = []
    for i in range(n_items):
        lupus = i % 2 == 0
        titles = _LUPUS_TITLES if lupus else _OTHER_TITLES
        title = f"{titles[i // 2 % len(titles)]} (study {feed_no}-{i})"
        doi = f"{doi_prefix}/synth.{feed_no:03d}.{i:05d}"
        when = start - timedelta(hours=i)
        topic = "patients with systemic lupus erythematosus" if lupus else "adults with joint pain"
        items.append(
            f"""  <item>
    <title>{escape(title)}</title>
    <link>https://journals.example.org/doi/abs/{doi}?af=R</link>
    <guid isPermaLink="false">{doi}</guid>
    <pubDate>{format_datetime(when)}</pubDate>
    <description>{escape(f"<p>We studied {100 + i} {topic} over {1 + i % 5} years.</p>")}</description>
    <dc:creator>Ana Ortega, Kenji Watanabe and Lena Fischer</dc:creator>
    <dc:date>{when.isoformat()}</dc:date>
    <dc:identifier>doi:{doi}</dc:identifier>
    <prism:doi>{doi}</prism:doi>
    <prism:publicationName>{escape(journal)}</prism:publicationName>
    <prism:coverDate>{when.date().isoformat()}</prism:coverDate>
  </item>"""
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        "<!-- CONSTRUCTED by lupus_alerts.testing.feeds_replay.make_feed (synthetic, not a recording) -->\n"
        '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:prism="http://prismstandard.org/namespaces/basic/2.0/">\n<channel>\n'
        f"  <title>{escape(journal)}</title>\n  <link>https://journals.example.org/</link>\n"
        f"  <description>Synthetic feed {feed_no}</description>\n"
        + "\n".join(items)
        + "\n</channel>\n</rss>\n"
    ).encode("utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lupus_alerts.testing.feeds_replay",
        description="Serve a folder of feed files on localhost.",
    )
    parser.add_argument("directory", type=Path)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--all-lupus", action="store_true", help="mark the feeds as lupus journals")
    args = parser.parse_args(argv)
    server = ReplayServer(port=args.port)
    urls = serve_feed_dir(server, args.directory)
    if not urls:
        print(f"no feed files ({', '.join(FEED_SUFFIXES)}) in {args.directory}", file=sys.stderr)
        return 1
    server.start()
    print("# paste into lupus-alerts.yaml (or a copy of it):\nfeeds:")
    for fc in feed_configs(urls, all_lupus=args.all_lupus):
        flag = str(fc.all_lupus).lower()
        print(f"  - {{id: {fc.id}, name: {fc.name}, publisher: replay, url: '{fc.url}', all_lupus: {flag}}}")
    print(f"# serving {len(urls)} feeds at {server.url}; Ctrl-C to stop", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
