"""`make mutation`: mutmut over the functions that carry the project's guarantees.

mutmut (pinned in requirements.txt) mutates one small thing at a time (a `<` becomes `<=`, a
constant changes, a call argument goes) and runs the tests that reach the mutated function;
a mutant that no test notices is a guarantee no test defends. It looks for the package under
`src/`, and this project keeps it under `include/`, so the run happens in a staging copy
(`.mutation/`, git-ignored): `src/lupus_alerts` and `tests/`, with a `pyproject.toml` that
configures mutmut. The staging copy keeps file times, so mutmut's cache carries over between
runs as long as the sources do not change.

    python scripts/mutation.py [--module doi --module ratelimit ...] [--max-children N]

Prints the kill rate per module (killed / mutants, with the surviving mutants' diffs) and
writes it to `.mutation/report.md`; docs/testing.md records the figures and explains every
survivor. Not part of `make test`: it runs the targeted tests once per mutant (minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STAGE = REPO / ".mutation"


@dataclass(frozen=True)
class Target:
    """A module and the functions of it whose guarantees the tests must defend."""

    module: str  # dotted, under lupus_alerts ("delivery.ledger" is delivery/ledger.py)
    functions: tuple[str, ...]  # names of top-level functions; ("*",) for all of them
    tests: tuple[str, ...]  # test files that exercise them (the stats run is limited to these)

    @property
    def path(self) -> str:
        """The module's file in the staging copy."""
        return f"src/lupus_alerts/{self.module.replace('.', '/')}.py"

    def patterns(self) -> list[str]:
        # mutmut names a mutant "<module>.x_<function>__mutmut_<n>", or for a method
        # "<module>.xǁ<Class>ǁ<method>__mutmut_<n>"
        if self.functions == ("*",):
            return [f"lupus_alerts.{self.module}.*"]
        out = []
        for f in self.functions:
            cls, _, meth = f.rpartition(".")
            name = f"xǁ{cls}ǁ{meth}" if cls else f"x_{f}"
            out.append(f"lupus_alerts.{self.module}.{name}__mutmut_*")
        return out


TARGETS = {
    "doi": Target("doi", ("*",), ("tests/unit/test_doi.py", "tests/unit/test_feeds_parse.py")),
    "ratelimit": Target("ratelimit", ("*",), ("tests/unit/test_ratelimit.py",)),
    # The token tests and the security tests about links (the whole security folder per
    # mutant took an hour and a half for this module alone).
    "tokens": Target(
        "tokens",
        ("*",),
        (
            "tests/unit/test_tokens.py",
            "tests/security/test_links_cannot_be_forged_or_triggered.py",
            "tests/security/test_links_never_act_on_another_subscriber.py",
            "tests/security/test_tokens_stay_out_of_logs_pages_and_redirects.py",
        ),
    ),
    # The ledger's claim, finish and cursor steps (docs/delivery.md).
    "delivery": Target(
        "delivery.ledger",
        (
            "_claim",
            "_claim_stmt",
            "_finish",
            "_finish_stmt",
            "_advance",
            "_bounce_stmt",
            "_rendered_row",
            "_resolve_crashed",
        ),
        ("tests/integration/test_delivery.py", "tests/security"),
    ),
    # Announcement numbering: the numbering step and the counter it draws from.
    "announce": Target("announce", ("_number",), ("tests/integration/test_upsert_and_announce.py",)),
    "store": Target(
        "store",
        ("next_numbers", "counter_value", "high_water_marks"),
        ("tests/integration/test_upsert_and_announce.py", "tests/unit/test_store_schema.py"),
    ),
}


# Files at the repository root that the targeted tests read.
ALSO_COPY = ("lupus-alerts.yaml", "config", "docker-compose.yaml")


def _stage(targets: list[Target]) -> None:
    """Copy the package and the tests into the staging directory, keeping file times.

    The configuration names every target whichever are run, so that the mutants and mutmut's
    test statistics stay the same between runs of different modules (and its cache valid).
    """
    STAGE.mkdir(exist_ok=True)
    src = STAGE / "src" / "lupus_alerts"
    shutil.copytree(REPO / "include" / "lupus_alerts", src, dirs_exist_ok=True)
    shutil.copytree(REPO / "tests", STAGE / "tests", dirs_exist_ok=True)
    # Tests read the shipped configuration from the repository root (`demo.REPO`), which in
    # mutmut's copy is `mutants/`.
    for name in ALSO_COPY:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, STAGE / name, dirs_exist_ok=True)
        else:
            shutil.copy2(REPO / name, STAGE / name)
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    pytest_opts = pyproject["tool"]["pytest"]["ini_options"]
    tests = sorted({t for target in targets for t in target.tests if (REPO / t).exists()})
    lines = [
        "[tool.pytest.ini_options]",
        f"addopts = {json.dumps(pytest_opts.get('addopts', ''))}",
        f"timeout = {int(pytest_opts.get('timeout', 300))}",
        f"markers = {json.dumps(pytest_opts.get('markers', []))}",
        f"filterwarnings = {json.dumps(pytest_opts.get('filterwarnings', []))}",
        "",
        "[tool.mutmut]",
        'source_paths = ["src"]',
        f"also_copy = {json.dumps(list(ALSO_COPY))}",
        f"only_mutate = {json.dumps([t.path for t in targets])}",
        # Airflow-starting tests run the installed package in subprocesses: nothing to kill there.
        f"pytest_add_cli_args_test_selection = {json.dumps([*tests, '-m', 'not airflow'])}",
        'pytest_add_cli_args = ["-p", "no:randomly", "-q"]',
        "",
    ]
    (STAGE / "pyproject.toml").write_text("\n".join(lines), encoding="utf-8")
    conftest = STAGE / "tests" / "conftest.py"
    conftest.write_text(
        (REPO / "tests" / "conftest.py").read_text(encoding="utf-8") + FRESH_STATEMENTS, encoding="utf-8"
    )


