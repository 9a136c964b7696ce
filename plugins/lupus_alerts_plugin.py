"""Airflow plugin: serves lupus-alerts' unsubscribe and preferences pages on the API server.

Mounted at `/lupus-alerts` (so `digest.public_base_url` is `https://<airflow host>/lupus-alerts`).
Airflow does not authenticate plugin apps; these endpoints are public by design and guarded by
the signed token in each link (see docs/delivery.md). Importing this file opens nothing: the
app loads the configuration and the store on its first request.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from lupus_alerts.web import app as lupus_alerts_web_app


class LupusAlertsPlugin(AirflowPlugin):
    name = "lupus_alerts"
    fastapi_apps = [  # noqa: RUF012 - the attribute Airflow reads
        {
            "app": lupus_alerts_web_app,
            "url_prefix": "/lupus-alerts",
            "name": "Lupus Alerts: unsubscribe and preferences",
        }
    ]
