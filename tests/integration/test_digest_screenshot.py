"""The HTML digest rendered by headless Chromium at desktop and phone widths, light and dark.

The digest is built end to end from a store seeded with the constructed showcase records in
tests/fixtures/digest/showcase_papers.json. Set LUPUS_SAVE_SCREENSHOTS=1 to copy the PNGs to
docs/ (docs/screenshot-digest.png is the one the README shows).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import zlib
from collections import Counter
from datetime import date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from factories import insert_announced, make_settings

from lupus_alerts import delivery, store
from lupus_alerts import digest as D
from lupus_alerts import subscribers as subs
from lupus_alerts.models import Author, Classification, Paper, TopicLabel

REPO = Path(__file__).resolve().parents[2]
SHOWCASE = REPO / "tests" / "fixtures" / "digest" / "showcase_papers.json"
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="headless Chromium not installed (apt-get install -y chromium; .ci/run installs it)",
    ),
]


def seed_showcase(engine: sa.Engine) -> tuple[int, int]:
    """Store the showcase papers (announced 2..n) and one retraction of a paper announced as 1."""
    data = json.loads(SHOWCASE.read_text(encoding="utf-8"))
    now = store.utcnow()
    earlier = {
        "title": "Belimumab added to standard therapy in active lupus nephritis: a constructed earlier trial",
        "pmid": "39999990",
        "journal": "Lupus Sci Med",
        "epub_date": "2025-06-02",
        "abstract": "Constructed.",
        "topics": {"nephrology": 0.9, "therapeutics": 0.8},
        "evidence": {},
    }
    records = [earlier, *data["papers"]]
    with engine.begin() as c:
        for n, rec in enumerate(records, start=1):
            rec = dict(rec)
            topics, evidence = rec.pop("topics"), rec.pop("evidence")
            rec["authors"] = [Author(**a) for a in rec.get("authors", [])]
            paper = Paper.from_dict({"source": "pubmed", "source_key": str(n), **rec})
            paper.classification = Classification(
                is_lupus=True,
                relevance_score=0.95,
                topics=[TopicLabel(k, v, evidence.get(k, [])) for k, v in topics.items()],
            )
            pid = insert_announced(c, paper, announce_no=n, now=now)
            if n == 1:
                c.execute(
                    sa.insert(store.paper_updates).values(
                        paper_id=pid,
                        kind="retraction_in",
                        notice_key="39999999",
                        notice={
                            "kind": "retraction_in",
                            "ref_source": "Lupus Sci Med. 2025;12:e9999",
                            "pmid": "39999999",
                        },
                        detected_at=now,
                        update_no=1,
                    )
                )
    return len(records), 1


@pytest.fixture(scope="module")
def digest_html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("digest")
    url = f"sqlite:///{tmp / 'store.db'}"
    store.upgrade(url)
    engine = store.make_engine(url)
    try:
        announce_to, update_to = seed_showcase(engine)
        sub = subs.add(engine, email="ada@example.org", name="Dr Ada Example", from_beginning=True)
        with engine.begin() as c:
            delivery.advance_cursors(
                c, sub.id, cursor=1, update_cursor=0, now=store.utcnow()
            )  # paper 1 was sent earlier
        sub = subs.get(engine, sub.id)
        settings = make_settings(tmp)
        with engine.connect() as conn:
            d = D.build_digest(
                conn,
                settings,
                sub,
                announce_to=announce_to,
                update_to=update_to,
                period="2026-11-27",
                now=datetime(2026, 11, 27, 7, 0),
                secret="screenshot-secret-0123456789abcdef",
            )
    finally:
        engine.dispose()
    assert d.paper_count == 6 and d.update_count == 1
    path = tmp / "digest.html"
    path.write_text(d.html, encoding="utf-8")
    return path


# Tall enough for the whole showcase digest (header to footer) at each width.
HEIGHTS = {600: 2500, 375: 3500}


def screenshot(html: Path, out: Path, width: int, *, dark: bool = False) -> None:
    height = HEIGHTS[width]
    profile = out.parent / f"profile-{out.stem}"
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
        f"--screenshot={out}",
    ]
    if dark:
        cmd.append("--force-dark-mode")  # makes prefers-color-scheme: dark match
    cmd.append(html.as_uri())
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)
    assert out.exists(), f"chromium wrote no screenshot (exit {proc.returncode}): {proc.stderr[-2000:]}"


def read_png_rows(path: Path, max_rows: int) -> tuple[int, int, list[list[tuple[int, ...]]]]:
    """A tiny PNG decoder (8-bit RGB/RGBA, non-interlaced): (width, height, first rows of pixels)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    assert header is not None
    width, height, depth, ctype, _comp, _filt, interlace = header
    assert depth == 8 and ctype in (2, 6) and interlace == 0, f"unsupported PNG layout {header}"
    bpp = 3 if ctype == 2 else 4
    stride = width * bpp
    raw = zlib.decompressobj().decompress(idat, (stride + 1) * max_rows)
    rows: list[list[tuple[int, ...]]] = []
    prev = bytearray(stride)
    for r in range(min(max_rows, height, len(raw) // (stride + 1))):
        ftype, line = raw[r * (stride + 1)], bytearray(raw[r * (stride + 1) + 1 : (r + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 0xFF
            elif ftype == 2:
                line[i] = (line[i] + b) & 0xFF
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        rows.append([tuple(line[i : i + 3]) for i in range(0, stride, bpp)])
        prev = line
    return width, height, rows


def assert_rendered(png: Path, width: int) -> Counter:
    w, h, rows = read_png_rows(png, max_rows=700)
    assert (w, h) == (width, HEIGHTS[width])
    colours = Counter(px for row in rows for px in row)
    _, background = colours.most_common(1)[0]
    total = sum(colours.values())
    # Text, badges and the header bar give many colours (anti-aliasing) and cover a good
    # share of the page; a blank or error page does neither.
    assert len(colours) > 200, f"only {len(colours)} colours: the page looks blank"
    assert background / total < 0.9
    return colours


@pytest.mark.parametrize("width", [600, 375])
def test_digest_renders_in_chromium_at_desktop_and_phone_widths(
    digest_html: Path, tmp_path: Path, width: int
) -> None:
    png = tmp_path / f"digest-{width}.png"
    screenshot(digest_html, png, width)
    colours = assert_rendered(png, width)
    # the header bar's navy is painted (the inlined styles applied)
    assert sum(n for (r, g, b), n in colours.items() if (r, g, b) == (0x12, 0x3B, 0x66)) > 1000
    if os.environ.get("LUPUS_SAVE_SCREENSHOTS"):
        name = "screenshot-digest.png" if width == 600 else f"screenshot-digest-{width}.png"
        shutil.copy(png, REPO / "docs" / name)


def test_digest_switches_to_dark_colours_when_the_client_prefers_dark(
    digest_html: Path, tmp_path: Path
) -> None:
    png = tmp_path / "digest-dark.png"
    screenshot(digest_html, png, 600, dark=True)
    colours = assert_rendered(png, 600)
    (r, g, b), _ = colours.most_common(1)[0]
    assert 0.2126 * r + 0.7152 * g + 0.0722 * b < 60, f"dominant colour {(r, g, b)} is not dark"
    if os.environ.get("LUPUS_SAVE_SCREENSHOTS"):
        shutil.copy(png, REPO / "docs" / "screenshot-digest-dark.png")


def test_showcase_fixture_dates_are_real_dates() -> None:
    # guards the fixture itself: every record has a parseable date and a link target
    for rec in json.loads(SHOWCASE.read_text(encoding="utf-8"))["papers"]:
        date.fromisoformat(rec["epub_date"])
        assert rec.get("doi") or rec.get("pmid")
