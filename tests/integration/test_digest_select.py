"""Digest selection against a real store (SQLite and PostgreSQL), seeded through its tables.

The papers are constructed records in the paper schema (models.Paper), not real citations.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import lxml.html
import pytest
import sqlalchemy as sa
from factories import insert_announced, make_settings

from lupus_alerts import delivery, store, tokens
from lupus_alerts import digest as D
from lupus_alerts import subscribers as subs
from lupus_alerts.config import Settings
from lupus_alerts.models import Author, Classification, Paper, TopicLabel

SECRET = "test-secret-for-digest-links-0123456789"
NOW = datetime(2026, 11, 27, 9, 0)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, digest={"public_base_url": "https://alerts.test"})


def seed_paper(
    engine: sa.Engine,
    announce_no: int | None,
    topics: dict[str, float],
    *,
    title: str | None = None,
    day: date = date(2026, 11, 1),
    is_lupus: bool = True,
    retracted: bool = False,
) -> int:
    """Insert one classified paper the way announce does: papers row + paper_topics rows."""
    title = title or f"Constructed paper {announce_no}"
    cls = Classification(
        is_lupus=is_lupus,
        relevance_score=0.9,
        topics=[TopicLabel(label=k, score=v, evidence=[f"cue for {k}"]) for k, v in topics.items()],
    )
    paper = Paper(
        source="pubmed",
        source_key=f"9{announce_no or 0:07d}",
        title=title,
        doi=f"10.1000/constructed.{announce_no}.{abs(hash(title)) % 10000}",
        journal="Lupus",
        pub_date=day,
        authors=[Author(last_name="Doe", initials="J")],
        abstract="First sentence. Second sentence.",
        is_retracted=retracted,
        classification=cls,
    )
    with engine.begin() as c:
        pid = insert_announced(c, paper, announce_no=announce_no, now=store.utcnow())
    return int(pid)


def seed_update(engine: sa.Engine, paper_id: int, update_no: int, kind: str = "retraction_in") -> None:
    with engine.begin() as c:
        c.execute(
            sa.insert(store.paper_updates).values(
                paper_id=paper_id,
                kind=kind,
                notice_key=f"notice-{update_no}",
                notice={
                    "kind": kind,
                    "ref_source": f"Lupus. 2026;35:{update_no}",
                    "pmid": f"7{update_no:07d}",
                },
                detected_at=store.utcnow(),
                update_no=update_no,
            )
        )


def build(engine: sa.Engine, settings: Settings, sub, announce_to, update_to=0, **kw) -> D.Digest:
    with engine.connect() as conn:
        return D.build_digest(
            conn,
            settings,
            sub,
            announce_to=announce_to,
            update_to=update_to,
            period="2026-11-27",
            now=NOW,
            secret=SECRET,
            **kw,
        )


def test_cursor_windows_never_repeat_a_paper(engine: sa.Engine, settings: Settings):
    for n in range(1, 7):
        seed_paper(engine, n, {"nephrology": 0.5 + n / 100})
    sub = subs.add(engine, email="a@example.org", topics=["nephrology"], from_beginning=True)
    seen: list[int] = []
    for announce_to in (2, 2, 5, 6):  # a repeated bound (a rerun) must add nothing
        sub = subs.get(engine, sub.id)
        d = build(engine, settings, sub, announce_to)
        assert (d.announce_from, d.announce_to) == (sub.cursor, announce_to)
        seen.extend(d.paper_ids)
        with engine.begin() as c:
            delivery.advance_cursors(
                c, sub.id, cursor=d.announce_to, update_cursor=d.update_to, now=store.utcnow()
            )
    assert len(seen) == len(set(seen)) == 6


def test_only_announced_lupus_papers_with_a_chosen_topic_are_selected(engine: sa.Engine, settings: Settings):
    wanted = seed_paper(engine, 1, {"dermatology": 0.7})
    seed_paper(engine, 2, {"genetics": 0.9})  # topic not chosen
    seed_paper(engine, None, {"dermatology": 0.9})  # not announced yet
    seed_paper(engine, 3, {"dermatology": 0.9}, is_lupus=False)  # not lupus
    sub = subs.add(engine, email="d@example.org", topics=["dermatology", "pregnancy"], from_beginning=True)
    d = build(engine, settings, sub, 3)
    assert d.paper_ids == (wanted,)


def test_paper_in_two_chosen_topics_appears_once_under_its_best_topic(engine: sa.Engine, settings: Settings):
    both = seed_paper(engine, 1, {"nephrology": 0.6, "pregnancy": 0.9}, title="Lupus nephritis in pregnancy")
    seed_paper(engine, 2, {"nephrology": 0.8}, title="Only kidneys")
    sub = subs.add(engine, email="b@example.org", topics=["nephrology", "pregnancy"], from_beginning=True)
    d = build(engine, settings, sub, 2)
    assert sorted(d.paper_ids) == sorted({*d.paper_ids}) and len(d.paper_ids) == 2
    assert d.topic_counts == {"nephrology": 1, "pregnancy": 1}
    doc = lxml.html.document_fromstring(d.html)
    assert d.html.count("Lupus nephritis in pregnancy</a>") == 1
    rows = doc.xpath("//tr/td[@class='sec' or @class='p']")
    order = [
        ("S:" if td.get("class") == "sec" else "") + td.text_content().strip().split("\n")[0] for td in rows
    ]
    preg = next(i for i, t in enumerate(order) if t.startswith("S:Pregnancy"))
    assert order[preg + 1].startswith("Lupus nephritis in pregnancy")
    cell = next(td for td in rows if "Lupus nephritis in pregnancy" in td.text_content())
    badges = [s.text_content() for s in cell.xpath(".//span[@class='k' or @class='k2']")]
    assert badges == [subs.topic_short_name("pregnancy"), subs.topic_short_name("nephrology")]
    assert both in d.paper_ids


def test_papers_are_ordered_by_score_then_date(engine: sa.Engine, settings: Settings):
    low = seed_paper(engine, 1, {"hematology": 0.4}, day=date(2026, 11, 20))
    old = seed_paper(engine, 2, {"hematology": 0.8}, day=date(2026, 1, 1))
    new = seed_paper(engine, 3, {"hematology": 0.8}, day=date(2026, 11, 1))
    top = seed_paper(engine, 4, {"hematology": 0.95}, day=date(2025, 1, 1))
    sub = subs.add(engine, email="h@example.org", topics="hematology", from_beginning=True)
    assert build(engine, settings, sub, 4).paper_ids == (top, new, old, low)


def test_all_topics_subscriber_also_gets_untagged_lupus_papers(engine: sa.Engine, settings: Settings):
    tagged = seed_paper(engine, 1, {"immunology": 0.7})
    untagged = seed_paper(engine, 2, {})
    everyone = subs.add(engine, email="all@example.org", from_beginning=True)
    some = subs.add(engine, email="some@example.org", topics="immunology", from_beginning=True)
    d = build(engine, settings, everyone, 2)
    assert set(d.paper_ids) == {tagged, untagged}
    assert D.GENERAL_NAME in d.html
    assert build(engine, settings, some, 2).paper_ids == (tagged,)


def test_overflow_beyond_max_papers_is_summarised_not_dropped(engine: sa.Engine, settings: Settings):
    ids = [seed_paper(engine, n, {"pulmonary" if n % 2 else "cardiovascular": n / 10}) for n in range(1, 8)]
    sub = subs.add(engine, email="o@example.org", topics=["pulmonary", "cardiovascular"], max_papers=3)
    assert sub.cursor == 7  # a new subscriber starts from now; rewind to see the whole window
    with engine.begin() as c:
        c.execute(sa.update(store.subscribers).values(cursor=0))
    sub = subs.get(engine, sub.id)
    d = build(engine, settings, sub, 7)
    assert set(d.paper_ids) == {ids[6], ids[5], ids[4]}  # the three highest scores
    assert (d.paper_count, d.overflow) == (3, 4)
    flat = " ".join(lxml.html.document_fromstring(d.html).text_content().split())
    assert "4 more papers" in flat
    names = {subs.topic_short_name("pulmonary"): 2, subs.topic_short_name("cardiovascular"): 2}
    for name, n in names.items():
        assert f"{name} {n}" in flat
    link = lxml.html.document_fromstring(d.html).xpath("//td[@class='ov']//a")[0].get("href")
    # the link lists the window on the subscriber's own topics, not every lupus paper
    assert parse_qs(urlparse(link).query) == {
        "from": ["0"],
        "to": ["7"],
        "topic": ["cardiovascular", "pulmonary"],
    }
    assert "4 more papers" in " ".join(d.text.split())


def test_updates_cover_only_papers_already_received_on_the_subscribers_topics(
    engine: sa.Engine, settings: Settings
):
    received = seed_paper(engine, 1, {"neuropsychiatric": 0.8}, title="Received earlier")
    other_topic = seed_paper(engine, 2, {"genetics": 0.8}, title="Not on my topics")
    new = seed_paper(engine, 3, {"neuropsychiatric": 0.9}, title="New and retracted", retracted=True)
    seed_update(engine, received, 1, "retraction_in")
    seed_update(engine, other_topic, 2, "retraction_in")
    seed_update(engine, new, 3, "retraction_in")
    seed_update(engine, received, 4, "erratum_in")
    sub = subs.add(engine, email="n@example.org", topics="neuropsychiatric", from_beginning=True)
    with engine.begin() as c:
        delivery.advance_cursors(c, sub.id, cursor=2, update_cursor=0, now=store.utcnow())
    sub = subs.get(engine, sub.id)
    d = build(engine, settings, sub, 3, update_to=4)
    assert d.paper_ids == (new,)
    assert d.update_count == 2
    assert d.update_ids and len(d.update_ids) == 2
    doc = lxml.html.document_fromstring(d.html)
    updates = [td.text_content() for td in doc.xpath("//td[@class='up']")]
    assert len(updates) == 2 and all("Received earlier" in u for u in updates)
    assert "Retracted:" in updates[0] and "Correction published:" in updates[1]
    assert "RETRACTED" in doc.xpath("//td[@class='p']")[0].text_content()
    assert "Updates to papers you received (2)" in d.text
    # the next run, with the update cursor advanced, shows no update twice
    with engine.begin() as c:
        delivery.advance_cursors(c, sub.id, cursor=3, update_cursor=4, now=store.utcnow())
    again = build(engine, settings, subs.get(engine, sub.id), 3, update_to=4)
    assert again.is_empty


def test_shared_window_cache_loads_each_window_once(engine: sa.Engine, settings: Settings):
    seed_paper(engine, 1, {"infection": 0.8})
    a = subs.add(engine, email="x@example.org", topics="infection", from_beginning=True)
    b = subs.add(engine, email="y@example.org", from_beginning=True)
    windows: dict = {}
    da = build(engine, settings, a, 1, windows=windows)
    db = build(engine, settings, b, 1, windows=windows)
    assert len(windows) == 1 and da.paper_ids == db.paper_ids


def test_links_carry_tokens_for_this_subscriber(engine: sa.Engine, settings: Settings):
    seed_paper(engine, 1, {"epidemiology": 0.8})
    sub = subs.add(engine, email="t@example.org", from_beginning=True)
    d = build(engine, settings, sub, 1)
    for url, purpose in ((d.unsubscribe_url, "unsubscribe"), (d.preferences_url, "preferences")):
        parsed = urlparse(url)
        assert f"{parsed.scheme}://{parsed.netloc}{parsed.path}" == f"https://alerts.test/{purpose}"
        token = parse_qs(parsed.query)["token"][0]
        assert tokens.check_token(token, purpose, secret=SECRET).link_key == sub.link_key
        assert url.replace("&", "&amp;") in d.html and url in d.text


def test_subject_and_empty_digest(engine: sa.Engine, settings: Settings):
    sub = subs.add(engine, email="e@example.org", from_beginning=True)
    d = build(engine, settings, sub, 0)
    assert d.is_empty and d.paper_count == 0
    assert d.subject == "Lupus digest · no new papers · 27 Nov 2026"
    seed_paper(engine, 1, {"diagnostics": 0.8})
    d = build(engine, settings, sub, 1)
    assert d.subject == f"Lupus digest · 1 new paper ({subs.topic_short_name('diagnostics')} 1) · 27 Nov 2026"


def test_a_huge_max_papers_still_fits_gmails_limit(engine: sa.Engine, settings: Settings):
    now = store.utcnow()
    long_abstract = " ".join(["A long constructed sentence about lupus nephritis outcomes."] * 10)
    rows = [
        {
            "title": f"Constructed paper number {n} " + "with a long title " * 8,
            "doi": f"10.1000/big.{n}",
            "record": Paper(
                source="pubmed",
                source_key=str(n),
                title=f"Constructed paper number {n} " + "with a long title " * 8,
                doi=f"10.1000/big.{n}",
                abstract=long_abstract,
                authors=[Author(last_name=f"Author{i}", initials="X") for i in range(6)],
                journal="Lupus",
            ).to_dict(),
            "classification": {
                "topics": [{"label": "musculoskeletal", "score": 0.5, "evidence": ["x" * 60] * 2}]
            },
            "is_lupus": True,
            "announce_no": n,
            "first_seen_at": now,
            "updated_at": now,
        }
        for n in range(1, 151)
    ]
    with engine.begin() as c:
        c.execute(sa.insert(store.papers), rows)
        ids = c.execute(sa.select(store.papers.c.id)).scalars().all()
        c.execute(
            sa.insert(store.paper_topics),
            [{"paper_id": i, "label": "musculoskeletal", "score": 0.5} for i in ids],
        )
    sub = subs.add(engine, email="big@example.org", max_papers=1000, from_beginning=True)
    d = build(engine, settings, sub, 150)
    assert len(d.html.encode("utf-8")) <= D.HTML_BUDGET_BYTES
    assert d.paper_count + d.overflow == 150 and d.overflow > 0


@pytest.mark.slow
def test_cli_preview_renders_without_advancing_anything(sqlite_url: str, tmp_path: Path):
    import subprocess
    import sys
    from pathlib import Path

    store.upgrade(sqlite_url)
    engine = store.make_engine(sqlite_url)
    try:
        seed_paper(engine, 1, {"nephrology": 0.9}, title="Preview me")
        sub = subs.add(engine, email="p@example.org", from_beginning=True)
        cfg = tmp_path / "lupus-alerts.yaml"
        cfg.write_text(f"store_url: {sqlite_url}\n", encoding="utf-8")
        out = tmp_path / "preview.html"
        exe = Path(sys.executable).with_name("lupus-alerts")
        args = [str(exe), "--config", str(cfg), "digest", "preview", "--subscriber", "P@example.org"]
        env = {"PATH": "/usr/bin:/bin", "LUPUS_ALERTS_SECRET": SECRET}
        r = subprocess.run([*args, "--out", str(out)], capture_output=True, text=True, env=env, timeout=60)
        assert r.returncode == 0, r.stderr
        assert "Preview me" in out.read_text(encoding="utf-8")
        assert "1 new paper" in r.stderr
        r = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60)
        assert r.returncode == 0 and "Preview me" in r.stdout
        assert subs.get(engine, sub.id) == sub  # cursors untouched
        with engine.connect() as c:
            assert c.execute(sa.select(sa.func.count()).select_from(store.deliveries)).scalar() == 0
    finally:
        engine.dispose()
