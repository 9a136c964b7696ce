"""Operator pages in the Airflow UI: each run's story, a dashboard, and the journal feeds' health.

A FastAPI app mounted on Airflow's API server at `/lupus-ops/` (`fastapi_apps`), shown by the UI
in an iframe (`external_views`): a "Lupus run" tab on every DAG run's page (`destination:
"dag_run"`, the href templated with `{DAG_ID}` and `{RUN_ID}`), and "Lupus dashboard" and
"Lupus feed health" in the Browse menu. What the pages show is computed and rendered by
`lupus_alerts.ops_views` (tested without Airflow); this file only routes. Plugin apps are not authenticated by
Airflow, so every route requires a logged-in Airflow user (`requires_authenticated()`: the UI's
session cookie or a bearer token). These are the only pages the project adds to Airflow: the
public unsubscribe and preferences app is its own service (`lupus-alerts web serve`, the
`lupus-alerts-web` service in docker-compose.yaml), so Airflow's API server never faces the internet.
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Any, ClassVar

from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import requires_authenticated
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import HTMLResponse

URL_PREFIX = "/lupus-ops"
RECENT_RUNS = 10
# Kept in a module variable so tests can override exactly this dependency.
REQUIRE_LOGIN = requires_authenticated()

app = FastAPI(
    title="Lupus Alerts operations",
    description="Each run's story, the 30-day dashboard, feed health and recent ingest runs (read-only).",
    dependencies=[Depends(REQUIRE_LOGIN)],
)


def health_data() -> dict[str, Any]:
    """Feeds (configured, with their stored state) and the most recent ingest runs, or the error."""
    from lupus_alerts import pipeline
    from lupus_alerts.config import ConfigError

    try:
        settings = pipeline.load_settings(None)
        engine = pipeline.open_store(settings)
    except ConfigError as e:
        return {"error": str(e), "feeds": [], "runs": []}
    return {
        "error": None,
        "feeds": pipeline.feed_health(engine, settings),
        "runs": pipeline.recent_runs(engine, RECENT_RUNS),
    }


@app.get("/api/health")
def health_json() -> dict[str, Any]:
    """The same data as the page, as JSON (for monitoring)."""
    return health_data()


@app.get("/", response_class=HTMLResponse)
def health_page() -> str:
    """Feed health and recent runs as a small HTML page."""
    data = health_data()
    if data["error"]:
        return _page(f"<p class='bad'>Configuration problem: {escape(data['error'])}</p>")
    feed_rows = "".join(
        "<tr class='{cls}'><td>{name}<br><small>{fid}</small></td><td>{status}</td><td>{success}</td>"
        "<td>{polled}</td><td>{http}</td><td>{items}</td><td>{fails}</td><td>{error}</td></tr>".format(
            cls="bad" if f["status"] == "failing" else "",
            name=escape(f["name"]),
            fid=escape(f["feed_id"]),
            status=escape(f["status"]),
            success=escape(f["last_success_at"] or "never"),
            polled=escape(f["last_polled_at"] or "never"),
            http=escape(str(f["http_status"] or "")),
            items=escape(str(f["items_last"] if f["items_last"] is not None else "")),
            fails=f["failed_runs_in_a_row"],
            error=escape(f["last_error"] or f["last_warning"] or ""),
        )
        for f in data["feeds"]
    )
    run_rows = "".join(
        "<tr class='{cls}'><td>{rid}</td><td>{fin}</td><td>{new}</td><td>{failed}</td></tr>".format(
            cls="bad" if r["failed"] else "",
            rid=escape(r["run_id"]),
            fin=escape(r["finished_at"] or ""),
            # one figure per attempt: a cleared and rerun run keeps the first attempt's count
            new=escape(" then ".join(str(n) for n in r["new_papers"]) or "-"),
            failed=escape(", ".join(r["failed"]) or "none"),
        )
        for r in data["runs"]
    )
    body = (
        "<h1>Journal feeds</h1><table><tr><th>feed</th><th>status</th><th>last success</th>"
        "<th>last polled</th><th>HTTP</th><th>items</th><th>failed runs in a row</th><th>last error</th></tr>"
        f"{feed_rows}</table><h1>Recent ingest runs</h1><table><tr><th>run</th><th>finished</th>"
        f"<th>new papers (each attempt)</th><th>failed sources</th></tr>{run_rows}</table>"
        "<p><small>A failing feed: check its URL in lupus-alerts.yaml and the log of its "
        "<code>lupus_ingest.poll_feed</code> task. Runbook: docs/operations.md.</small></p>"
    )
    return _page(body)


def _page(body: str) -> str:
    style = (
        "body{font-family:system-ui,sans-serif;margin:1.5em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}"
        "tr.bad td{background:#fde8e8}p.bad{color:#a00}h1{font-size:1.2em}"
    )
    head = f"<meta charset='utf-8'><title>Lupus feed health</title><style>{style}</style>"
    return f"<!doctype html><html><head>{head}</head><body>{body}</body></html>"


# -- the "Lupus run" tab and the dashboard (lupus_alerts.ops_views) -----------------------------


def dag_run_dates(dag_id: str, run_id: str, session: SessionDep) -> dict[str, datetime | None] | None:
    """The run's logical date and run_after from Airflow's metadata (a digest run's day), or None.

    The API server, unlike a task, may read Airflow's own database.
    """
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    row = session.execute(
        select(DagRun.logical_date, DagRun.run_after).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)
    ).first()
    return None if row is None else {"logical_date": row[0], "run_after": row[1]}


def _store() -> tuple[Any, Any]:
    from lupus_alerts import pipeline
    from lupus_alerts.config import ConfigError

    try:
        settings = pipeline.load_settings(None)
        return settings, pipeline.open_store(settings)
    except ConfigError as e:
        raise HTTPException(status_code=503, detail=f"configuration problem: {e}") from e


def run_view(dag_id: str, run_id: str, dates: dict[str, datetime | None] | None) -> tuple[str, Any]:
    """("ingest" | "digest", the view) for a run of one of the project's DAGs; 404 otherwise."""
    from lupus_alerts import ops_views, pipeline

    kind = ops_views.run_kind(dag_id)
    if kind is None:
        raise HTTPException(status_code=404, detail=f"{dag_id} is not a lupus-alerts DAG")
    settings, engine = _store()
    if kind == "ingest":
        names = {f.id: f.name for f in settings.feeds}
        topics = ops_views.topic_names(str(settings.taxonomy) if settings.taxonomy else None)
        return kind, ops_views.ingest_run_view(engine, run_id, feed_names=names, topic_names=topics)
    if dates is None:
        raise HTTPException(status_code=404, detail=f"no run {run_id} of {dag_id}")
    day = pipeline.digest_day(dates["logical_date"], dates["run_after"], settings)
    return kind, ops_views.digest_run_view(engine, run_id, day)


@app.get("/api/run")
def run_json(dag_id: str, run_id: str, dates: Any = Depends(dag_run_dates)) -> dict[str, Any]:
    """What one run did, as JSON: the "Lupus run" tab's data."""
    kind, view = run_view(dag_id, run_id, dates)
    return {"dag_id": dag_id, "kind": kind, **view.to_dict()}


@app.get("/run", response_class=HTMLResponse)
def run_page(dag_id: str, run_id: str, dates: Any = Depends(dag_run_dates)) -> str:
    """The "Lupus run" tab of a DAG run's page."""
    from lupus_alerts import ops_views

    try:
        kind, view = run_view(dag_id, run_id, dates)
    except HTTPException as e:
        if e.status_code == 503:
            raise
        # The tab shows on every DAG's runs: say plainly why there is nothing here.
        return ops_views.render_message("Lupus run", str(e.detail), base=URL_PREFIX)
    if kind == "ingest":
        return ops_views.render_ingest_run(view, dag_id=dag_id, base=URL_PREFIX)
    return ops_views.render_digest_run(view, dag_id=dag_id, base=URL_PREFIX)


def dashboard_data() -> Any:
    from lupus_alerts import ops_views, store

    settings, engine = _store()
    topics = ops_views.topic_names(str(settings.taxonomy) if settings.taxonomy else None)
    return ops_views.dashboard_view(engine, settings, now=store.utcnow(), topic_names=topics), topics


@app.get("/api/dashboard")
def dashboard_json() -> dict[str, Any]:
    """The dashboard's series as JSON (for monitoring)."""
    view, _ = dashboard_data()
    return view.to_dict()


@app.get("/dashboard", response_class=HTMLResponse)
def dashboard_page() -> str:
    """Papers, topics, digests and feed freshness over the last 30 days, as inline SVG charts."""
    from lupus_alerts import ops_views

    view, topics = dashboard_data()
    return ops_views.render_dashboard(view, topic_names=topics, base=URL_PREFIX)


class LupusAlertsOpsPlugin(AirflowPlugin):
    """Registers the operations app and its link in the UI."""

    name = "lupus_alerts_ops"
    fastapi_apps: ClassVar[list[dict[str, Any]]] = [
        {"app": app, "url_prefix": URL_PREFIX, "name": "Lupus feed health"}
    ]
    external_views: ClassVar[list[dict[str, str]]] = [
        {
            # A tab on every DAG run's page; the UI fills in (URL-encoded) {DAG_ID} and {RUN_ID}.
            "name": "Lupus run",
            "href": f"{URL_PREFIX}/run?dag_id={{DAG_ID}}&run_id={{RUN_ID}}",
            "url_route": "lupus-run",
            "destination": "dag_run",
        },
        {
            "name": "Lupus dashboard",
            "href": f"{URL_PREFIX}/dashboard",
            "url_route": "lupus-dashboard",
            "destination": "nav",
            "category": "browse",
        },
        {
            "name": "Lupus feed health",
            "href": f"{URL_PREFIX}/",
            "url_route": "lupus-feed-health",
            "destination": "nav",
            "category": "browse",
        },
    ]
