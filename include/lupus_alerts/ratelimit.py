"""A request-rate limiter shared by every thread and process on one machine.

NCBI allows 3 requests a second per IP without an API key and 10 with one. Airflow may run
several PubMed tasks at once on one worker (each a separate process), so an in-process limiter
is not enough. The schedule lives in a small file holding the earliest time the next request
may start. A caller takes an exclusive `flock` on it; if that time has come, it writes
now + interval and goes ahead at once, otherwise it releases the lock and sleeps until then
and tries again. Because a start is stamped at the moment it is granted (not booked ahead and
slept towards), a caller the OS wakes late cannot end up closer to its successor: the grants
are one interval apart however many threads and processes share the file.

Across machines, the Airflow pool `ncbi` bounds concurrency (see docs/pubmed.md).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import struct
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

RATELIMIT_DIR_ENV = "LUPUS_ALERTS_RATELIMIT_DIR"
NCBI_RATE_WITHOUT_KEY = 3.0
NCBI_RATE_WITH_KEY = 10.0
# Spacing is a little wider than 1/rate: requests arrive at NCBI with network jitter, and two
# slots exactly 1/rate apart can land inside one second. 3% costs little and keeps us under.
SAFETY_MARGIN = 1.03
# A stored time further ahead than this is stale (the wall clock jumped back): it is ignored
# rather than obeyed.
MAX_BOOKED_AHEAD_S = 300.0
_FMT = struct.Struct("<d")


class RateLimiter:
    """At most `rate` acquisitions per second for everyone using the same `name` and directory."""

    def __init__(
        self,
        rate: float,
        *,
        name: str = "default",
        directory: str | os.PathLike[str] | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.interval = SAFETY_MARGIN / rate
        base = Path(
            directory or os.environ.get(RATELIMIT_DIR_ENV) or Path(tempfile.gettempdir()) / "lupus-alerts"
        )
        base.mkdir(parents=True, exist_ok=True)
        self.path = base / f"ratelimit-{name}.slot"
        self._clock = clock
        self._sleep = sleep
        # flock already excludes other threads (each acquire opens its own file description);
        # the thread lock just avoids needless file opens contending within one process.
        self._local = threading.Lock()

    def try_acquire(self) -> tuple[bool, float]:
        """Take the next request's turn if it is due: (True, start time) or (False, seconds to wait).

        The start time is stamped under the lock at the moment of the grant, so the stamps of
        all callers are at least one interval apart whatever the scheduler does afterwards.
        """
        with self._local:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                raw = os.pread(fd, _FMT.size, 0)
                now = self._clock()
                nxt = _FMT.unpack(raw)[0] if len(raw) == _FMT.size else 0.0
                if nxt - now > MAX_BOOKED_AHEAD_S:
                    nxt = 0.0
                if now < nxt:
                    return False, nxt - now
                os.pwrite(fd, _FMT.pack(now + self.interval), 0)
                return True, now
            finally:
                os.close(fd)  # closing releases the flock

    def acquire(self) -> float:
        """Wait until this caller may send; return the granted start time (on `clock`'s scale)."""
        while True:
            ok, value = self.try_acquire()
            if ok:
                return value
            # Several waiters wake together and one wins; the others sleep one interval more.
            # Waking a touch late is harmless: the start is stamped on the grant, not the slot.
            self._sleep(value)


def ncbi_limiter(api_key: str | None, *, directory: str | os.PathLike[str] | None = None) -> RateLimiter:
    """The machine-wide limiter for NCBI: 10/s per API key, 3/s for keyless use of this host."""
    if api_key:
        # NCBI counts per key, so each key has its own schedule; the file name must not leak it.
        name = "ncbi-key-" + hashlib.sha256(api_key.encode()).hexdigest()[:16]
        return RateLimiter(NCBI_RATE_WITH_KEY, name=name, directory=directory)
    return RateLimiter(NCBI_RATE_WITHOUT_KEY, name="ncbi-nokey", directory=directory)
