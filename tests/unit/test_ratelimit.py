"""The machine-wide limiter: slots are spaced by 1/rate across threads and processes."""

from __future__ import annotations

import hashlib
import itertools
import multiprocessing
import os
import stat
import struct
import tempfile
import threading
import time
from pathlib import Path

import pytest

from lupus_alerts.ratelimit import (
    MAX_BOOKED_AHEAD_S,
    NCBI_RATE_WITH_KEY,
    NCBI_RATE_WITHOUT_KEY,
    RATELIMIT_DIR_ENV,
    RateLimiter,
    ncbi_limiter,
)


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

    def sleep(s: float) -> None:
        raise AssertionError(f"slept {s} s: the stale booking was obeyed")

    lim = RateLimiter(10, name="s", directory=tmp_path, clock=lambda: fake_now[0], sleep=sleep)
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


# -- where the schedule lives, and its edges (each test kills a mutant mutmut found alive) ---------


class _FakeTime:
    """A clock that moves only when slept on; too many sleeps means a caller that never gets
    its turn, which fails the test instead of hanging it."""

    def __init__(self, start: float) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        assert len(self.sleeps) < 100, "the caller never got its turn"
        self.now += s


def test_schedule_files_have_stable_names_in_the_given_directory(tmp_path: Path) -> None:
    # Every process on a host (old and new versions during a rolling restart included) must open
    # the same file for the same budget: the names are part of the contract (docs/pubmed.md).
    digest = hashlib.sha256(b"key-one").hexdigest()[:16]
    assert ncbi_limiter("key-one", directory=tmp_path).path == tmp_path / f"ratelimit-ncbi-key-{digest}.slot"
    assert ncbi_limiter(None, directory=tmp_path).path == tmp_path / "ratelimit-ncbi-nokey.slot"
    assert RateLimiter(5, directory=tmp_path).path == tmp_path / "ratelimit-default.slot"
    assert (
        ncbi_limiter("key-two", directory=tmp_path).path != ncbi_limiter("key-one", directory=tmp_path).path
    )


def test_the_environment_names_the_directory_when_the_caller_does_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(RATELIMIT_DIR_ENV, str(tmp_path / "shared"))
    assert ncbi_limiter(None).path == tmp_path / "shared" / "ratelimit-ncbi-nokey.slot"
    assert RateLimiter(1, name="x", directory=tmp_path / "given").path.parent == tmp_path / "given"


def test_without_either_the_schedule_is_in_the_temporary_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(RATELIMIT_DIR_ENV, raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert ncbi_limiter(None).path == tmp_path / "lupus-alerts" / "ratelimit-ncbi-nokey.slot"


def test_missing_parent_directories_are_created(tmp_path: Path) -> None:
    lim = RateLimiter(1, name="n", directory=tmp_path / "a" / "b" / "c")
    assert lim.path.parent.is_dir()


def test_the_schedule_file_is_not_executable(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        lim = RateLimiter(1, name="mode", directory=tmp_path)
        lim.try_acquire()
    finally:
        os.umask(old)
    assert stat.S_IMODE(lim.path.stat().st_mode) == 0o666


@pytest.mark.parametrize("rate", [0, -1.0])
def test_a_rate_that_is_not_positive_is_refused(tmp_path: Path, rate: float) -> None:
    with pytest.raises(ValueError, match=r"^rate must be positive$"):
        RateLimiter(rate, name="bad", directory=tmp_path)


def test_a_fresh_schedule_grants_the_first_caller_at_once_whatever_the_clock(tmp_path: Path) -> None:
    t = _FakeTime(0.0)
    lim = RateLimiter(10, name="fresh", directory=tmp_path, clock=t.clock, sleep=t.sleep)
    assert lim.acquire() == 0.0 and t.sleeps == []


def test_a_caller_whose_turn_is_exactly_now_goes_at_once(tmp_path: Path) -> None:
    t = _FakeTime(50.0)
    lim = RateLimiter(4, name="edge", directory=tmp_path, clock=t.clock, sleep=t.sleep)
    first = lim.acquire()
    t.now = first + lim.interval  # the booked time, to the bit
    assert lim.try_acquire() == (True, first + lim.interval)


def test_a_booking_exactly_at_the_stale_limit_is_still_obeyed(tmp_path: Path) -> None:
    t = _FakeTime(1000.0)
    lim = RateLimiter(10, name="ahead", directory=tmp_path, clock=t.clock, sleep=t.sleep)
    lim.path.write_bytes(struct.pack("<d", 1000.0 + MAX_BOOKED_AHEAD_S))
    assert lim.try_acquire() == (False, MAX_BOOKED_AHEAD_S)


def test_a_stale_booking_after_the_clock_went_back_is_dropped_at_once(tmp_path: Path) -> None:
    t = _FakeTime(1000.0)
    lim = RateLimiter(10, name="back", directory=tmp_path, clock=t.clock, sleep=t.sleep)
    assert lim.acquire() == 1000.0
    t.now = 0.0  # the wall clock jumped back 1,000 s
    assert lim.acquire() == 0.0 and t.sleeps == []
