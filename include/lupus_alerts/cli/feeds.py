"""`lupus-alerts feeds ...`: the journal feed registry, checks, polls and health.

`feeds check` fetches and parses every feed once and changes nothing: it sends no conditional
headers and stores no validators (had it stored an ETag without the items, the next real poll
would get 304 and miss them). `feeds poll` is the real thing: papers upserted, state recorded.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from lupus_alerts.config import ConfigError, FeedConfig, Settings, load_config

if TYPE_CHECKING:
    from lupus_alerts.cli import Groups
    from lupus_alerts.feeds import FeedOutcome


def register(groups: Groups) -> None:
    feeds = groups.group("feeds", "journal RSS/Atom feeds: registry, check, poll, health")

    p = feeds.add_parser("list", help="list the configured feeds")
    p.set_defaults(func=_list)

    p = feeds.add_parser(
        "check",
        help="fetch and parse each feed once and print a table; changes nothing in the store",
        description=(
            "Fetch and parse each configured feed once (unconditionally, concurrently) and print "
            "HTTP status, items, DOIs found, Last-Modified and any error. Writes nothing. "
            "Exit status 1 if any feed failed."
        ),
    )
    _feed_args(p)
    p.set_defaults(func=_check)

    p = feeds.add_parser(
        "poll",
        help="poll each feed (conditional GET), store its papers and its state",
        description="Poll feeds as the ingest DAG does: store new papers and each feed's outcome.",
    )
    _feed_args(p)
    p.set_defaults(func=_poll)

    p = feeds.add_parser("health", help="each feed's last poll, last success, failures and error")
    p.set_defaults(func=_health)


def _feed_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--feed", action="append", metavar="ID", help="only this feed (repeatable)")
    p.add_argument("--concurrency", type=int, help="feeds fetched at once (default: feed_settings)")


def _selected(settings: Settings, ids: Sequence[str] | None) -> list[FeedConfig]:
    if not ids:
        return list(settings.feeds)
    known = {f.id: f for f in settings.feeds}
    unknown = [i for i in ids if i not in known]
    if unknown:
        # A usage problem: the CLI reports ConfigError and exits 2.
        raise ConfigError(f"unknown feed id(s): {', '.join(unknown)} (see `lupus-alerts feeds list`)")
    return [known[i] for i in ids]


def _list(args: argparse.Namespace) -> int:
    settings = load_config(args.config)
    rows = [
        [f.id, f.name, f.publisher, "yes" if f.all_lupus else "filter", "yes" if f.verified else "no", f.url]
        for f in settings.feeds
    ]
    print(_table(["feed", "journal", "publisher", "all lupus", "verified", "url"], rows))
    return 0


def _check(args: argparse.Namespace) -> int:
    from lupus_alerts.feeds import check_feeds

    settings = load_config(args.config)
    selected = _selected(settings, args.feed)
    outcomes = check_feeds(settings, selected, args.concurrency)
    print(_outcome_table(outcomes, stored=False))
    return _summary(outcomes)


def _poll(args: argparse.Namespace) -> int:
    from lupus_alerts import store
    from lupus_alerts.feeds import poll_feeds

    settings = load_config(args.config)
    selected = _selected(settings, args.feed)
    engine = store.get_engine(settings.database_url)
    outcomes = poll_feeds(settings, engine, selected, args.concurrency)
    print(_outcome_table(outcomes, stored=True))
    return _summary(outcomes)


def _health(args: argparse.Namespace) -> int:
    from lupus_alerts import pipeline, store

    settings = load_config(args.config)
    # the same rows the Airflow task and the operator page show (pipeline.feed_health)
    print(
        pipeline.format_health_table(pipeline.feed_health(store.get_engine(settings.database_url), settings))
    )
    return 0


def _outcome_table(outcomes: Sequence[FeedOutcome], *, stored: bool) -> str:
    heads = ["feed", "http", "items", "kept", "dois", "last modified", "secs", "error"]
    if stored:
        heads[5:5] = ["new", "updated"]
    rows = []
    for o in outcomes:
        blank = o.not_modified or not o.ok
        row = [
            o.feed_id,
            str(o.http_status) if o.http_status is not None else "-",
            "" if blank else str(o.items),
            "" if blank else str(o.kept),
            "" if blank else str(o.dois),
            o.last_modified or "",
            f"{o.elapsed:.2f}",
            _clip(o.error or ("not modified" if o.not_modified else "; ".join(o.warnings))),
        ]
        if stored:
            row[5:5] = ["", ""] if blank else [str(o.new), str(o.updated)]
        rows.append(row)
    return _table(heads, rows)


def _summary(outcomes: Sequence[FeedOutcome]) -> int:
    failed = [o.feed_id for o in outcomes if not o.ok]
    print(
        f"{len(outcomes) - len(failed)} of {len(outcomes)} feeds ok"
        + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


def _table(heads: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [list(map(str, heads)), *[[str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(heads))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _clip(text: str, width: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
