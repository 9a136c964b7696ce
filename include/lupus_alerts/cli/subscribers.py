"""`lupus-alerts subscribers ...`: add, list, update, remove, import and export subscribers."""

from __future__ import annotations

import argparse
import json
import sys

from lupus_alerts import store
from lupus_alerts import subscribers as subs
from lupus_alerts.cli import Groups
from lupus_alerts.config import load_config


def register(groups: Groups) -> None:
    g = groups.group("subscribers", "manage digest subscribers")
    topics_help = "comma-separated topic ids, or 'all' (default: all); see `subscribers topics`"

    p = g.add_parser("add", help="add a subscriber")
    p.add_argument("email")
    p.add_argument("--name")
    p.add_argument("--topics", default="all", help=topics_help)
    p.add_argument("--frequency", choices=subs.FREQUENCIES, default="daily")
    p.add_argument("--weekday", help="for weekly digests: 0-6 (Monday=0) or a day name")
    p.add_argument("--max-papers", type=int, default=50, help="papers per digest (default 50)")
    p.add_argument("--send-when-empty", action="store_true", help="send a digest even with nothing new")
    p.add_argument(
        "--from-beginning",
        action="store_true",
        help="start at announcement 0 (the whole archive) instead of from now",
    )
    p.set_defaults(func=_add)

    p = g.add_parser("list", help="list subscribers")
    p.add_argument("--status", choices=subs.STATUSES)
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=_list)

    p = g.add_parser("update", help="change a subscriber's settings")
    p.add_argument("subscriber", help="email address or id")
    p.add_argument("--email", dest="new_email", help="a new email address")
    p.add_argument("--name")
    p.add_argument("--topics", help=topics_help)
    p.add_argument("--frequency", choices=subs.FREQUENCIES)
    p.add_argument("--weekday")
    p.add_argument("--max-papers", type=int)
    p.add_argument("--send-when-empty", choices=("yes", "no"))
    p.add_argument("--status", choices=subs.STATUSES)
    p.set_defaults(func=_update)

    p = g.add_parser(
        "remove", help="unsubscribe a subscriber (kept, status unsubscribed), or erase with --delete"
    )
    p.add_argument("subscriber", help="email address or id")
    p.add_argument("--delete", action="store_true", help="erase the subscriber and their delivery history")
    p.set_defaults(func=_remove)

    p = g.add_parser(
        "revoke-links",
        help="a new link key for a subscriber: every unsubscribe and preferences link sent stops working",
    )
    p.add_argument("subscriber", help="email address or id")
    p.set_defaults(func=_revoke_links)

    p = g.add_parser("import", help="add subscribers from a CSV file (all or nothing, unless --skip-invalid)")
    p.add_argument("file", help=f"CSV with a header; columns: {', '.join(subs.CSV_COLUMNS)} (email required)")
    p.add_argument("--skip-invalid", action="store_true", help="import the good rows even if some are bad")
    p.add_argument(
        "--from-beginning", action="store_true", help="start the new subscribers at announcement 0"
    )
    p.set_defaults(func=_import)

    p = g.add_parser("export", help="write all subscribers as CSV (to FILE or standard output)")
    p.add_argument("file", nargs="?")
    p.set_defaults(func=_export)

    p = g.add_parser("topics", help="list the topic ids a subscriber can choose")
    p.set_defaults(func=_topics)


def _engine(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    return store.get_engine(load_config(args.config).database_url)


def _fail(e: Exception) -> int:
    print(f"error: {e}", file=sys.stderr)
    return 1


def _describe(s: subs.Subscriber) -> str:
    topics = "all topics" if s.topics is None else ",".join(sorted(s.topics))
    when = s.frequency if s.weekday is None else f"weekly on {subs.WEEKDAYS[s.weekday]}"
    name = f" ({s.name})" if s.name else ""
    return f"{s.id}\t{s.email}{name}\t{s.status}\t{when}\t{topics}\tmax {s.max_papers}"


def _add(args: argparse.Namespace) -> int:
    try:
        s = subs.add(
            _engine(args),
            email=args.email,
            name=args.name,
            topics=args.topics,
            frequency=args.frequency,
            weekday=args.weekday,
            max_papers=args.max_papers,
            send_when_empty=args.send_when_empty,
            from_beginning=args.from_beginning,
        )
    except subs.SubscriberError as e:
        return _fail(e)
    print(f"added {_describe(s)}")
    return 0


def _list(args: argparse.Namespace) -> int:
    for s in subs.list_subscribers(_engine(args), status=args.status):
        if args.json:
            d = {k: getattr(s, k) for k in s.__slots__}
            d["topics"] = None if s.topics is None else sorted(s.topics)
            print(json.dumps(d))
        else:
            print(_describe(s))
    return 0


def _update(args: argparse.Namespace) -> int:
    changes: dict[str, object] = {}
    for arg, key in (
        ("new_email", "email"),
        ("name", "name"),
        ("topics", "topics"),
        ("frequency", "frequency"),
        ("weekday", "weekday"),
        ("max_papers", "max_papers"),
        ("status", "status"),
    ):
        value = getattr(args, arg)
        if value is not None:
            changes[key] = value
    if args.send_when_empty is not None:
        changes["send_when_empty"] = args.send_when_empty == "yes"
    if not changes:
        print("error: nothing to change (give at least one option)", file=sys.stderr)
        return 2
    try:
        s = subs.update(_engine(args), args.subscriber, **changes)  # type: ignore[arg-type]
    except subs.SubscriberError as e:
        return _fail(e)
    print(f"updated {_describe(s)}")
    return 0


def _remove(args: argparse.Namespace) -> int:
    try:
        s = subs.remove(_engine(args), args.subscriber, delete=args.delete)
    except subs.SubscriberError as e:
        return _fail(e)
    print(f"{'deleted' if args.delete else 'unsubscribed'} {s.email}")
    return 0


def _revoke_links(args: argparse.Namespace) -> int:
    try:
        s = subs.revoke_links(_engine(args), args.subscriber)
    except subs.SubscriberError as e:
        return _fail(e)
    print(f"revoked the links sent to {s.email}; the next digest carries new ones")
    return 0


def _import(args: argparse.Namespace) -> int:
    try:
        report = subs.import_csv(
            _engine(args), args.file, skip_invalid=args.skip_invalid, from_beginning=args.from_beginning
        )
    except (OSError, UnicodeDecodeError) as e:
        return _fail(e)
    for problem in report.problems:
        print(f"{args.file}: {problem}", file=sys.stderr)
    if report.problems and not args.skip_invalid:
        print(
            f"nothing imported: {len(report.problems)} bad row(s) of {report.rows} "
            "(fix them, or use --skip-invalid to import the good rows)",
            file=sys.stderr,
        )
        return 1
    print(f"imported {report.imported} subscriber(s), skipped {report.skipped} bad row(s)")
    return 0


def _export(args: argparse.Namespace) -> int:
    engine = _engine(args)
    if args.file:
        n = subs.export_csv(engine, args.file)
        print(f"exported {n} subscriber(s) to {args.file}", file=sys.stderr)
    else:
        subs.export_csv(engine, sys.stdout)
    return 0


def _topics(args: argparse.Namespace) -> int:
    for label, name in subs.topic_labels().items():
        print(f"{label}\t{name}")
    return 0
