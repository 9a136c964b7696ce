"""PostgreSQL only: batches written by two forked worker processes (`gc.freeze`, each with its own
connection), so that planning in Python and the server's work overlap (docs/dedupe.md)."""

from __future__ import annotations

import gc
import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import AbstractContextManager
from datetime import datetime

import msgspec
from sqlalchemy.engine import Connection, Engine

from lupus_alerts.dedupe.codec import _JSON_ENCODER
from lupus_alerts.dedupe.stats import MergeError, UpsertStats
from lupus_alerts.models import Paper

# One batch in one transaction (`upsert._upsert_with_retries`), passed in: a top-level function,
# so a worker receives it by name.
BatchRunner = Callable[
    [Callable[[], AbstractContextManager[Connection]], Sequence[Paper], datetime], UpsertStats
]


_WORKERS = 2  # processes writing batches at once on PostgreSQL (_upsert_in_workers)


def _upsert_in_workers(
    engine: Engine, batches: Iterable[list[Paper]], when: datetime, run: BatchRunner
) -> UpsertStats:
    """Run the batches in `_WORKERS` forked processes, each on its own connection.

    Planning a batch is Python work (matching, merging, encoding) about equal to the server's
    work on it. Threads would take turns on the GIL, so a thread whose statement came back
    waits for the other thread's planning while its connection idles; separate processes plan
    and wait independently, which keeps both cores busy (docs/dedupe.md, "Performance").
    Batches meet as any two concurrent writers do (module docstring): locks, then a retry.
    A batch is sent as its JSON (msgspec, the store's own encoding of a Paper).
    """
    total = UpsertStats()
    try:
        with ProcessPoolExecutor(
            max_workers=_WORKERS, mp_context=_FORK, initializer=_worker_start, initargs=(engine,)
        ) as pool:
            # never more in flight than workers, so the input is read as the work goes
            in_flight: deque[Future[UpsertStats]] = deque()
            for batch in batches:
                if len(in_flight) == _WORKERS:
                    total.add(in_flight.popleft().result())
                in_flight.append(pool.submit(_worker_batch, run, _batch_payload(batch), when))
            while in_flight:
                total.add(in_flight.popleft().result())
    except BrokenProcessPool as e:
        # Killed (out of memory, say): the batches it committed stay, the rest can be redone.
        raise MergeError(f"an upsert worker process died: {e}; rerun the upsert to finish") from e
    return total


_FORK = multiprocessing.get_context("fork") if "fork" in multiprocessing.get_all_start_methods() else None


_worker_engine: Engine | None = None


_BATCH_DECODER = msgspec.json.Decoder(list[Paper])


def _worker_start(engine: Engine) -> None:
    """In a fresh worker: give the engine a pool of its own.

    The caller's pooled connections came with the fork. `close=False` forgets them without
    closing them: closing one here would end the caller's session on the server. Every object
    the caller had also came with it; frozen, the garbage collector never walks them here, which
    would copy nearly every page of the caller's heap into this process (copy-on-write).
    """
    global _worker_engine
    gc.freeze()
    engine.dispose(close=False)
    _worker_engine = engine


def _batch_payload(batch: list[Paper]) -> bytes | list[Paper]:
    try:
        return _JSON_ENCODER.encode(batch)
    except UnicodeEncodeError:
        return batch  # a lone surrogate (encode_paper replaces it): pickled instead


def _worker_batch(run: BatchRunner, payload: bytes | list[Paper], when: datetime) -> UpsertStats:
    assert _worker_engine is not None, "worker started without an engine"
    batch = _BATCH_DECODER.decode(payload) if isinstance(payload, bytes) else payload
    return run(_worker_engine.begin, batch, when)
