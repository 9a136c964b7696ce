"""What `make demo` prints at the end: per source, new papers per topic, digests, failures."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

# -- summary -----------------------------------------------------------------------------------


def summarize(config_path: Path, ingest: Mapping[str, Any], digest: Mapping[str, Any]) -> str:
    """What the two runs did, from the store: per source, new, per topic, digests, failures."""
    import sqlalchemy as sa

    from lupus_alerts import pipeline, store

    settings = pipeline.load_settings(config_path)
    engine = pipeline.open_store(settings)
    records = pipeline.run_records(engine, ingest["run_id"])
    announce = next((r["stats"] for r in records if r["source"] == pipeline.ANNOUNCE_SOURCE), {}) or {}
    lines = [f"lupus_ingest {ingest['run_id']}: {ingest['state']}"]
    for r in records:
        if r["source"] == pipeline.ANNOUNCE_SOURCE:
            continue
        s = r["stats"] or {}
        if r["error"]:
            lines.append(f"  {r['source']:<34} FAILED: {r['error']}")
        elif r["source"] == pipeline.PUBMED_SOURCE:
            lines.append(
                f"  {r['source']:<34} fetched {s.get('fetched', 0):>4}, new {s.get('new', 0)}, "
                f"already known from a feed {s.get('updated', 0)}"
            )
        else:
            lines.append(
                f"  {r['source']:<34} items {s.get('items', 0):>4}, kept {s.get('kept', 0)}, "
                f"new {s.get('new', 0)}, already known from another source {s.get('updated', 0)}"
            )
    with engine.connect() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(store.papers)).scalar()
        lupus = conn.execute(
            sa.select(sa.func.count()).select_from(store.papers).where(store.papers.c.is_lupus.is_(True))
        ).scalar()
        multi = conn.execute(
            sa.select(sa.func.count()).select_from(
                sa.select(store.paper_sources.c.paper_id)
                .group_by(store.paper_sources.c.paper_id)
                .having(sa.func.count() > 1)
                .subquery()
            )
        ).scalar()
        ledger = conn.execute(
            sa.select(store.deliveries.c.state, sa.func.count()).group_by(store.deliveries.c.state)
        ).all()
    lines.append(
        f"  papers in store {total}; about lupus {lupus}; found in more than one source "
        f"(deduplicated) {multi}"
    )
    lines.append(f"  new lupus papers announced {announce.get('new_papers', 0)}")
    for label, n in sorted((announce.get("per_topic") or {}).items(), key=lambda kv: -kv[1]):
        lines.append(f"    {label:<20} {n}")
    lines.append(f"lupus_digest {digest['run_id']}: {digest['state']}")
    lines.append("  ledger: " + (", ".join(f"{state} {n}" for state, n in sorted(ledger)) or "empty"))
    failing = [r for r in pipeline.feed_health(engine, settings) if r["status"] == "failing"]
    failed_tasks = {t: s for run in (ingest, digest) for t, s in run["tasks"].items() if "failed" in s}
    lines.append("failures:")
    for r in failing:
        lines.append(
            f"  feed {r['feed_id']}: {r['last_error']} ({r['failed_runs_in_a_row']} failed runs in a row)"
        )
    for task_id, states in failed_tasks.items():
        lines.append(f"  task {task_id}: {states.count('failed')} of {len(states)} failed (red in the UI)")
    if not failing and not failed_tasks:
        lines.append("  none")
    outbox = settings.mail.outbox_dir
    if settings.mail.mode == "outbox":
        n = len(list(Path(outbox).glob("*.eml"))) if Path(outbox).exists() else 0
        lines.append(f"digests written: {n} message(s) in {outbox}")
        lines.append(f"  open {Path(outbox) / 'index.html'} for the HTML previews")
    return "\n".join(lines)
