"""The machine-wide limiter: slots are spaced by 1/rate across threads and processes."""

from __future__ import annotations

import itertools
import multiprocessing
import threading
import time
from pathlib import Path

import pytest

from lupus_alerts.ratelimit import NCBI_RATE_WITH_KEY, NCBI_RATE_WITHOUT_KEY, RateLimiter, ncbi_limiter


def _max_in_any_second(times: list[float]) -> int:
    times = sorted(times)
    best = 0
    j = 0
    for i, t in enumerate(times):
        while times[j] <= t - 1.0:
            j += 1
        best = max(best, i - j + 1)
    return best


def test_threads_never_exceed_the_rate(tmp_path: Path) -> None:
    lim = RateLimiter(20, name="t", directory=tmp_path)
    slots: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(5):
            slot = lim.acquire()  # the start time granted under the lock
            with lock:
                slots.append(slot)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(slots) == 30
    assert _max_in_any_second(slots) <= 20
    ordered = sorted(slots)
    gaps = [b - a for a, b in itertools.pairwise(ordered)]
    assert min(gaps) >= 1 / 20  # spaced, not bursted


def _proc(directory: str, n: int, q: multiprocessing.Queue) -> None:
    lim = RateLimiter(20, name="p", directory=directory)
    for _ in range(n):
        q.put(lim.acquire())


def test_processes_share_one_schedule(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    q: multiprocessing.Queue = ctx.Queue()
    procs = [ctx.Process(target=_proc, args=(str(tmp_path), 8, q)) for _ in range(3)]
    for p in procs:
        p.start()
    slots = sorted(q.get(timeout=30) for _ in range(24))
    for p in procs:
        p.join()
    # 24 grants from three processes, never closer than one interval to each other
    assert len(slots) == 24
    assert _max_in_any_second(slots) <= 20
    assert min(b - a for a, b in itertools.pairwise(slots)) >= 1 / 20


def test_separate_names_do_not_share(tmp_path: Path) -> None:
    a = RateLimiter(1, name="a", directory=tmp_path)
    b = RateLimiter(1, name="b", directory=tmp_path)
    t0 = time.monotonic()
    a.acquire()
    b.acquire()
    assert time.monotonic() - t0 < 0.5


def test_stale_far_future_time_is_ignored(tmp_path: Path) -> None:
    fake_now = [1000.0]
    lim = RateLimiter(10, name="s", directory=tmp_path, clock=lambda: fake_now[0], sleep=lambda s: None)
    assert lim.acquire() == 1000.0
    fake_now[0] = 0.0  # the clock went back: the stored time is nonsense now
    assert lim.acquire() == 0.0


def test_a_caller_that_is_not_due_waits_the_remaining_time(tmp_path: Path) -> None:
    fake_now = [50.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        fake_now[0] += s

    lim = RateLimiter(4, name="w", directory=tmp_path, clock=lambda: fake_now[0], sleep=sleep)
    assert lim.acquire() == 50.0
    assert lim.try_acquire() == (False, pytest.approx(lim.interval))
    assert lim.acquire() == pytest.approx(50.0 + lim.interval)
    assert slept == [pytest.approx(lim.interval)]


def test_ncbi_rates_depend_on_the_key(tmp_path: Path) -> None:
    assert ncbi_limiter(None, directory=tmp_path).rate == NCBI_RATE_WITHOUT_KEY == 3
    keyed = ncbi_limiter("secret-key", directory=tmp_path)
    assert keyed.rate == NCBI_RATE_WITH_KEY == 10
    assert "secret-key" not in keyed.path.name
