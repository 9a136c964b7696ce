"""Operator pages in the Airflow UI: the health of every journal feed and the last ingest runs.

A FastAPI app mounted on Airflow's API server at `/lupus-ops/` (`fastapi_apps`), linked from the
UI's Browse menu (`external_views`, shown in an iframe). Plugin apps are not authenticated by
Airflow, so every route requires a logged-in Airflow user (`requires_authenticated()`: the UI's
session cookie or a bearer token). These are the only pages the project adds to Airflow: the
public unsubscribe and preferences app is its own service (`lupus-alerts web serve`, the
`lupus-alerts-web` service in docker-compose.yaml), so Airflow's API server never faces the internet.
"""

from __future__ import annotations

from html import escape
from typing import Any, ClassVar

from airflow.api_fastapi.core_api.security import requires_authenticated
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI
from fastapi.responses import HTMLResponse

URL_PREFIX = "/lupus-ops"
RECENT_RUNS = 10
# Kept in a module variable so tests can override exactly this dependency.
REQUIRE_LOGIN = requires_authenticated()

app = FastAPI(
    title="Lupus Alerts operations",
    description="Feed health and recent ingest runs (read-only).",
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


class LupusAlertsOpsPlugin(AirflowPlugin):
    """Registers the operations app and its link in the UI."""

    name = "lupus_alerts_ops"
    fastapi_apps: ClassVar[list[dict[str, Any]]] = [
        {"app": app, "url_prefix": URL_PREFIX, "name": "Lupus feed health"}
    ]
    external_views: ClassVar[list[dict[str, str]]] = [
        {
            "name": "Lupus feed health",
            "href": f"{URL_PREFIX}/",
            "url_route": "lupus-feed-health",
            "destination": "nav",
            "category": "browse",
        }
    ]
