"""`lupus-alerts digest preview`: render what a subscriber would be sent now, changing nothing."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lupus_alerts import delivery, digest, store
from lupus_alerts import subscribers as subs
from lupus_alerts.cli import Groups
from lupus_alerts.config import load_config


def register(groups: Groups) -> None:
    g = groups.group("digest", "build, preview and send digests")
    p = g.add_parser(
        "preview",
        help="render a subscriber's next digest without sending it or advancing anything",
    )
    p.add_argument("--subscriber", required=True, metavar="EMAIL", help="email address or id")
    p.add_argument("--out", metavar="FILE.html", help="write the HTML here (default: print the text part)")
    p.add_argument("--text-out", metavar="FILE.txt", help="also write the plain-text part here")
    p.set_defaults(func=_preview)


def _preview(args: argparse.Namespace) -> int:
    settings = load_config(args.config)
    engine = store.get_engine(settings.database_url)
    now = store.utcnow()
    with engine.connect() as conn:
        try:
            sub = subs.get(conn, args.subscriber)
        except subs.SubscriberNotFound as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        announce_to, update_to = store.high_water_marks(conn)
        link_maker = None
        from lupus_alerts import tokens

        try:
            tokens.get_secret()
        except tokens.MissingSecret:
            print(
                "note: no link-signing secret configured; the preview's links carry a placeholder token",
                file=sys.stderr,
            )
            link_maker = digest.placeholder_links
        d = digest.build_digest(
            conn,
            settings,
            sub,
            announce_to=announce_to,
            update_to=update_to,
            period=delivery.period_containing(sub, now.date()),
            now=now,
            link_maker=link_maker,
        )
    print(
        f"{d.subject}\n{sub.email}: {d.paper_count} paper(s), {d.overflow} more beyond the limit, "
        f"{d.update_count} update(s); announcements ({d.announce_from}, {d.announce_to}], "
        f"updates ({d.update_from}, {d.update_to}]"
        + ("; empty: would not be sent" if d.is_empty and not sub.send_when_empty else ""),
        file=sys.stderr,
    )
    if args.out:
        Path(args.out).write_text(d.html, encoding="utf-8")
        print(f"wrote {args.out} ({len(d.html.encode('utf-8')):,} bytes)", file=sys.stderr)
    if args.text_out:
        Path(args.text_out).write_text(d.text, encoding="utf-8")
    if not args.out:
        sys.stdout.write(d.text)
    return 0
