"""The stalker's content check per file: the HDF5 signature (ours) vs opening it with h5py.

trollstalker checks every file that lands in sdr/ before publishing it (a zero-byte or
non-HDF5 file dropped in by hand is skipped with a warning). The check is on the hot
path of every file, so it must cost next to nothing; the peer is the full HDF5 check the
mirror runs after a download (``verify.check_hdf5``: h5py opens the file and lists its
root), timed on the same synthetic SDR files in the same run, files in the page cache.

    python3 bench/bench_sdr_check.py
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import machine, median, write_section  # noqa: E402

from avoviirscollector import verify  # noqa: E402
from avoviirscollector.pipeline.recent_files import content_problem  # noqa: E402
from avoviirscollector.standins.synthetic_sdr import ALL_SEGMENTS, make_sdr_file  # noqa: E402

FILES = 40
RUNS = 5


def per_file_us(check, paths) -> float:
    """Median over RUNS of the mean microseconds per file."""
    runs = []
    for _ in range(RUNS):
        began = time.perf_counter()
        for path in paths:
            check(path)
        runs.append((time.perf_counter() - began) / len(paths) * 1e6)
    return median(runs)


def main() -> int:
    with tempfile.TemporaryDirectory() as directory:
        start = dt.datetime(2026, 7, 1, 22, 0, 0)
        paths = []
        for index in range(FILES // len(ALL_SEGMENTS)):
            moment = start + dt.timedelta(seconds=86 * index)
            paths += [
                make_sdr_file(directory, segment, "j01", moment, size=262_144)
                for segment in ALL_SEGMENTS
            ]
        assert all(content_problem(p) is None for p in paths)
        ours = per_file_us(content_problem, paths)
        peer = per_file_us(verify.check_hdf5, paths)
    ratio = peer / ours
    markdown = f"""## The stalker's check of each file (signature vs h5py)

Machine: {machine()}. {len(paths)} synthetic SDR files of 256 kB, in the page cache,
median of {RUNS} runs. Reproduce: `python3 bench/bench_sdr_check.py`.

| check | µs per file |
|---|---|
| HDF5 signature and size (`recent_files.content_problem`, trollstalker's) | {ours:.0f} |
| h5py open and list the root (`verify.check_hdf5`, the mirror's) | {peer:.0f} |

The signature check costs {ratio:.0f}× less than an h5py open, so trollstalker runs it on
every file; it catches what a hand-dropped file usually is (empty, or not HDF5 at all). A
truncated HDF5 file passes it; the mirror's full check (MD5 and h5py) and verify-sdr catch that.
"""
    write_section("sdr_check", markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
