"""Feed polling benchmark: 50 feeds x 100 items from the local replay server into a SQLite store.

Run: `.venv/bin/python -m bench.bench_feeds` (options: --feeds N --items N --concurrency N
--repeats N). Each repeat polls all feeds into a fresh store; the median is reported.
Prints the figures and rewrites the `feeds` section of docs/benchmarks.md. Target (issue 4):
the first poll of 50 x 100 finishes in under 10 s with bounded concurrency.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.report import write_section
from lupus_alerts import store
from lupus_alerts.config import FeedConfig, settings_from_dict
from lupus_alerts.feeds import parse_feed_bytes, poll_feeds
from lupus_alerts.testing.feeds_replay import make_feed, serve_feed
from lupus_alerts.testing.replay import ReplayServer

TARGET_S = 10.0


def _parse_cost(body: bytes, n_items: int, *, feed: FeedConfig | None, repeat: int = 5) -> float:
    """Best-of-`repeat` microseconds per item for parse_feed_bytes on one feed body."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        parse_feed_bytes(body, feed=feed)
        best = min(best, time.perf_counter() - t0)
    return best / n_items * 1e6


def _one_run(bodies: list[bytes], concurrency: int) -> dict[str, Any]:
    """Poll every body once into a fresh store (timed), then again (all 304)."""
    with tempfile.TemporaryDirectory() as tmp, ReplayServer() as server:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        store.upgrade(url)
        engine = store.make_engine(url)
        feeds = [
            # Half are lupus journals (every item kept), half pass the relevance filter (half kept).
            FeedConfig(
                id=f"bench-{i:03d}",
                name=f"Synthetic Journal {i}",
                publisher="bench",
                url=serve_feed(server, f"/feeds/{i:03d}.xml", body),
                all_lupus=i % 2 == 0,
            )
            for i, body in enumerate(bodies)
        ]
        settings = settings_from_dict(
            {"feeds": [f.model_dump() for f in feeds], "feed_settings": {"concurrency": concurrency}}
        )
        load = os.getloadavg()[0]
        t0, c0 = time.perf_counter(), time.process_time()
        first = poll_feeds(settings, engine, concurrency=concurrency)
        first_s, first_cpu = time.perf_counter() - t0, time.process_time() - c0
        t0 = time.perf_counter()
        second = poll_feeds(settings, engine, concurrency=concurrency)
        second_s = time.perf_counter() - t0
        engine.dispose()
    failed = [o.feed_id for o in first + second if not o.ok]
    if failed:
        raise RuntimeError(f"feeds failed during the benchmark: {failed}")
    return {
        "first": first,
        "second": second,
        "first_s": first_s,
        "first_cpu": first_cpu,
        "second_s": second_s,
        "load": load,
    }


def run(n_feeds: int, n_items: int, concurrency: int, repeats: int = 3) -> dict[str, Any]:
    bodies = [make_feed(n_items, feed_no=i, journal=f"Synthetic Journal {i}") for i in range(n_feeds)]
    runs = [_one_run(bodies, concurrency) for _ in range(repeats)]
    last = runs[-1]
    general = FeedConfig(id="g", name="General", publisher="bench", url="https://x.org/", all_lupus=False)
    return {
        "feeds": n_feeds,
        "items": sum(o.items for o in last["first"]),
        "kept": sum(o.kept for o in last["first"]),
        "new": sum(o.new for o in last["first"]),
        "walls": [r["first_s"] for r in runs],
        "first_s": statistics.median(r["first_s"] for r in runs),
        "first_cpu": statistics.median(r["first_cpu"] for r in runs),
        "load": statistics.median(r["load"] for r in runs),
        "second_s": statistics.median(r["second_s"] for r in runs),
        "not_modified": sum(o.not_modified for o in last["second"]),
        "bytes": sum(len(b) for b in bodies),
        "parse_us_item": _parse_cost(bodies[0], n_items, feed=None),
        "parse_filter_us_item": _parse_cost(bodies[0], n_items, feed=general),
        "concurrency": concurrency,
        "repeats": repeats,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_feeds", description=__doc__)
    parser.add_argument("--feeds", type=int, default=50)
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="timed first polls, each into a fresh store")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)

    r = run(args.feeds, args.items, args.concurrency, args.repeats)
    verdict = "PASS" if r["first_s"] < TARGET_S else "FAIL"
    rows = [
        (
            "feeds x items",
            f"{r['feeds']} x {args.items} ({r['items']} items, {r['bytes'] / 1e6:.1f} MB of RSS)",
        ),
        ("concurrency (worker threads)", f"{r['concurrency']}"),
        (
            f"first poll: fetch + parse + filter + upsert (median of {r['repeats']})",
            f"**{r['first_s']:.2f} s** wall ({r['items'] / r['first_s']:.0f} items/s; "
            f"target < {TARGET_S:.0f} s: {verdict}); runs: "
            + ", ".join(f"{w:.2f}" for w in r["walls"])
            + " s",
        ),
        ("CPU time of the first poll (all threads, median)", f"{r['first_cpu']:.2f} s"),
        (
            "1-minute load average at the start (median)",
            f"{r['load']:.1f} on {os.cpu_count()} cores shared with other work",
        ),
        ("papers kept / new in store", f"{r['kept']} / {r['new']} (half the feeds pass the lupus filter)"),
        (
            "second poll (conditional GET, all 304)",
            f"{r['second_s']:.2f} s ({r['not_modified']} of {r['feeds']} not modified)",
        ),
        ("parse cost per item (`parse_feed_bytes`, best of 5, no filter)", f"{r['parse_us_item']:.0f} µs"),
        ("parse cost per item with the relevance filter", f"{r['parse_filter_us_item']:.0f} µs"),
    ]
    body = (
        "| figure | value |\n|---|---|\n"
        + "\n".join(f"| {k} | {v} |" for k, v in rows)
        + "\n\nSynthetic Atypon-shaped RSS 2.0 feeds (`lupus_alerts.testing.feeds_replay.make_feed`)"
        " served by the local `ReplayServer`; SQLite store in a temporary directory; upserts through"
        " `dedupe.upsert_papers`. Parsing and upserting are CPU-bound and the threads share the GIL:"
        " on an idle machine the wall time is about the CPU time; on a loaded one it stretches with"
        " the CPU the other work leaves over.\n"
    )
    print(body.strip())
    if not args.no_write:
        cmd = "python -m bench.bench_feeds" + ("" if argv is None or not argv else " " + " ".join(argv))
        write_section("feeds", "Feed polling (50 feeds x 100 items)", body, cmd)
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
