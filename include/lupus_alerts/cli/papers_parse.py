"""`lupus-alerts papers parse`: a PubMed XML or feed file as paper-schema JSON lines."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lupus_alerts.cli import Groups


def register(groups: Groups) -> None:
    """Add `papers parse` to the CLI."""
    papers = groups.group("papers", "papers: parse, store and inspect records")
    p = papers.add_parser(
        "parse",
        help="parse a PubMed XML (EFetch) or feed file and print one paper-schema JSON object per line",
        description=(
            "Parse FILE (or stdin with '-') and print one JSON object per paper, in the paper schema "
            "(docs/paper-schema.md). Unreadable records and feed warnings go to stderr."
        ),
    )
    p.add_argument(
        "--source", choices=("pubmed", "feed"), default="pubmed", help="input format (default: pubmed)"
    )
    p.add_argument("file", metavar="FILE", help="the file to parse, or '-' for stdin")
    p.set_defaults(func=_parse)


def _read(name: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read()
    with open(name, "rb") as fh:
        return fh.read()


def _parse(args: argparse.Namespace) -> int:
    try:
        data = None if args.source == "pubmed" and args.file != "-" else _read(args.file)
    except OSError as e:
        print(f"error: cannot read {args.file}: {e.strerror or e}", file=sys.stderr)
        return 1
    out = sys.stdout
    if args.source == "feed":
        from lupus_alerts.feeds import FeedError, parse_feed_bytes

        try:
            result = parse_feed_bytes(data, feed=None, headers=None)
        except FeedError as e:  # an entity bomb or an oversized file: refused, nothing parsed
            print(f"error: {args.file}: {e}", file=sys.stderr)
            return 1
        for w in result.warnings:
            print(f"warning: {w}", file=sys.stderr)
        for paper in result.papers:
            out.write(json.dumps(paper.to_dict(), ensure_ascii=False) + "\n")
        return 0

    from lupus_alerts.models import Paper
    from lupus_alerts.pubmed import DeletedCitation, parse_pubmed

    problems = 0
    try:
        source = data if data is not None else args.file
        for item in parse_pubmed(source):
            if isinstance(item, Paper):
                out.write(json.dumps(item.to_dict(), ensure_ascii=False) + "\n")
            elif isinstance(item, DeletedCitation):
                print(f"deleted: PMIDs {', '.join(item.pmids)}", file=sys.stderr)
            else:
                problems += 1
                print(f"problem: PMID {item.pmid or '?'}: {item.reason}", file=sys.stderr)
    except OSError as e:
        print(f"error: cannot read {args.file}: {e.strerror or e}", file=sys.stderr)
        return 1
    # Unreadable records are reported, not fatal: the papers that could be read were printed.
    return 1 if problems else 0
