"""`lupus-alerts config ...`: check the configuration file."""

from __future__ import annotations

import argparse

from lupus_alerts.cli import Groups
from lupus_alerts.config import config_path, live_problems, load_config, redact_url


def register(groups: Groups) -> None:
    cfg = groups.group("config", "the configuration file")
    p = cfg.add_parser("check", help="validate the configuration and print a summary")
    p.add_argument("file", nargs="?", help="file to check (default: the one in use)")
    p.add_argument(
        "--strict",
        action="store_true",
        help="also fail (exit 1) on what a live deployment must not run with: placeholder "
        "addresses, no or a placeholder link-signing secret, no operator address",
    )
    p.set_defaults(func=_check)


def _check(args: argparse.Namespace) -> int:
    path = config_path(args.file or args.config)
    s = load_config(path)
    print(f"{path}: OK")
    print(f"  store:    {redact_url(s.database_url)}")
    print(f"  pubmed:   {s.pubmed.base_url} (overlap {s.pubmed.overlap_days} d, batch {s.pubmed.batch_size})")
    print(f"  feeds:    {len(s.feeds)} ({sum(f.all_lupus for f in s.feeds)} lupus journals)")
    print(f"  mail:     {s.mail.mode}" + (f" -> {s.mail.outbox_dir}" if s.mail.mode == "outbox" else ""))
    if args.strict:
        problems = live_problems(s)
        for problem in problems:
            print(f"  error:    {problem}")
        return 1 if problems else 0
    for problem in s.placeholder_problems():
        print(f"  warning:  {problem} (a live run refuses to start until it is set)")
    return 0