# mutmut runs each mutant in a process forked from one that already ran the code once: a
# statement built then and kept for reuse would be the unmutated one. The ledger keeps its
# statements in `delivery.ledger._STATEMENTS`; emptying it before each test rebuilds them from the
# mutated builders.
FRESH_STATEMENTS = """

@pytest.fixture(autouse=True)
def _mutation_rebuilds_cached_statements():
    from lupus_alerts.delivery import ledger

    ledger._STATEMENTS.clear()
    yield
"""


def _mutmut(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    exe = Path(sys.executable).with_name("mutmut")
    return subprocess.run([str(exe), *args], cwd=STAGE, env=env, text=True, capture_output=True)


def _results(targets: list[Target]) -> dict[str, Counter[str]]:
    """status counts per module, from mutmut's per-file records, for the targeted functions."""
    from fnmatch import fnmatch

    from mutmut.stats import status_by_exit_code

    out: dict[str, Counter[str]] = {}
    for t in targets:
        meta = STAGE / "mutants" / f"{t.path}.meta"
        counts: Counter[str] = Counter()
        if meta.exists():
            data = json.loads(meta.read_text(encoding="utf-8"))
            for key, code in data.get("exit_code_by_key", {}).items():
                if any(fnmatch(key, p) for p in t.patterns()):
                    counts[status_by_exit_code[code]] += 1
        out[t.module] = counts
    return out


def _survivors(targets: list[Target]) -> list[str]:
    from fnmatch import fnmatch

    from mutmut.stats import status_by_exit_code

    names = []
    for t in targets:
        meta = STAGE / "mutants" / f"{t.path}.meta"
        if not meta.exists():
            continue
        data = json.loads(meta.read_text(encoding="utf-8"))
        for key, code in data.get("exit_code_by_key", {}).items():
            if status_by_exit_code[code] not in ("killed", "caught by type check") and any(
                fnmatch(key, p) for p in t.patterns()
            ):
                names.append(key)
    return sorted(names)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--module", action="append", choices=sorted(TARGETS), help="default: all of them")
    ap.add_argument("--max-children", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    ap.add_argument("--fresh", action="store_true", help="forget earlier results (delete .mutation/)")
    ap.add_argument(
        "--function",
        action="append",
        help="only these of the modules' target functions (a re-run of the ones new tests were written for)",
    )
    args = ap.parse_args(argv)
    targets = [TARGETS[m] for m in (args.module or sorted(TARGETS))]
    if args.function:
        unknown = set(args.function) - {f for t in targets for f in t.functions}
        if unknown:
            ap.error(f"not a target function of the chosen modules: {', '.join(sorted(unknown))}")
        targets = [
            Target(t.module, tuple(f for f in t.functions if f in args.function), t.tests)
            for t in targets
            if any(f in args.function for f in t.functions)
        ]
    if args.fresh and STAGE.exists():
        shutil.rmtree(STAGE)
    _stage(list(TARGETS.values()))
    patterns = [p for t in targets for p in t.patterns()]
    run = _mutmut("run", "--max-children", str(args.max_children), *patterns)
    (STAGE / "mutmut-run.log").write_text(run.stdout + run.stderr, encoding="utf-8")
    if run.returncode != 0:
        print(run.stdout[-4000:], run.stderr[-4000:], sep="\n")
        print(f"mutmut run failed ({run.returncode}); log in {STAGE / 'mutmut-run.log'}")
        return run.returncode
    results = _results(targets)
    lines = [
        "| module | functions | mutants | killed | survived | other | kill rate |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in targets:
        c = results[t.module]
        total = sum(c.values())
        killed = c["killed"] + c["caught by type check"]
        other = total - killed - c["survived"]
        rate = f"{100 * killed / total:.1f}%" if total else "n/a"
        funcs = ", ".join(t.functions) if t.functions != ("*",) else "all"
        lines.append(f"| {t.module} | {funcs} | {total} | {killed} | {c['survived']} | {other} | {rate} |")
    report = ["# Mutation run", "", *lines, "", "## Mutants not killed", ""]
    for name in _survivors(targets):
        shown = _mutmut("show", name)
        report += [f"### {name}", "", "```diff", shown.stdout.strip(), "```", ""]
    text = "\n".join(report)
    (STAGE / "report.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
