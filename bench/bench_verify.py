"""verify-sdr benchmark: how long the first start's check of AVO's volume takes.

    python3 bench/bench_verify.py [--gigabytes 2] [--runs 3]

A set of synthetic SDR files (12 MB each, the mean size at AVO: about 250 GB in 21,000
files for a week) is served by the GINA stand-in and placed in sdr/. Each run first
evicts the files from this machine's page cache (``posix_fadvise(DONTNEED)`` per file,
so no other process's cache is touched), then checks all of them:

- ours: ``viirscollector verify-sdr --restart`` as a whole process (GINA's listing, the
  streamed MD5, the HDF5 open, the journal line fsynced per file), rate limit lifted
  (``--rate 100000``), and once with the default limit (VIIRS_VERIFY_RATE_MB, 50 MB/s)
  to show that it holds;
- the peer, in the same run on the same files: ``md5sum`` (coreutils), the plain read
  and hash every check needs at the least.

The week's time is scaled by bytes from the set (same mean file size). MB = 10^6 bytes.
Writes the ``verify`` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import machine, median, write_section  # noqa: E402

from avoviirscollector.standins.gina import GinaStandin  # noqa: E402
from avoviirscollector.standins.synthetic_sdr import ALL_SEGMENTS, make_sdr_file  # noqa: E402

MB = 1e6
FILE_SIZE = 12_000_000
AVO_FILES, AVO_BYTES = 21_000, 250e9
DEFAULT_RATE = 50
VERIFY = [sys.executable, "-m", "avoviirscollector.cli", "verify-sdr"]


def make_set(gina_dir: Path, sdr: Path, gigabytes: float) -> list[Path]:
    """Files of consecutive granules (every segment), written once and copied into sdr/."""
    count = max(1, int(gigabytes * 1e9 // FILE_SIZE))
    start = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0) - dt.timedelta(hours=2)
    paths = []
    for index in range(count):
        granule = start + dt.timedelta(seconds=86 * (index // len(ALL_SEGMENTS)))
        segment = ALL_SEGMENTS[index % len(ALL_SEGMENTS)]
        made = make_sdr_file(gina_dir, segment, "npp", granule, orbit=70000, size=FILE_SIZE)
        copy = sdr / made.name
        shutil.copyfile(made, copy)
        paths.append(copy)
    return paths


def evict(paths: list[Path]) -> None:
    """Drop these files' pages from the page cache (written back first)."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def run_ours(base: Path, gina: GinaStandin, rate: float) -> float:
    env = {**os.environ, "VIIRS_BASE_DIR": str(base), "GINA_URL": gina.url}
    command = [*VERIFY, "--restart", "--rate", str(rate), "--minutes", "1440"]
    started = time.monotonic()
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    if result.returncode or not re.search(r"results ok \d+;", result.stderr):
        raise SystemExit(f"verify-sdr failed:\n{result.stderr[-3000:]}")
    if "WARNING verify-sdr: quarantined" in result.stderr:
        raise SystemExit("verify-sdr quarantined a good file:\n" + result.stderr[-3000:])
    return seconds


def run_md5sum(paths: list[Path]) -> float:
    started = time.monotonic()
    subprocess.run(["md5sum", *map(str, paths)], check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - started


def measure(base: Path, gina: GinaStandin, paths: list[Path], runs: int) -> dict:
    times: dict[str, list[float]] = {"ours": [], "md5sum": []}
    for _ in range(runs):
        evict(paths)
        times["ours"].append(run_ours(base, gina, 100000))
        evict(paths)
        times["md5sum"].append(run_md5sum(paths))
    evict(paths)
    times["limited"] = [run_ours(base, gina, DEFAULT_RATE)]
    figures = {name: median(values) for name, values in times.items()}
    figures["load"] = os.getloadavg()  # the machine is shared: say how busy it was
    return figures


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def report(figures: dict, nbytes: int, files: int, runs: int, took: float) -> str:
    figures = dict(figures)
    load = ", ".join(f"{value:.0f}" for value in figures.pop("load", ()))
    rate = {name: nbytes / MB / seconds for name, seconds in figures.items()}
    week = {name: AVO_BYTES / MB / rate[name] for name in rate}
    rows = [
        ("**ours: verify-sdr, no rate limit**", "ours"),
        ("peer: md5sum over the same files", "md5sum"),
        (f"ours with the default limit ({DEFAULT_RATE} MB/s)", "limited"),
    ]
    table = ["| | seconds | MB/s | a week at AVO (250 GB) |", "|---|---|---|---|"]
    for label, key in rows:
        table.append(f"| {label} | {figures[key]:.1f} | {rate[key]:.0f} | {hours(week[key])} |")
    today = dt.date.today().isoformat()
    return "\n".join(
        [
            "## verify-sdr: checking the original's volume at the first start",
            "",
            f"Measured {today} on {machine()}; {files} files of {FILE_SIZE / MB:.0f} MB "
            f"({nbytes / 1e9:.2f} GB, AVO's mean file size), median of {runs} runs; each run "
            "starts with the files evicted from this machine's page cache (the virtual disk's "
            f"host may still cache them); load average {load} (1, 5, 15 min) at the end; "
            f"benchmark took {took:.0f} s.",
            "Reproduce: `python3 bench/bench_verify.py` (`--gigabytes G`, `--runs N`).",
            "",
            "ours: the whole `viirscollector verify-sdr --restart` process (GINA stand-in's "
            "listing, streamed MD5, HDF5 open, one fsynced journal line per file). Peer: "
            "`md5sum` over the same files in the same run. A week at AVO (about 21,000 files, "
            "250 GB) is scaled by bytes.",
            "",
            *table,
            "",
            f"ours / md5sum: {figures['ours'] / figures['md5sum']:.2f}x the time. With the "
            f"default limit the check of a week takes {hours(week['limited'])} "
            f"({rate['limited']:.0f} MB/s measured against {DEFAULT_RATE} asked), in runs of "
            "VIIRS_VERIFY_MINUTES (15) started every minute; the newest files come first, so "
            "bad files of the passes still inside GINA_BACKFILL_DAYS are found in the first "
            "minutes.",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gigabytes", type=float, default=2.0, help="size of the set")
    parser.add_argument("--runs", type=int, default=3, help="runs per client (median)")
    args = parser.parse_args(argv)
    began = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="bench-verify-"))
    try:
        gina_dir, base = work / "gina", work / "viirs"
        (base / "sdr").mkdir(parents=True)
        paths = make_set(gina_dir, base / "sdr", args.gigabytes)
        nbytes = sum(p.stat().st_size for p in paths)
        with GinaStandin(gina_dir) as gina:
            gina.scan()  # the stand-in hashes its files once, before any run is timed
            figures = measure(base, gina, paths, args.runs)
        markdown = report(figures, nbytes, len(paths), args.runs, time.monotonic() - began)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(markdown)
    write_section("verify", markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
