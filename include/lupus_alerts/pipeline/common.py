"""What every task shares: settings, the store, the run window, the pipeline's errors and names."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, is_dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lupus_alerts.config import ScheduleSettings, Settings, load_config

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)


# Source names in store.ingest_runs besides "pubmed" and "feed:<id>".
ANNOUNCE_SOURCE = "announce"
PUBMED_SOURCE = "pubmed"
# The watermark a manual (or asset-triggered) ingest run starts from when it has no data interval.
RUN_WATERMARK = "ingest_run_end"
# Subscribers per mapped send task: enough to amortise a task's start-up, few enough that a
# retry of one chunk repeats little (the ledger makes a repeat harmless anyway).
# Subscribers per mapped send task: large enough that task start-up is amortised, small enough
# that a retried chunk (the ledger skips what was sent) and the XCom of chunk lists stay small.
DIGEST_CHUNK_SIZE = 200


class PipelineError(Exception):
    """A pipeline step failed in a way the operator must see (the task goes red)."""


class FeedPollFailed(PipelineError):
    """A journal feed could not be polled; its state (error, failures) is already recorded."""


class DigestSendFailed(PipelineError):
    """Some digests in a chunk failed to send; the ledger knows which, a retry resends only those."""


@dataclass(frozen=True, slots=True)
class RunWindow:
    """The half-open time window [start, end) an ingest run covers (naive UTC).

    `origin` says where its start came from: "data_interval" (scheduled runs), "watermark"
    (manual and asset-triggered runs, which have no data interval in Airflow 3: the end of the
    last run, or for one source the end of the last run in which it succeeded) or "lookback"
    (no such run yet: `pubmed.initial_lookback_days` before the end). `why` says it in words,
    for the log.
    """

    start: datetime
    end: datetime
    origin: str
    why: str = ""

    def to_dict(self) -> dict[str, str]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "origin": self.origin,
            "why": self.why,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, str]) -> RunWindow:
        return cls(
            datetime.fromisoformat(d["start"]),
            datetime.fromisoformat(d["end"]),
            d["origin"],
            d.get("why", ""),
        )

    def describe(self) -> str:
        start, end = self.start.isoformat(sep=" "), self.end.isoformat(sep=" ")
        return f"{start} .. {end} UTC ({self.why or self.origin})"


# -- settings and store -------------------------------------------------------------------------


def load_settings(config: Settings | str | os.PathLike[str] | None = None) -> Settings:
    """The validated settings: given, from a path, or from $LUPUS_ALERTS_CONFIG / ./lupus-alerts.yaml."""
    if isinstance(config, Settings):
        return config
    return load_config(config)


def open_store(settings: Settings) -> Engine:
    """The store's engine, migrated to the latest schema (cheap when already current)."""
    from lupus_alerts import store

    store.upgrade(settings.database_url)
    return store.get_engine(settings.database_url)


def schedule_settings(config: str | os.PathLike[str] | None = None) -> ScheduleSettings:
    """The schedule section for DAG files at parse time; defaults if the config can't be read.

    DAG parsing must never fail or be slow because of the config: a broken file shows up when
    the first task loads it (a red task with the file, field and problem), not as an import error.
    """
    try:
        return load_config(config).schedule
    except Exception as e:  # any problem at parse time means "use the defaults"; tasks report it
        log.debug("schedule settings unavailable at parse time (%s); using defaults", e)
        return ScheduleSettings()


def _naive_utc(value: datetime | str | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    return value


# -- run bookkeeping ----------------------------------------------------------------------------
