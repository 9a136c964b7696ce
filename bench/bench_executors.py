"""Scale-out benchmark: the real DAGs on Airflow's LocalExecutor versus the CeleryExecutor with two
workers, side by side in one run, on this machine.

`python -m bench.bench_executors [--subscribers N] [--feeds N] [--items N] [--celery-workers 2 3]`
(`make bench-scale`, about 15 minutes; not part of `make bench`: it starts three whole Airflow
deployments, the LocalExecutor's and the CeleryExecutor's with two and with three workers).

Each deployment is `lupus_alerts.cluster.Cluster`: docker-compose.yaml's settings as local
processes (api-server, scheduler, dag-processor, triggerer, and for Celery the workers), on
PostgreSQL (fresh metadata and store databases) and Redis. The same total task slots either way
(--slots, default 8: the LocalExecutor's parallelism, or 4 per Celery worker x 2). In each:

1. **digest**: the store seeded as bench.bench_digest seeds it (10,000 subscribers, 60 new papers,
   the same random seed), then a manual `lupus_digest` run: `plan_digests`, one mapped
   `send_digests` task per 200 subscribers, `report_digests`, to an aiosmtpd sink in its own
   process that counts what it accepts.
2. **ingest**: a manual `lupus_ingest` run over 50 synthetic feeds of 100 items (one mapped
   `poll_feed` each) and the E-utilities replay of the demo corpus (`lupus_digest` paused, so the
   asset event starts nothing).

Reported per run (from Airflow's own task-instance records): wall time (the DAG run's start to
end), messages/s, the sum of the tasks' run times, and the scheduling overhead per task: the
hand-off between dependent tasks (the last upstream task's end to the next task's start: the
scheduler noticing, queueing, the executor's hop, the task process starting), the run time of a
task that does next to nothing (Airflow's cost inside a task: the process, parsing the DAG file,
the API calls), and the medians from `scheduled` to `queued` and from `queued` to `running`
(which include waiting for a free slot: 47-56 tasks share 8 slots).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from bench.report import write_section
from lupus_alerts import cluster

RUN_TIMEOUT_S = 1800
# Tasks that do next to nothing (read the config, pass a list on): their run time is Airflow's own
# cost of starting a task (the task process, parsing the DAG file, the API calls).
TRIVIAL_TASKS = {"chunks", "list_feeds"}


def _parse(ts: str | None) -> datetime | None:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")) if ts else None


def task_figures(tis: list[dict[str, Any]], upstream: dict[str, list[str]]) -> dict[str, Any]:
    """Per-task timings from the API's task instances (each run's last try).

    `handoffs`: for each unmapped task with upstream tasks, the time from the last upstream task
    instance's end to its start: what Airflow adds between one step and the next (the scheduler
    noticing, queueing, the executor's hop, the task process starting). Mapped instances are left
    out, as they may also wait for a free slot.
    """
    ends: dict[str, list[datetime]] = {}
    for ti in tis:
        if end := _parse(ti.get("end_date")):
            ends.setdefault(ti["task_id"], []).append(end)
    handoffs = []
    for ti in tis:
        ups = upstream.get(ti["task_id"]) or []
        start = _parse(ti.get("start_date"))
        if ti["map_index"] == -1 and ups and start and all(u in ends for u in ups):
            handoffs.append((start - max(max(ends[u]) for u in ups)).total_seconds())
    hop, wait, run, trivial = [], [], [], []
    hosts: dict[str, int] = {}
    for ti in tis:
        sched, queued = _parse(ti.get("scheduled_when")), _parse(ti.get("queued_when"))
        start, end = _parse(ti.get("start_date")), _parse(ti.get("end_date"))
        if queued and start:
            hop.append((start - queued).total_seconds())
        if sched and queued:
            wait.append((queued - sched).total_seconds())
        if start and end:
            run.append((end - start).total_seconds())
            if ti["task_id"] in TRIVIAL_TASKS:
                trivial.append((end - start).total_seconds())
        hosts[ti.get("hostname") or "?"] = hosts.get(ti.get("hostname") or "?", 0) + 1
    return {
        "tasks": len(tis),
        "handoffs": handoffs,
        "hop_median": statistics.median(hop) if hop else float("nan"),
        "hop_mean": statistics.fmean(hop) if hop else float("nan"),
        "wait_median": statistics.median(wait) if wait else float("nan"),
        "run_sum": sum(run),
        "run_median": statistics.median(run) if run else float("nan"),
        "trivial": statistics.median(trivial) if trivial else float("nan"),
        "hosts": hosts,
        "states": sorted({ti["state"] for ti in tis}),
    }


def run_once(api: cluster.Api, c: cluster.Cluster, dag_id: str) -> dict[str, Any]:
    t0 = time.monotonic()
    run_id = api.trigger(dag_id)

    def done() -> dict[str, Any] | None:
        run = api.dag_run(dag_id, run_id)
        return run if run["state"] in ("success", "failed") else None

    run = c.wait_for(f"{dag_id} {run_id}", done, RUN_TIMEOUT_S, interval=0.5)
    polled = time.monotonic() - t0
    start, end = _parse(run["start_date"]), _parse(run["end_date"])
    assert start and end
    tasks = api.json(f"/api/v2/dags/{dag_id}/tasks")["tasks"]
    upstream: dict[str, list[str]] = {}
    for task in tasks:
        for down in task.get("downstream_task_ids") or []:
            upstream.setdefault(down, []).append(task["task_id"])
    figures = task_figures(api.task_instances(dag_id, run_id), upstream)
    return {"state": run["state"], "wall": (end - start).total_seconds(), "polled": polled, **figures}


def deployment(label: str, executor: str, workers: int, args: argparse.Namespace) -> dict[str, Any]:
    """One deployment: start it, run the digest and the ingest, stop it; the figures."""
    from bench.bench_digest import _sink_main, seed
    from lupus_alerts import store
    from lupus_alerts.demo import demo_corpus
    from lupus_alerts.testing.eutils_replay import EutilsReplay
    from lupus_alerts.testing.feeds_replay import make_feed, serve_feed
    from lupus_alerts.testing.replay import ReplayServer

    root = Path(tempfile.mkdtemp(prefix=f"bench-executors-{label}-"))
    ctx = mp.get_context("spawn")
    ready, stop, counts = ctx.Event(), ctx.Event(), ctx.Array("d", 4)
    port = cluster.free_port()
    sink = ctx.Process(target=_sink_main, args=(port, ready, stop, counts), daemon=True)
    sink.start()
    if not ready.wait(30):
        raise RuntimeError("SMTP sink did not start")
    names = [f"worker-{chr(ord('a') + i)}" for i in range(workers)]
    # A Celery worker has half the slots, so two match the LocalExecutor; a third adds its own.
    slots_per_worker = args.slots // 2
    try:
        with EutilsReplay(demo_corpus(datetime.now(UTC).date())) as eutils, ReplayServer() as feeds:
            urls = [
                serve_feed(
                    feeds, f"/feeds/{i:03d}.xml", make_feed(args.items, feed_no=i, journal=f"Journal {i}")
                )
                for i in range(args.feeds)
            ]
            c = cluster.Cluster(
                root,
                config_path=root / "lupus-alerts.yaml",
                smtp_port=port,
                workers=names,
                executor=executor,
                slots_per_worker=slots_per_worker,
                web=False,
            )
            config = {
                "store_url": c.store_url,
                "pubmed": {"base_url": eutils.base_url, "timeout_s": 30},
                "feeds": [
                    {"id": f"bench-{i:03d}", "name": f"Journal {i}", "publisher": "bench", "url": u}
                    | {"all_lupus": i % 2 == 0}
                    for i, u in enumerate(urls)
                ],
                "feed_settings": {"timeout_s": 30},
                "digest": {"public_base_url": "https://alerts.bench.example.org"},
                "mail": {"mode": "smtp", "rate_per_second": 1_000_000},
                "schedule": {"ingest_cron": "0 5 1 1 *", "digest_fallback_cron": "0 9 1 1 *"},
            }
            (root / "lupus-alerts.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
            t0 = time.monotonic()
            with c:
                started = time.monotonic() - t0
                api = c.api
                assert api is not None
                for dag_id in ("lupus_digest", "lupus_ingest"):
                    c.wait_for(f"{dag_id} parsed", lambda d=dag_id: api.get(f"/api/v2/dags/{d}").ok, 300)
                # Unpausing starts the fallback digest of 1 January; let it finish on the empty store.
                assert api.patch("/api/v2/dags/lupus_digest", {"is_paused": False}).ok

                def fallback_done() -> bool:
                    runs = api.dag_runs("lupus_digest")
                    return bool(runs) and all(r["state"] in ("success", "failed") for r in runs)

                c.wait_for("the fallback digest run", fallback_done, 300)
                import random

                engine = store.make_engine(c.store_url)
                seed(engine, args.subscribers, args.papers, random.Random(20261127))
                engine.dispose()
                before = int(counts[0])
                digest = run_once(api, c, "lupus_digest")
                digest["received"] = int(counts[0]) - before
                digest["rate"] = digest["received"] / digest["wall"]
                assert api.patch("/api/v2/dags/lupus_digest", {"is_paused": True}).ok
                assert api.patch("/api/v2/dags/lupus_ingest", {"is_paused": False}).ok
                ingest = run_once(api, c, "lupus_ingest")
                with store.make_engine(c.store_url).connect() as conn:
                    import sqlalchemy as sa

                    ingest["papers"] = conn.execute(
                        sa.select(sa.func.count()).select_from(store.papers)
                    ).scalar()
            forced, leftovers = c.forced_at_stop, c.leftovers_at_stop
    finally:
        stop.set()
        sink.join(10)
    result = {
        "label": label,
        "executor": executor,
        "workers": workers,
        "slots": slots_per_worker * workers if workers else args.slots,
        "start_s": started,
        "digest": digest,
        "ingest": ingest,
        "leftovers": leftovers,
        "forced": forced,
        "load": os.getloadavg()[0],
    }
    print(json.dumps(result, default=str), flush=True)
    return result


def _row(r: dict[str, Any], key: str) -> str:
    d = r[key]
    hosts = ", ".join(f"{n}" for n in sorted(d["hosts"].values(), reverse=True))
    extra = (
        f"{d['received']:,} messages, **{d['rate']:.0f} messages/s**"
        if key == "digest"
        else f"{d['papers']:,} papers stored"
    )
    handoffs = ", ".join(f"{h:.1f}" for h in d["handoffs"])
    return (
        f"| {key} | {r['label']} | {d['state']} | **{d['wall']:.1f} s** | {extra} | {d['tasks']} "
        f"({hosts}) | {d['run_sum']:.0f} s | **{statistics.median(d['handoffs']):.2f} s** ({handoffs}) | "
        f"{d['trivial']:.2f} s | {d['hop_median']:.2f} s | {d['wait_median']:.2f} s |"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subscribers", type=int, default=10_000)
    ap.add_argument("--papers", type=int, default=60)
    ap.add_argument("--feeds", type=int, default=50)
    ap.add_argument("--items", type=int, default=100)
    ap.add_argument("--slots", type=int, default=8, help="task slots in all (LocalExecutor parallelism)")
    ap.add_argument(
        "--celery-workers",
        type=int,
        nargs="+",
        default=[2, 3],
        help="Celery runs to make, by number of workers (default: 2 3)",
    )
    ap.add_argument("--no-write", action="store_true", help="print only, leave docs/benchmarks.md alone")
    args = ap.parse_args(argv)
    reason = cluster.unavailable_reason()
    if reason:
        print(f"cannot run: {reason}")
        return 1
    runs = [deployment("LocalExecutor", "LocalExecutor", 0, args)]
    for n in args.celery_workers:
        runs.append(deployment(f"Celery, {n} workers", "CeleryExecutor", n, args))
    ok = all(r["digest"]["state"] == r["ingest"]["state"] == "success" for r in runs)
    ok = ok and all(not r["leftovers"] for r in runs)
    for r in runs:
        print(_row(r, "digest"))
        print(_row(r, "ingest"))
    if not args.no_write:
        write_doc(args, runs)
    return 0 if ok else 1


def write_doc(args: argparse.Namespace, runs: list[dict[str, Any]]) -> None:
    head = (
        "| DAG | executor | state | wall (run start to end) | throughput | tasks (per host) | "
        "sum of task run times | hand-off between dependent tasks, median (each) | "
        "a do-nothing task's run time | queued -> running, median | scheduled -> queued, median |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|"
    )
    rows = "\n".join(_row(r, k) for k in ("digest", "ingest") for r in runs)
    starts = ", ".join(f"{r['label']} {r['start_s']:.0f} s" for r in runs)
    loads = ", ".join(f"{r['label']} {r['load']:.1f}" for r in runs)
    body = f"""
{args.subscribers:,} subscribers and {args.papers} new papers for the digest (seeded as in the digest
benchmark); {args.feeds} feeds x {args.items} items plus the E-utilities replay of the demo corpus for
the ingest. Each deployment is docker-compose.yaml's configuration as local processes
(`lupus_alerts.cluster`), PostgreSQL store and metadata, {args.slots} task slots in all (the
LocalExecutor's parallelism, or {args.slots // 2} per Celery worker; a third worker adds its own),
an aiosmtpd sink in its own process. Start-up to ready (databases, migrations, every component
healthy): {starts}. 1-minute load average at each deployment's end: {loads}, on 2 CPUs shared with
other work.

{head}
{rows}
"""
    write_section(
        "executors", "Scale-out: LocalExecutor versus CeleryExecutor (issue 16)", body, _command(args)
    )


def _command(args: argparse.Namespace) -> str:
    if args.celery_workers == [2, 3] and (args.subscribers, args.feeds, args.items) == (10_000, 50, 100):
        return "make bench-scale"
    workers = " ".join(map(str, args.celery_workers))
    return (
        f"python -m bench.bench_executors --subscribers {args.subscribers} --feeds {args.feeds} "
        f"--items {args.items} --celery-workers {workers}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
