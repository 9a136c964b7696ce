"""The package's layout rules (docs/architecture.md): test-only code stays out of production."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "include" / "lupus_alerts"
# The demo (`make demo`, `make up`) runs the pipeline against the replay servers: it may use
# them. Nothing else that ships may.
MAY_IMPORT_TESTING = PACKAGE / "demo"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def _production_files() -> list[Path]:
    files = [p for p in PACKAGE.rglob("*.py") if "testing" not in p.relative_to(PACKAGE).parts]
    files += list((REPO / "dags").glob("*.py")) + list((REPO / "plugins").glob("*.py"))
    return [p for p in files if MAY_IMPORT_TESTING not in p.parents]


def test_production_code_never_imports_the_testing_subpackage() -> None:
    offenders = {
        str(p.relative_to(REPO)): sorted(n for n in _imports(p) if n.startswith("lupus_alerts.testing"))
        for p in _production_files()
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_exemption_names_the_demo_package_that_exists() -> None:
    # A renamed demo would otherwise turn the exemption into a silent no-op or a false failure.
    assert (MAY_IMPORT_TESTING / "__init__.py").is_file()
    assert MAY_IMPORT_TESTING not in _production_files()
    assert not any(MAY_IMPORT_TESTING in p.parents for p in _production_files())


def test_the_check_sees_an_import_of_the_testing_subpackage(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from lupus_alerts.testing.replay import ReplayServer\n", encoding="utf-8")
    assert "lupus_alerts.testing.replay" in _imports(probe)
    probe.write_text("from lupus_alerts import testing\n", encoding="utf-8")
    assert "lupus_alerts.testing" in _imports(probe)


def test_the_testing_subpackage_holds_the_replay_servers() -> None:
    assert {p.name for p in (PACKAGE / "testing").glob("*.py")} >= {
        "replay.py",
        "eutils_replay.py",
        "feeds_replay.py",
    }
    assert not any((PACKAGE / n).exists() for n in ("replay.py", "eutils_replay.py", "feeds_replay.py"))
