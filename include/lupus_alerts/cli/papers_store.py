"""`lupus-alerts papers list|show|store`: what the store holds, with provenance."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from lupus_alerts.cli import Groups


def register(groups: Groups) -> None:
    papers = groups.group("papers", "papers: parse records, list and show the store")

    p = papers.add_parser("list", help="list stored papers, newest first")
    p.add_argument(
        "--since", type=date.fromisoformat, metavar="DATE", help="first seen on or after DATE (YYYY-MM-DD)"
    )
    p.add_argument("--topic", metavar="T", help="only papers classified under topic T")
    p.add_argument("--limit", type=int, default=50, metavar="N", help="at most N papers (default 50)")
    p.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    p.add_argument("--url", help="SQLAlchemy URL (default: the configured store)")
    p.set_defaults(func=_list)

    p = papers.add_parser("show", help="one paper with its sources, topics and updates")
    p.add_argument("id", metavar="DOI|PMID", help="a DOI in any form, a PMID, or 'id:N' for a store id")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--url", help="SQLAlchemy URL (default: the configured store)")
    p.set_defaults(func=_show)

    p = papers.add_parser(
        "store",
        help="merge paper-schema JSON lines (from `papers parse`) into the store",
        description="Read paper-schema JSON lines from FILE (or '-' for stdin) and upsert them.",
    )
    p.add_argument("file", metavar="FILE", help="JSON-lines file, or '-' for stdin")
    p.add_argument("--url", help="SQLAlchemy URL (default: the configured store)")
    p.set_defaults(func=_store)


def _engine(args: argparse.Namespace) -> Engine:
    from lupus_alerts import store
    from lupus_alerts.config import load_config

    return store.get_engine(args.url or load_config(args.config).database_url)


def _list(args: argparse.Namespace) -> int:
    import sqlalchemy as sa

    from lupus_alerts import store

    P, T = store.papers, store.paper_topics
    q = sa.select(P).order_by(P.c.first_seen_at.desc(), P.c.id.desc()).limit(max(0, args.limit))
    if args.since:
        q = q.where(P.c.first_seen_at >= datetime.combine(args.since, datetime.min.time()))
    if args.topic:
        q = q.where(P.c.id.in_(sa.select(T.c.paper_id).where(T.c.label == args.topic)))
    with _engine(args).connect() as conn:
        rows = conn.execute(q).all()
        topics = _topics(conn, [r.id for r in rows])
    out = sys.stdout
    if args.json:
        for r in rows:
            out.write(json.dumps(_summary(r, topics.get(r.id, [])), ensure_ascii=False) + "\n")
        return 0
    if not rows:
        print("no papers", file=sys.stderr)
        return 0
    out.write(f"{'id':>7} {'ann#':>6} {'first seen':10} {'lupus':5} {'identifier':34} title\n")
    for r in rows:
        ident = r.doi or (f"PMID {r.pmid}" if r.pmid else "-")
        lupus = {True: "yes", False: "no", None: "?"}[r.is_lupus]
        flag = "[RETRACTED] " if r.is_retracted else ""
        out.write(
            f"{r.id:>7} {r.announce_no or '':>6} {r.first_seen_at:%Y-%m-%d} {lupus:5} {ident[:34]:34} "
            f"{flag}{_short(r.title, 70)}"
            + (f"  [{', '.join(t['label'] for t in topics.get(r.id, []))}]" if topics.get(r.id) else "")
            + "\n"
        )
    return 0


def _show(args: argparse.Namespace) -> int:
    import sqlalchemy as sa

    from lupus_alerts import store
    from lupus_alerts.doi import normalize_doi

    P, S, U = store.papers, store.paper_sources, store.paper_updates
    key = args.id.strip()
    if key.lower().startswith("id:") and key[3:].isdigit():
        where = P.c.id == int(key[3:])
    elif key.isdigit():
        where = P.c.pmid == key
    elif doi := normalize_doi(key):
        where = P.c.doi == doi
    else:
        print(f"error: {key!r} is neither a DOI nor a PMID", file=sys.stderr)
        return 2
    with _engine(args).connect() as conn:
        paper = conn.execute(sa.select(P).where(where)).first()
        if paper is None:
            print(f"no paper {key} in the store", file=sys.stderr)
            return 1
        sources = conn.execute(
            sa.select(S).where(S.c.paper_id == paper.id).order_by(S.c.first_seen_at, S.c.id)
        ).all()
        updates = conn.execute(
            sa.select(U).where(U.c.paper_id == paper.id).order_by(U.c.detected_at, U.c.id)
        ).all()
        topics = _topics(conn, [paper.id]).get(paper.id, [])
    detail = {
        **_summary(paper, topics),
        "relevance_score": paper.relevance_score,
        "relevance_evidence": (paper.classification or {}).get("relevance_evidence", []),
        "announced_at": _iso(paper.announced_at),
        "updated_at": _iso(paper.updated_at),
        "needs_classification": paper.needs_classification,
        "sources": [
            {
                "source": s.source,
                "source_key": s.source_key,
                "first_seen_at": _iso(s.first_seen_at),
                "last_seen_at": _iso(s.last_seen_at),
                "doi": s.record.get("doi"),
                "pmid": s.record.get("pmid"),
                "title": s.record.get("title"),
            }
            for s in sources
        ],
        "updates": [
            {
                "kind": u.kind,
                "notice_key": u.notice_key,
                "detected_at": _iso(u.detected_at),
                "update_no": u.update_no,
                "notice": u.notice,
            }
            for u in updates
        ],
        "record": paper.record,
    }
    if args.json:
        print(json.dumps(detail, ensure_ascii=False, indent=2))
        return 0
    _print_detail(detail)
    return 0


def _print_detail(d: dict[str, Any]) -> None:
    w = sys.stdout.write
    w(f"{d['title']}\n")
    if d["is_retracted"]:
        w("  ** RETRACTED **\n")
    w(f"  store id     {d['id']}\n  DOI          {d['doi'] or '-'}\n  PMID         {d['pmid'] or '-'}\n")
    w(f"  journal      {d['journal'] or '-'}\n  published    {d['pub_date'] or '-'}\n")
    lupus = {True: "yes", False: "no", None: "not classified yet"}[d["is_lupus"]]
    score = f" (score {d['relevance_score']:.2f})" if d["relevance_score"] is not None else ""
    w(f"  lupus        {lupus}{score}\n")
    if d["relevance_evidence"]:
        w(f"               evidence: {'; '.join(map(str, d['relevance_evidence']))}\n")
    ann = f"#{d['announce_no']} at {d['announced_at']}" if d["announce_no"] else "not announced"
    w(f"  announced    {ann}\n  first seen   {d['first_seen_at']}\n  updated      {d['updated_at']}\n")
    w(f"sources ({len(d['sources'])}):\n")
    for s in d["sources"]:
        w(f"  {s['source']:24} {s['source_key']}\n")
        seen = f"first seen {s['first_seen_at']}, last seen {s['last_seen_at']}"
        w(f"  {'':24} {seen}, DOI {s['doi'] or '-'}\n")
    w(f"topics ({len(d['topics'])}):\n")
    for t in d["topics"]:
        w(f"  {t['label']:24} {t['score']:.2f}  {'; '.join(map(str, t.get('evidence', [])))}\n")
    w(f"updates ({len(d['updates'])}):\n")
    for u in d["updates"]:
        num = f"update #{u['update_no']}" if u["update_no"] else "part of the paper when first seen"
        w(f"  {u['kind']:24} {u['notice_key']}  detected {u['detected_at']}  ({num})\n")


def _store(args: argparse.Namespace) -> int:
    from lupus_alerts.dedupe import upsert_papers
    from lupus_alerts.models import Paper

    try:
        fh = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")  # noqa: SIM115
    except OSError as e:
        print(f"error: cannot read {args.file}: {e.strerror or e}", file=sys.stderr)
        return 1
    papers: list[Paper] = []
    with fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                papers.append(Paper.from_dict(json.loads(line)))
            except (ValueError, TypeError, KeyError) as e:
                print(f"error: {args.file}:{n}: not a paper-schema object: {e}", file=sys.stderr)
                return 1
    stats = upsert_papers(_engine(args), papers)
    print(
        f"{len(papers)} records: {stats.new} new papers, {stats.updated} updated, "
        f"{stats.unchanged} unchanged, {stats.merged} merged away, {stats.notices_new} new notices"
    )
    return 0


def _topics(conn: Any, ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """Topic rows with the classifier's evidence for them, per paper."""
    import sqlalchemy as sa

    from lupus_alerts import store

    P, T = store.papers, store.paper_topics
    out: dict[int, list[dict[str, Any]]] = {}
    if not ids:
        return out
    evidence: dict[tuple[int, str], list[str]] = {}
    for pid, classification in conn.execute(sa.select(P.c.id, P.c.classification).where(P.c.id.in_(ids))):
        for t in (classification or {}).get("topics", []):
            evidence[(pid, t["label"])] = list(t.get("evidence", []))
    q = sa.select(T.c.paper_id, T.c.label, T.c.score).where(T.c.paper_id.in_(ids)).order_by(T.c.score.desc())
    for pid, label, score in conn.execute(q):
        out.setdefault(pid, []).append(
            {"label": label, "score": score, "evidence": evidence.get((pid, label), [])}
        )
    return out


def _summary(r: Any, topics: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": r.id,
        "announce_no": r.announce_no,
        "doi": r.doi,
        "pmid": r.pmid,
        "title": r.title,
        "journal": r.journal,
        "pub_date": _iso(r.pub_date),
        "first_seen_at": _iso(r.first_seen_at),
        "is_lupus": r.is_lupus,
        "is_retracted": r.is_retracted,
        "topics": topics,
    }


def _iso(v: date | datetime | None) -> str | None:
    return v.isoformat() if v else None


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
