"""The `lupus-alerts` command line.

Every module in this package that defines `register(groups)` adds its commands; a command
group ("papers", "feeds", ...) may be shared by several modules, so each concept keeps its own
commands beside nothing else. Commands exit 0 on success, 1 on a failure they report, 2 on bad
usage or configuration.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Callable, Sequence

from lupus_alerts.config import ConfigError


class Groups:
    """Hands out one sub-parser collection per command group, created on first use."""

    def __init__(self, root: argparse._SubParsersAction) -> None:
        self._root = root
        self._groups: dict[str, argparse._SubParsersAction] = {}

    def group(self, name: str, help: str) -> argparse._SubParsersAction:
        if name not in self._groups:
            p = self._root.add_parser(name, help=help, description=help)
            p.set_defaults(func=lambda args, _p=p: _p.print_help() or 2)
            self._groups[name] = p.add_subparsers(title="commands", metavar="COMMAND")
        return self._groups[name]

    def command(self, name: str, help: str) -> argparse.ArgumentParser:
        """A top-level command with no group (e.g. `lupus-alerts classify`)."""
        return self._root.add_parser(name, help=help, description=help)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lupus-alerts",
        description="Lupus literature alerts: ingest PubMed and journal feeds, classify, email digests.",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="configuration file (default: $LUPUS_ALERTS_CONFIG or ./lupus-alerts.yaml)",
    )
    root = parser.add_subparsers(title="commands", metavar="COMMAND")
    groups = Groups(root)
    for mod in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if mod.name.startswith("_"):  # __main__ runs the CLI when imported: never import it here
            continue
        module = importlib.import_module(f"{__name__}.{mod.name}")
        register: Callable[[Groups], None] | None = getattr(module, "register", None)
        if register:
            register(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `| head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
