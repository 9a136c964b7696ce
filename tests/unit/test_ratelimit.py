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


# -- the safety margin: expected values written out, not read from the module -------------------


@pytest.mark.parametrize(
    ("rate", "interval"),
    [(10.0, 0.103), (3.0, 0.343333), (1.0, 1.03), (20.0, 0.0515)],
)
def test_the_interval_is_three_percent_wider_than_one_over_the_rate(
    tmp_path: Path, rate: float, interval: float
) -> None:
    assert RateLimiter(rate, name=f"m{rate}", directory=tmp_path).interval == pytest.approx(
        interval, abs=1e-6
    )


def test_ncbi_intervals_keep_a_margin_under_both_limits(tmp_path: Path) -> None:
    assert ncbi_limiter("k", directory=tmp_path).interval == pytest.approx(0.103)
    assert ncbi_limiter(None, directory=tmp_path).interval == pytest.approx(1.03 / 3)


def test_a_sequence_of_calls_is_granted_at_the_margin_interval(tmp_path: Path) -> None:
    # Eleven real acquisitions through the lock file, on a clock that only moves when the limiter
    # sleeps: the grants are exactly 0.103 s apart, so ten of them take 1.03 s, not 1.0 s.
    now = [100.0]

    def sleep(s: float) -> None:
        now[0] += s

    lim = RateLimiter(NCBI_RATE_WITH_KEY, name="seq", directory=tmp_path, clock=lambda: now[0], sleep=sleep)
    grants = [lim.acquire() for _ in range(11)]
    gaps = [b - a for a, b in itertools.pairwise(grants)]
    assert gaps == [pytest.approx(0.103, abs=1e-9)] * 10
    assert grants[-1] - grants[0] == pytest.approx(1.03, abs=1e-9)


def test_real_grants_never_come_closer_than_the_margin_interval(tmp_path: Path) -> None:
    lim = RateLimiter(NCBI_RATE_WITH_KEY, name="real", directory=tmp_path)
    grants = [lim.acquire() for _ in range(11)]
    assert min(b - a for a, b in itertools.pairwise(grants)) >= 0.103 - 1e-6
    assert grants[-1] - grants[0] >= 1.03 - 1e-6
