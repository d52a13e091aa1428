"""Run every benchmark in bench/ and rewrite docs/benchmarks.md.

Each ``bench_*.py`` measures one part against its peer in the same run and
replaces its own section of the report; this runs them one after the other so
they never compete for the machine's two cores.

    python3 bench/run_all.py            # all
    python3 bench/run_all.py broker     # only bench_broker.py
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    """Run the selected benchmarks; exit non-zero if any failed."""
    scripts = sorted(BENCH_DIR.glob("bench_*.py"))
    if argv:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in argv]
    failed = []
    for script in scripts:
        started = time.monotonic()
        print(f"== {script.name}", flush=True)
        result = subprocess.run([sys.executable, str(script)], check=False)
        print(f"== {script.name}: exit {result.returncode}, {time.monotonic() - started:.0f} s")
        if result.returncode:
            failed.append(script.name)
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
