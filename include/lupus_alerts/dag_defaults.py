"""What both DAGs share: the operators' failure alert and the task defaults.

Imported by the DAG files only (it imports Airflow's SMTP provider); nothing here touches the
network or the store, so DAG parsing stays fast.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from typing import Any

from airflow.providers.smtp.notifications.smtp import SmtpNotifier

PAPERS_ASSET_URI = "lupus_alerts://papers"


def retry_delay() -> timedelta:
    """The first retry's delay; tests and the demo shorten it with LUPUS_ALERTS_RETRY_DELAY_S."""
    return timedelta(seconds=float(os.environ.get("LUPUS_ALERTS_RETRY_DELAY_S", "120")))


log = logging.getLogger(__name__)


class OperatorAlert(SmtpNotifier):
    """SmtpNotifier that also says in the failed task's log that the alert went out, and to
    whom: an operator reading the red task's log knows who was told (issue 14, defect 5)."""

    def notify(self, context: Any) -> None:
        super().notify(context)
        log.warning(
            "operator alert emailed to %s (SMTP connection %r): %s", self.to, self.smtp_conn_id, self.subject
        )


def operator_alert() -> SmtpNotifier:
    """A task-level failure email to the operators (Variable `lupus_alerts_operator_email`).

    Task-level, because a DAG-level notifier fails under `dags test` in Airflow 3.3
    (apache/airflow#64649).
    """
    return OperatorAlert(
        to="{{ var.value.get('lupus_alerts_operator_email', 'ops@lupus-alerts.example.org') }}",
        from_email="{{ var.value.get('lupus_alerts_alert_sender', 'airflow@lupus-alerts.example.org') }}",
        subject="[lupus-alerts] {{ ti.dag_id }}.{{ ti.task_id }} failed ({{ run_id }})",
        html_content=(
            "<p>Task <b>{{ ti.dag_id }}.{{ ti.task_id }}</b> (map index {{ ti.map_index }}) failed "
            "in run {{ run_id }}, try {{ ti.try_number }}.</p><p>{{ exception }}</p>"
            "<p>Runbook: docs/operations.md; log: {{ ti.log_url }}</p>"
        ),
        smtp_conn_id="smtp_default",
    )


def default_args(*, retries: int, execution_timeout: timedelta) -> dict[str, Any]:
    """Owner, retries with exponential back-off, a timeout and the failure alert, for every task."""
    return {
        "owner": "lupus-alerts",
        "retries": retries,
        "retry_delay": retry_delay(),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=30),
        "execution_timeout": execution_timeout,
        "on_failure_callback": [operator_alert()],
    }
