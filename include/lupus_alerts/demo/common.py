"""What the demo's parts share: where things are, the sample feeds and subscribers, its errors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# include/lupus_alerts/demo/common.py -> the repository, and the package's data
REPO = Path(__file__).resolve().parents[3]
DEMO_DATA = Path(__file__).resolve().parents[1] / "data" / "demo"
DAG_IDS = ("lupus_ingest", "lupus_digest")
NCBI_POOL_SLOTS = 3  # NCBI allows 3 requests/s without an API key: one slot per request stream
DEMO_SECRET_FILE = "link-secret"  # in the demo folder: the demo's own link-signing secret
DEMO_OPERATOR_EMAIL = "operators@demo.example.org"
ALERT_SENDER_VAR_ENV = "AIRFLOW_VAR_LUPUS_ALERTS_ALERT_SENDER"
# Journal feeds served by the demo: (feed id, journal name, publisher, file, all_lupus).
DEMO_FEEDS = (
    ("lupus", "Lupus", "SAGE", "feed_lupus.rss.xml", True),
    ("lupus-science-medicine", "Lupus Science & Medicine", "BMJ", "feed_lsm.rdf.xml", True),
    ("arthritis-rheumatology", "Arthritis & Rheumatology", "Wiley", "feed_ar.rss.xml", False),
)
# `make up` serves the public web app here, as its own process (docker-compose.yaml: the
# lupus-alerts-web service), so the links in the demo's digests work while it runs.
DEMO_WEB_PORT = 8085
DEMO_PUBLIC_BASE_URL = f"http://localhost:{DEMO_WEB_PORT}"
UP_SCHEDULE = {"ingest_cron": "0 5 * * *", "digest_fallback_cron": "59 23 * * *"}
MOVED_FEED = ("annals-rheumatic-diseases", "Annals of the Rheumatic Diseases", "BMJ")
DEMO_SUBSCRIBERS = (
    {"email": "nephrologist@demo.example.org", "name": "Dr Ada Nephro", "topics": ["nephrology"]},
    {"email": "dermatologist@demo.example.org", "name": "Dr Ben Derm", "topics": ["dermatology"]},
    {"email": "rheumatologist@demo.example.org", "name": "Dr Cleo Rheum", "topics": None},
    # weekly, on the demo day's weekday, so the weekly path is shown too
    {"email": "obstetric-med@demo.example.org", "name": "Dr Dev Obs", "topics": ["pregnancy", "pediatrics"]},
)


class DemoError(Exception):
    """The demo could not run (a DAG run failed, Airflow could not start, ...)."""


class LiveModeRefused(DemoError):
    """A live run would have used a demo or placeholder value; `problems` says which, and how to fix it."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


@dataclass(frozen=True)
class CaughtMail:
    """One message the local SMTP catcher accepted."""

    mail_from: str
    rcpt_tos: list[str]
    content: bytes


@dataclass
class DemoServers:
    """The sample servers a demo run points at."""

    eutils_url: str
    feed_urls: dict[str, str]
    operator_smtp_port: int
    mail: list[CaughtMail] = field(default_factory=list)  # everything sent to the SMTP catcher
    eutils: Any = None  # the EutilsReplay
    feed_server: Any = None  # the ReplayServer serving the feeds (tests add items to it)
