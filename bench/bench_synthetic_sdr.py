"""Synthetic SDR files: time to write one, satpy-loadable (ours) vs the h5py-only layout before.

The test suite, the demo and the benchmarks write thousands of synthetic files (the
compressed-day system test alone 1,200), so the satpy-loadable layout must stay cheap.
The peer is the previous ``synthetic_sdr.py`` (a few small arrays that satpy refused),
taken from git (``PEER_REVISION``) and run in the same process. With satpy installed it
also times the reference worker's quick-look of a 3-granule task per product.

    python3 bench/bench_synthetic_sdr.py
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import machine, median, write_section  # noqa: E402

from avoviirscollector.standins import synthetic_scene, synthetic_sdr  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
#: The last commit with the h5py-only synthetic_sdr.py.
PEER_REVISION = "7cdf900"
PEER_PATH = "avoviirscollector/standins/synthetic_sdr.py"
SIZES = (16_384, 80_000, 262_144)
GRANULES = 6
RUNS = 5
START = dt.datetime(2026, 7, 1, 22, 0, 0)


def peer_module():
    """The previous synthetic_sdr, from git; None outside a clone."""
    try:
        source = subprocess.run(
            ["git", "-C", str(REPO), "show", f"{PEER_REVISION}:{PEER_PATH}"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return None
    path = Path(tempfile.mkdtemp()) / "synthetic_sdr_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("synthetic_sdr_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def one_run_ms(module, size: int, start: dt.datetime) -> float:
    """ms per file of one make_pass of GRANULES granules of every segment."""
    with tempfile.TemporaryDirectory() as directory:
        began = time.perf_counter()
        paths = module.make_pass(directory, "npp", start, granules=GRANULES, size=size)
        return (time.perf_counter() - began) / len(paths) * 1000


def per_file_ms(peer, size: int, offset_hours: int) -> tuple[float, float]:
    """Median ms per file, ours and the peer's, runs interleaved so both see the same load."""
    ours, before = [], []
    for run in range(RUNS):
        start = START + dt.timedelta(hours=offset_hours, days=run)
        ours.append(one_run_ms(synthetic_sdr, size, start))
        if peer is not None:
            before.append(one_run_ms(peer, size, start + dt.timedelta(minutes=30)))
    return median(ours), median(before) if before else float("nan")


def quicklook_seconds() -> dict[str, float]:
    """Seconds per product for the reference worker's PNG of a 3-granule task (satpy)."""
    if importlib.util.find_spec("satpy") is None:
        return {}
    from avoviirscollector.worker import quicklook
    from avoviirscollector.worker.quicklook_rules import PRODUCTS

    segments = {"tir": ("GITCO", "SVI05"), "mir": ("GITCO", "SVI04"),
                "btd": ("GMTCO", "SVM15", "SVM16"),
                "vis": ("GMTCO", "GITCO", "SVM03", "SVM04", "SVM05", "SVI01")}  # fmt: skip
    quicklook.require_satpy()
    timings = {}
    with tempfile.TemporaryDirectory() as directory:
        paths = synthetic_sdr.make_pass(directory, "j01", START, granules=3, size=0)
        for product in PRODUCTS:
            files = [str(p) for p in paths if p.name[:5] in segments[product]]
            runs = []
            for _ in range(RUNS):
                made = quicklook.make(product, files, Path(directory) / "out")
                runs.append(made.load_seconds + made.write_seconds)
            timings[product] = median(runs)
    return timings


def main() -> int:
    load = os.getloadavg()[0]
    peer = peer_module()
    rows = []
    for index, size in enumerate(SIZES):
        ours, before = per_file_ms(peer, size, index)
        rows.append(f"| {size:,} | {ours:.2f} | {before:.2f} | {ours / before:.2f} |")
    layouts = ", ".join(f"{s} {synthetic_sdr.layout_size(s) / 1000:.0f} kB"
                        for s in ("GMTCO", "GITCO", "SVM15", "SVI05"))  # fmt: skip
    rows_m, cols_m = synthetic_scene.shape("M")
    rows_i, cols_i = synthetic_scene.shape("I")
    quick = quicklook_seconds()
    quick_lines = (
        "Reference worker, a 3-granule task of NOAA-20 (load with satpy + write the PNG, "
        f"median of {RUNS}, satpy imported beforehand): "
        + ", ".join(f"{p} {s:.2f} s" for p, s in quick.items())
        if quick
        else "(satpy not installed: no quick-look timing)"
    )
    markdown = f"""
## Synthetic SDR files: ms to write one, satpy-loadable vs the layout before

Machine: {machine()}, load average {load:.1f} when it began
(other jobs share it: compare the ratios, not the milliseconds). `make_pass` of {GRANULES}
granules x 10 segments (GMTCO, SVM03-05, SVM15-16, GITCO, SVI01, SVI04, SVI05) into a
temporary directory, per file, median of {RUNS} runs, for three `size=` values. Ours writes
the CSPP layout satpy's `viirs_sdr` reader loads ({rows_m} x {cols_m} M-band and
{rows_i} x {cols_i} I-band pixels a granule, uint16 bands with factors and radiances, float32
geolocation with the four angles; unpadded: {layouts}); the peer is the previous
`synthetic_sdr.py` (git {PEER_REVISION}: 16 x 32 random arrays, which satpy refused). A file
is never smaller than its layout, so at 16,384 bytes ours writes bigger files than asked.

| size= (bytes) | ours ms/file | before ms/file | ours/before |
| ---: | ---: | ---: | ---: |
{chr(10).join(rows)}

{quick_lines}.

Reproduce: `python3 bench/bench_synthetic_sdr.py` (or `python3 bench/run_all.py synthetic_sdr`).
"""
    write_section("synthetic_sdr", markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
