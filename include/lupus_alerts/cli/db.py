"""`lupus-alerts db ...`: the store's schema."""

from __future__ import annotations

import argparse

from lupus_alerts import store
from lupus_alerts.cli import Groups
from lupus_alerts.config import load_config, redact_url


def register(groups: Groups) -> None:
    db = groups.group("db", "the project's store (its own database, not Airflow's)")
    p = db.add_parser("upgrade", help="create the store or migrate it to the latest schema")
    p.add_argument("--url", help="SQLAlchemy URL (default: the configured store)")
    p.set_defaults(func=_upgrade)
    p = db.add_parser("current", help="print the store's schema revision")
    p.add_argument("--url", help="SQLAlchemy URL (default: the configured store)")
    p.set_defaults(func=_current)


def _url(args: argparse.Namespace) -> str:
    return args.url or load_config(args.config).database_url


def _upgrade(args: argparse.Namespace) -> int:
    url = _url(args)
    store.upgrade(url)
    print(f"store at revision {store.current_revision(url)}: {redact_url(url)}")
    return 0


def _current(args: argparse.Namespace) -> int:
    print(store.current_revision(_url(args)) or "(empty)")
    return 0
