"""`lupus-alerts classify [FILE|-]` and `lupus-alerts classify eval FILE`.

Classify papers given as JSON lines in the paper schema, or measure the classifier on a
labelled set. A first argument `eval` selects evaluation (a file literally named "eval" can be
given as ./eval).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import IO, Any

from lupus_alerts.cli import Groups

USAGE = """\
lupus-alerts classify [FILE|-]
    Read JSON lines in the paper schema (title, abstract, optional journal, mesh,
    publication_types, keywords) from FILE or stdin, write each line back with is_lupus,
    relevance_score, relevance_evidence and topics [{label, score, evidence}].
lupus-alerts classify eval [FILE] [--mesh] [--errors]
    Without FILE: the classifier's figures on real PubMed papers first (the frozen real test
    split, never tuned on), then on the written examples (the labelled test split), then the
    relevance guard (1,603 non-lupus rheumatology records that must stay "not lupus").
    With FILE: compare with the gold fields (gold_is_lupus, gold_topics) of that labelled
    JSON-lines file. Each report: per-label precision, recall and F1, micro and macro F1,
    label precision and recall, relevance accuracy. Text only by default (MeSH removed,
    --no-mesh); --mesh keeps MeSH headings."""


def register(groups: Groups) -> None:
    p = groups.command("classify", "classify papers by lupus subspecialty, or evaluate on a labelled set")
    p.usage = USAGE
    p.add_argument("args", nargs="*", metavar="[eval] FILE", help="a JSON-lines file, '-' for stdin")
    mesh = p.add_mutually_exclusive_group()
    mesh.add_argument("--mesh", dest="mesh", action="store_true", help="eval: use MeSH headings")
    mesh.add_argument("--no-mesh", dest="mesh", action="store_false", help="eval: text only (default)")
    p.add_argument("--errors", action="store_true", help="eval: also list the papers classified wrongly")
    p.set_defaults(func=_dispatch, mesh=False)


def _dispatch(args: argparse.Namespace) -> int:
    rest: list[str] = list(args.args)
    if rest and rest[0] == "eval":
        if len(rest) > 2:
            print("usage: lupus-alerts classify eval [FILE] [--mesh|--no-mesh]", file=sys.stderr)
            return 2
        if len(rest) == 1:
            return _eval_standard(use_mesh=args.mesh, show_errors=args.errors)
        return _eval(Path(rest[1]), use_mesh=args.mesh, show_errors=args.errors)
    if len(rest) > 1:
        print("usage: lupus-alerts classify [FILE|-]", file=sys.stderr)
        return 2
    source = rest[0] if rest else "-"
    if source == "-":
        return classify_stream(sys.stdin, sys.stdout, sys.stderr)
    try:
        with open(source, encoding="utf-8") as f:
            return classify_stream(f, sys.stdout, sys.stderr)
    except OSError as e:
        print(f"error: cannot read {source}: {e.strerror}", file=sys.stderr)
        return 1


def classify_stream(inp: IO[str], out: IO[str], err: IO[str]) -> int:
    """Classify each JSON line of `inp` onto `out`; report bad lines on `err` by line number.

    Returns 0 when every line was classified, 1 when any line failed (the others are still
    written).
    """
    from lupus_alerts.classify import Classifier, classification_dict
    from lupus_alerts.models import Paper

    clf = Classifier()
    failed = 0
    for lineno, line in enumerate(inp, start=1):
        if not line.strip():
            continue
        try:
            obj: Any = json.loads(line)
        except json.JSONDecodeError as e:
            print(f"line {lineno}: not valid JSON ({e.msg} at column {e.colno})", file=err)
            failed += 1
            continue
        if not isinstance(obj, dict):
            print(f"line {lineno}: expected a JSON object, got {type(obj).__name__}", file=err)
            failed += 1
            continue
        title = obj.get("title")
        if not isinstance(title, str) or not title.strip():
            print(f"line {lineno}: no title", file=err)
            failed += 1
            continue
        try:
            paper = Paper.from_dict(obj)
        except (TypeError, ValueError, KeyError) as e:
            print(f"line {lineno}: not a paper-schema record ({e})", file=err)
            failed += 1
            continue
        obj.update(classification_dict(clf.classify(paper)))
        out.write(json.dumps(obj, ensure_ascii=False) + "\n")
    if failed:
        print(f"{failed} line(s) could not be classified", file=err)
    return 1 if failed else 0


def _eval_standard(*, use_mesh: bool, show_errors: bool) -> int:
    """Real papers first, the written examples second, the relevance guard last."""
    from lupus_alerts.classify import REAL_TEST, RHEUMATOLOGY_OTHER, WRITTEN_TEST, Classifier, relevance_guard

    clf = Classifier()
    rc = 0
    for heading, path in (
        ("Real PubMed papers, frozen test split (never tuned on)", REAL_TEST),
        ("Written examples, labelled test split", WRITTEN_TEST),
    ):
        print(f"== {heading}")
        rc |= _eval(path, use_mesh=use_mesh, show_errors=show_errors, classifier=clf)
        print()
    print("== Relevance guard: non-lupus rheumatology records (real)")
    n, called = relevance_guard(RHEUMATOLOGY_OTHER, clf)
    print(f"{RHEUMATOLOGY_OTHER}: {n} records, {len(called)} called lupus (must be 0)")
    for title in called[:20]:
        print(f"- {title[:100]}")
    model = clf.label_model
    if model is not None and (cv := (model.meta.get("cross_validation") or {}).get("chosen")):
        print()
        print(
            f"Cross-validated on the real dev split ({model.meta['cross_validation']['repeats']} x "
            f"{model.meta['cross_validation']['folds']}-fold, learned layer refitted per fold): "
            f"micro-F1 {cv['micro_f1']:.3f}, label precision {cv['precision']:.3f}, "
            f"recall {cv['recall']:.3f}, macro-F1 {cv['macro_f1']:.3f}"
        )
    return rc | (1 if called else 0)


def _eval(path: Path, *, use_mesh: bool, show_errors: bool, classifier: Any = None) -> int:
    from lupus_alerts.classify import Classifier, evaluate, read_jsonl

    try:
        records = read_jsonl(path)
    except OSError as e:
        print(f"error: cannot read {path}: {e.strerror}", file=sys.stderr)
        return 1
    except json.JSONDecodeError as e:
        print(f"error: {path}: line {e.lineno} is not valid JSON ({e.msg})", file=sys.stderr)
        return 1
    missing = [i for i, r in enumerate(records, 1) if "gold_is_lupus" not in r]
    if missing:
        print(f"error: {path}: record(s) {missing[:5]} have no gold_is_lupus", file=sys.stderr)
        return 1
    report = evaluate(records, classifier or Classifier(), use_mesh=use_mesh)
    print(f"{path}: {report.n} papers, {'with MeSH' if use_mesh else 'text only (MeSH removed)'}")
    print(report.format())
    if show_errors:
        for e in report.errors:
            print(
                f"- {e['title'][:90]}: lupus gold={e['gold_is_lupus']} predicted={e['is_lupus']}; "
                f"missed {e['missed']}, extra {e['extra']}"
            )
    return 0
