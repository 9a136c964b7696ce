"""`lupus-alerts digest send|requeue|ledger` and `lupus-alerts web serve`.

`digest send` plans the day's digests and sends them through the configured transport
(`mail.mode`: smtp via the `smtp_default` connection, or the outbox). `--dry-run` writes what
would be sent to an outbox directory (a new temporary one unless `--outbox` names one) and
changes nothing: no ledger rows, no cursors. See docs/delivery.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict
from datetime import date

from lupus_alerts.cli import Groups
from lupus_alerts.config import load_config


def register(groups: Groups) -> None:
    digest = groups.group("digest", "build, preview and send digests")
    p = digest.add_parser(
        "send",
        help="plan and send the digests due on a day (default: today, UTC)",
        description="Plan the day's digests in the delivery ledger and send them. Safe to rerun: "
        "a digest already sent for its period is never sent again.",
    )
    p.add_argument(
        "--date", type=date.fromisoformat, metavar="YYYY-MM-DD", help="the digest day (default: today)"
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="write the digests that would be sent to an outbox directory; change nothing",
    )
    p.add_argument(
        "--outbox", metavar="DIR", help="with --dry-run: the directory (default: a new temporary one)"
    )
    p.add_argument(
        "--connections",
        type=int,
        default=1,
        metavar="N",
        help="parallel SMTP connections (default 1; mail.rate_per_second applies to each)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_send)

    p = digest.add_parser(
        "requeue",
        help="queue `unconfirmed` digests again, after checking the mail server's log",
        description="A digest whose send was interrupted is marked unconfirmed and never resent "
        "automatically (it may have been delivered). After checking the mail server's log, "
        "requeue it; the next `digest send` sends it.",
    )
    p.add_argument("--period", help="only this period (e.g. 2026-11-27 or 2026-W48)")
    p.set_defaults(func=_requeue)

    p = digest.add_parser("ledger", help="count delivery-ledger rows by state")
    p.add_argument("--period", help="only this period")
    p.set_defaults(func=_ledger)

    web = groups.group("web", "the unsubscribe and preferences web app")
    p = web.add_parser("serve", help="serve the unsubscribe/preferences app with uvicorn (standalone)")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8085, help="port (default: 8085)")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="uvicorn worker processes (default: 1; docker-compose.yaml runs 4 behind the reverse proxy)",
    )
    p.set_defaults(func=_serve)


def _engine(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from lupus_alerts import store

    settings = load_config(args.config)
    return settings, store.get_engine(settings.database_url)


def _send(args: argparse.Namespace) -> int:
    from lupus_alerts import delivery, mailer, store

    settings, engine = _engine(args)
    day = args.date or store.utcnow().date()
    try:
        if args.dry_run:
            outbox = args.outbox or tempfile.mkdtemp(prefix="lupus-alerts-dry-run-")
            with mailer.OutboxTransport(outbox) as transport:
                stats = delivery.preview_due(engine, settings, day=day, transport=transport)
            result = {"day": day.isoformat(), "dry_run": True, "outbox": str(outbox), **asdict(stats)}
        else:
            plan = delivery.plan_period(engine, settings, day=day)
            stats = delivery.send_due(
                engine, settings, day=day, subscriber_ids=plan.due, connections=max(1, args.connections)
            )
            result = {"day": day.isoformat(), "planned": plan.created, **asdict(stats)}
    except (delivery.DeliveryError, mailer.TransportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        counts = ", ".join(
            f"{k} {v}" for k, v in result.items() if isinstance(v, int) and not isinstance(v, bool)
        )
        print(f"digests {result['day']}{' (dry run)' if args.dry_run else ''}: {counts}")
        if args.dry_run:
            print(f"outbox: {result['outbox']} (open index.html)")
        for e in result["errors"]:
            print(f"  {e['state']}: {e['email'] or e['subscriber_id']}: {e['code'] or ''} {e['reason']}")
    return 1 if result["errors"] else 0


def _requeue(args: argparse.Namespace) -> int:
    from lupus_alerts import delivery

    _, engine = _engine(args)
    n = delivery.requeue_unconfirmed(engine, period=args.period)
    print(f"requeued {n} unconfirmed digest(s); run `lupus-alerts digest send` to send them")
    return 0


def _ledger(args: argparse.Namespace) -> int:
    from lupus_alerts import delivery

    _, engine = _engine(args)
    counts = delivery.ledger_counts(engine, args.period)
    for state, n in sorted(counts.items()):
        print(f"{state:18} {n}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    import os

    import uvicorn

    from lupus_alerts.config import CONFIG_ENV, config_path

    load_config(args.config)  # fail now, with the config error, not on the first request
    if args.config:  # the app loads the configuration itself, on its first request
        os.environ[CONFIG_ENV] = str(config_path(args.config).resolve())
    if args.workers < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return 2
    # Several processes (each its own store connections), so one slow request never holds the
    # others; uvicorn restarts a worker that dies.
    uvicorn.run(
        "lupus_alerts.web:app", host=args.host, port=args.port, workers=args.workers, log_level="info"
    )
    return 0
