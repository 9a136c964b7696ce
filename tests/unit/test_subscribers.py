"""Subscriber CRUD, validation and CSV import/export, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from lupus_alerts import delivery, store
from lupus_alerts import subscribers as subs


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[sa.Engine]:
    """For checks that fail before any SQL runs: one database is enough."""
    store.upgrade(sqlite_url)
    eng = store.make_engine(sqlite_url)
    yield eng
    eng.dispose()


def test_add_lowercases_email_and_stores_every_field(engine: sa.Engine):
    s = subs.add(
        engine,
        email="  Ada.Lovelace@Example.ORG ",
        name="Ada",
        topics=["Nephrology", "dermatology"],
        frequency="weekly",
        weekday="fri",
        max_papers=20,
        send_when_empty=True,
    )
    again = subs.get(engine, "ADA.LOVELACE@example.org")
    assert again == s
    assert s.email == "ada.lovelace@example.org"
    assert s.topics == frozenset({"nephrology", "dermatology"})
    assert (s.frequency, s.weekday, s.max_papers, s.send_when_empty, s.status) == (
        "weekly",
        4,
        20,
        True,
        "active",
    )
    assert subs.get(engine, s.id) == s


def test_all_topics_is_stored_as_the_flag_not_as_rows(engine: sa.Engine):
    s = subs.add(engine, email="all@example.org", topics="all")
    assert s.topics is None
    with engine.connect() as c:
        assert c.execute(sa.select(store.subscribers.c.all_topics)).scalar() is True
        assert c.execute(sa.select(sa.func.count()).select_from(store.subscriber_topics)).scalar() == 0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"email": "not-an-address"}, "email"),
        ({"email": "a@b@example.org"}, "email"),
        ({"email": "x@example.org", "topics": ["nephrology", "cardio"]}, "topics"),
        ({"email": "x@example.org", "topics": []}, "topics"),
        ({"email": "x@example.org", "topics": ["all", "nephrology"]}, "topics"),
        ({"email": "x@example.org", "frequency": "hourly"}, "frequency"),
        ({"email": "x@example.org", "frequency": "weekly"}, "weekday"),
        ({"email": "x@example.org", "frequency": "daily", "weekday": 2}, "weekday"),
        ({"email": "x@example.org", "frequency": "weekly", "weekday": 7}, "weekday"),
        ({"email": "x@example.org", "max_papers": 0}, "max_papers"),
    ],
)
def test_invalid_fields_are_rejected_naming_the_field(sqlite_engine: sa.Engine, kwargs, field):
    with pytest.raises(subs.InvalidSubscriber, match=rf"^{field}:"):
        subs.add(sqlite_engine, **kwargs)
    assert subs.list_subscribers(sqlite_engine) == []


def test_duplicate_email_differing_only_in_case_is_refused(engine: sa.Engine):
    subs.add(engine, email="dup@example.org")
    with pytest.raises(subs.SubscriberExists):
        subs.add(engine, email="DUP@example.org")


def test_get_unknown_subscriber_raises_not_found(engine: sa.Engine):
    with pytest.raises(subs.SubscriberNotFound):
        subs.get(engine, "nobody@example.org")
    with pytest.raises(subs.SubscriberNotFound):
        subs.get(engine, 404)


def test_update_changes_only_given_fields_and_daily_drops_weekday(engine: sa.Engine):
    s = subs.add(engine, email="u@example.org", name="U", topics="nephrology", frequency="weekly", weekday=0)
    s2 = subs.set_frequency(engine, s.id, "daily")
    assert (s2.frequency, s2.weekday, s2.name, s2.topics) == ("daily", None, "U", frozenset({"nephrology"}))
    s3 = subs.set_topics(engine, "u@example.org", ["pregnancy", "pediatrics"])
    assert s3.topics == frozenset({"pregnancy", "pediatrics"})
    s4 = subs.set_topics(engine, s.id, None)
    assert s4.topics is None
    with pytest.raises(subs.InvalidSubscriber):
        subs.update(engine, s.id, frequency="weekly")  # no weekday stored or given
    assert subs.get(engine, s.id).frequency == "daily"


def test_reactivating_a_bounced_subscriber_resets_failures(engine: sa.Engine):
    s = subs.add(engine, email="b@example.org")
    with engine.begin() as c:
        c.execute(sa.update(store.subscribers).values(permanent_failures=3, status="bounced"))
    assert subs.get(engine, s.id).permanent_failures == 3
    s2 = subs.set_status(engine, s.id, "active")
    assert (s2.status, s2.permanent_failures) == ("active", 0)


def test_remove_unsubscribes_by_default_and_delete_erases(engine: sa.Engine):
    a = subs.add(engine, email="a@example.org", topics="nephrology")
    b = subs.add(engine, email="b@example.org", topics="nephrology")
    subs.remove(engine, a.email)
    assert subs.get(engine, a.id).status == "unsubscribed"
    assert [s.email for s in subs.list_subscribers(engine, status="active")] == ["b@example.org"]
    subs.remove(engine, b.id, delete=True)
    with pytest.raises(subs.SubscriberNotFound):
        subs.get(engine, b.id)
    with engine.connect() as c:
        left = c.execute(sa.select(store.subscriber_topics.c.subscriber_id)).scalars().all()
    assert left == [a.id]


def _announce(engine: sa.Engine, n: int, *, update_no: int | None = None) -> None:
    now = store.utcnow()
    with engine.begin() as c:
        pid = c.execute(
            sa.insert(store.papers)
            .values(title=f"p{n}", record={}, first_seen_at=now, updated_at=now, is_lupus=True, announce_no=n)
            .returning(store.papers.c.id)
        ).scalar_one()
        if update_no is not None:
            c.execute(
                sa.insert(store.paper_updates).values(
                    paper_id=pid,
                    kind="erratum_in",
                    notice_key="x",
                    notice={},
                    detected_at=now,
                    update_no=update_no,
                )
            )


def test_new_subscriber_starts_at_the_current_announcement_unless_from_beginning(engine: sa.Engine):
    _announce(engine, 7, update_no=3)
    now_sub = subs.add(engine, email="new@example.org")
    old_sub = subs.add(engine, email="back@example.org", from_beginning=True)
    assert (now_sub.cursor, now_sub.update_cursor) == (7, 3)
    assert (old_sub.cursor, old_sub.update_cursor) == (0, 0)


def test_advance_cursors_never_moves_backwards(engine: sa.Engine):
    s = subs.add(engine, email="c@example.org", from_beginning=True)
    with engine.begin() as c:
        delivery.advance_cursors(c, s.id, cursor=10, update_cursor=4, now=store.utcnow())
    with engine.begin() as c:
        delivery.advance_cursors(c, s.id, cursor=6, update_cursor=9, now=store.utcnow())
    s2 = subs.get(engine, s.id)
    assert (s2.cursor, s2.update_cursor) == (10, 9)


# --- CSV ---------------------------------------------------------------------------------------

BAD_CSV = (
    "email,name,topics,frequency,weekday,max_papers\n"  # line 1
    "good1@example.org,Good One,nephrology;dermatology,daily,,10\n"  # 2
    '"multi@example.org","Name with\na newline",all,daily,,\n'  # 3-4: one record on two lines, bad
    "broken-address,Bad,nephrology,daily,,\n"  # 5
    "ok2@example.org,,all,weekly,monday,\n"  # 6
    "ok3@example.org,,kidneys,daily,,\n"  # 7
    "GOOD1@example.org,dup,all,daily,,\n"  # 8
    "toomany@example.org,a,all,daily,,5,extra\n"  # 9
    "w@example.org,,all,weekly,,\n"  # 10
)


def test_import_reports_each_bad_row_with_its_line_and_imports_nothing(engine: sa.Engine, tmp_path: Path):
    f = tmp_path / "subs.csv"
    f.write_text(BAD_CSV, encoding="utf-8")
    report = subs.import_csv(engine, f)
    lines = {p.line: p.reason for p in report.problems}
    assert sorted(lines) == [3, 5, 7, 8, 9, 10]
    assert lines[3] == "name: contains the control character U+000A"  # reported at its first line
    assert lines[5].startswith("email:")
    assert "kidneys" in lines[7]
    assert "duplicate of line 2" in lines[8]
    assert "expected 6 fields, found 7" in lines[9]
    assert lines[10].startswith("weekday:")
    assert report.imported == 0
    assert subs.list_subscribers(engine) == []


def test_import_with_skip_invalid_imports_the_good_rows(engine: sa.Engine, tmp_path: Path):
    f = tmp_path / "subs.csv"
    f.write_text(BAD_CSV, encoding="utf-8")
    report = subs.import_csv(engine, f, skip_invalid=True)
    assert report.imported == 2 and report.skipped == 6 and len(report.problems) == 6
    got = {s.email: s for s in subs.list_subscribers(engine)}
    assert sorted(got) == ["good1@example.org", "ok2@example.org"]
    assert got["good1@example.org"].max_papers == 10
    assert (got["ok2@example.org"].frequency, got["ok2@example.org"].weekday) == ("weekly", 0)


def test_import_refuses_an_email_already_subscribed(engine: sa.Engine):
    subs.add(engine, email="here@example.org")
    report = subs.import_csv(engine, io.StringIO("email\nnew@example.org\nHere@example.org\n"))
    assert [(p.line, p.email) for p in report.problems] == [(3, "here@example.org")]
    assert [s.email for s in subs.list_subscribers(engine)] == ["here@example.org"]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "mail,name\nx@example.org,X\n",
        "email,colour\nx@example.org,red\n",
        "email,email\na@x.org,b@x.org\n",
    ],
)
def test_import_rejects_a_bad_header_at_line_1(sqlite_engine: sa.Engine, text):
    report = subs.import_csv(sqlite_engine, io.StringIO(text))
    assert [p.line for p in report.problems] == [1]
    assert subs.list_subscribers(sqlite_engine) == []


def test_import_accepts_a_utf8_bom_and_blank_lines(engine: sa.Engine, tmp_path: Path):
    f = tmp_path / "bom.csv"
    f.write_bytes("\ufeffemail,name\n\nzoë@example.org,Zoë\n".encode())
    report = subs.import_csv(engine, f)
    assert report.ok and report.imported == 1
    assert subs.get(engine, "zoë@example.org").name == "Zoë"


def test_export_then_import_round_trips(engine: sa.Engine, sqlite_url: str, tmp_path: Path):
    subs.add(engine, email="a@example.org", name="A, with comma", topics=["infection", "nephrology"])
    subs.add(engine, email="b@example.org", frequency="weekly", weekday=6, max_papers=5, send_when_empty=True)
    subs.add(engine, email="c@example.org", status="bounced")
    out = tmp_path / "export.csv"
    assert subs.export_csv(engine, out) == 3

    other_url = f"sqlite:///{tmp_path / 'other.db'}"
    store.upgrade(other_url)
    other = store.make_engine(other_url)
    try:
        report = subs.import_csv(other, out)
        assert report.ok and report.imported == 3
        again = io.StringIO()
        subs.export_csv(other, again)
        strip = [
            (s.email, s.name, s.topics, s.frequency, s.weekday, s.max_papers, s.send_when_empty, s.status)
            for s in subs.list_subscribers(other)
        ]
        orig = [
            (s.email, s.name, s.topics, s.frequency, s.weekday, s.max_papers, s.send_when_empty, s.status)
            for s in subs.list_subscribers(engine)
        ]
    finally:
        other.dispose()
    assert again.getvalue() == out.read_text(encoding="utf-8")
    assert strip == orig


def _cli(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("lupus-alerts")
    return subprocess.run(
        [str(exe), "--config", str(cfg), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_cli_import_prints_line_numbers_and_exits_1(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    store.upgrade(url)
    cfg = tmp_path / "lupus-alerts.yaml"
    cfg.write_text(f"store_url: {url}\n", encoding="utf-8")
    f = tmp_path / "in.csv"
    f.write_text("email,topics\nok@example.org,all\nnope,all\n", encoding="utf-8")
    r = _cli(cfg, "subscribers", "import", str(f))
    assert r.returncode == 1
    assert "line 3 (nope): email:" in r.stderr and "nothing imported" in r.stderr
    assert _cli(cfg, "subscribers", "import", str(f), "--skip-invalid").returncode == 0
    r = _cli(cfg, "subscribers", "export")
    assert r.returncode == 0
    assert r.stdout.splitlines()[1:] == ["ok@example.org,,all,daily,,50,no,active"]
