"""Run every benchmark (`make bench` / `python -m bench [NAME ...]`), each in its own process.

Each `bench/bench_*.py` module has a `main()` that prints its figures and rewrites its section of
docs/benchmarks.md. Separate processes keep one benchmark's memory out of another's figures.
The ones in SEPARATE run only when named (`make bench-scale` runs `executors`: it starts whole
Airflow deployments and takes several minutes).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

SEPARATE = {"executors"}


def main(argv: list[str]) -> int:
    here = Path(__file__).parent
    names = argv or sorted(
        name for p in here.glob("bench_*.py") if (name := p.stem.removeprefix("bench_")) not in SEPARATE
    )
    failed = []
    for name in names:
        print(f"== bench {name}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call([sys.executable, "-m", f"bench.bench_{name}"], cwd=here.parent)
        print(f"== bench {name}: exit {rc} in {time.perf_counter() - t0:.1f} s", flush=True)
        if rc:
            failed.append(name)
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
