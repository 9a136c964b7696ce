"""Bodies that would hurt: gzip bombs and bodies larger than any real answer, over real sockets.

A feed's body is capped after decompression while it streams (`feed_settings.max_bytes`); an
E-utilities body is capped the same way (`EutilsClient.max_body_bytes`). A small compressed
body that inflates to 200 MB is refused quickly, with memory bounded by the cap, not by what
the body would inflate to. Slow and stalled feed bodies are covered in
tests/integration/test_feeds_poll.py (`test_slow_dripping_body_hits_total_deadline`,
`test_stalled_server_times_out_quickly`), E-utilities timeouts in
tests/integration/test_eutils_client.py.
"""

from __future__ import annotations

import time
import tracemalloc
import zlib
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import pytest
from factories import make_settings

from lupus_alerts.config import FeedConfig
from lupus_alerts.eutils import EutilsClient, EutilsResponseError
from lupus_alerts.feeds import check_feed
from lupus_alerts.ratelimit import RateLimiter
from lupus_alerts.testing.eutils_replay import EFETCH_PATH, EutilsReplay, corpus_from_files
from lupus_alerts.testing.replay import ReplayServer, Response

INFLATED = 200_000_000  # what the bomb inflates to
CAP = 2_000_000


def _bomb(encoding: str) -> bytes:
    # 200 MB of spaces after an XML start: 200 KB compressed.
    head = b'<?xml version="1.0"?><rss version="2.0"><channel><title>'
    chunk = b" " * 1_000_000
    if encoding == "gzip":
        comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    else:
        comp = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS)
    parts = [comp.compress(head)]
    parts += [comp.compress(chunk) for _ in range(INFLATED // len(chunk))]
    parts.append(comp.flush())
    return b"".join(parts)


@pytest.fixture(scope="module", params=["gzip", "deflate"])
def bomb(request: pytest.FixtureRequest) -> tuple[str, bytes]:
    data = _bomb(request.param)
    assert len(data) < INFLATED / 500
    return request.param, data


T = TypeVar("T")


def _measure(fn: Callable[[], T]) -> tuple[T, float, int]:
    """What `fn` returns, how long it took (s) and its peak of traced memory (bytes)."""
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        result = fn()
    finally:
        elapsed = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return result, elapsed, peak


def test_a_compressed_feed_bomb_is_refused_at_the_cap(bomb: tuple[str, bytes], tmp_path: Path) -> None:
    encoding, data = bomb
    with ReplayServer() as server:
        server.route(
            "/bomb.xml",
            lambda _req: Response(
                200, data, {"Content-Type": "application/rss+xml", "Content-Encoding": encoding}
            ),
        )
        feed = FeedConfig(id="bomb", name="Bomb", publisher="x", url=server.url + "/bomb.xml")
        settings = make_settings(data_dir=str(tmp_path), feeds=[feed], feed_settings={"max_bytes": CAP})
        outcome, elapsed, peak = _measure(lambda: check_feed(settings, feed))
    assert outcome.status == "error" and "cap" in outcome.error
    assert elapsed < 5.0
    assert peak < 10 * CAP  # bounded by the cap, not by the 200 MB it inflates to


def test_a_compressed_efetch_bomb_is_refused_at_the_cap(bomb: tuple[str, bytes], tmp_path: Path) -> None:
    encoding, data = bomb
    fixture = Path(__file__).parent.parent / "fixtures" / "pubmed" / "biopython_pubmed1.xml"
    corpus = corpus_from_files([fixture], start=datetime(2024, 3, 1).date())
    with EutilsReplay(corpus) as replay:
        replay.server.route(
            EFETCH_PATH,
            lambda _req: Response(200, data, {"Content-Type": "text/xml", "Content-Encoding": encoding}),
        )
        client = EutilsClient(
            base_url=replay.base_url,
            max_body_bytes=CAP,
            max_retries=3,
            limiter=RateLimiter(100, name="bomb", directory=tmp_path),
        )
        with client, pytest.raises(EutilsResponseError, match="larger than") as err:
            _measure(lambda: client.efetch_ids(["12091962"]))
        requests_made = client.requests_made
    assert requests_made == 1  # a bomb is not asked for again
    assert "2000000" in str(err.value) or "2,000,000" in str(err.value)


def test_the_efetch_cap_keeps_memory_bounded(tmp_path: Path) -> None:
    data = _bomb("gzip")
    with ReplayServer() as server:
        server.route(
            "/entrez/eutils/efetch.fcgi",
            lambda _req: Response(200, data, {"Content-Type": "text/xml", "Content-Encoding": "gzip"}),
        )
        client = EutilsClient(
            base_url=server.url + "/entrez/eutils/",
            max_body_bytes=CAP,
            limiter=RateLimiter(100, name="bomb-mem", directory=tmp_path),
        )

        def fetch() -> None:
            with client, pytest.raises(EutilsResponseError):
                client.efetch_ids(["1"])

        _, elapsed, peak = _measure(fetch)
    assert elapsed < 5.0
    assert peak < 10 * CAP
