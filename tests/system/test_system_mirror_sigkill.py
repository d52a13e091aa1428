"""mirror_gina killed with SIGKILL at 10 moments of a download run: sdr/ holds only good files.

The collector runs under its real supervisord.conf with GINA_URL pointing at the
GINA stand-in (1 MB/s per connection), which serves 40 files of Suomi-NPP. Ten
runs of mirror_gina (the crontab's command) are killed at moments chosen by the
stand-in's counters, not by the clock: as it answers products.json, at the first
file request, at 5 % ... 60 % of the bytes still to fetch, and once every byte has
been served (verification and placement under way). After each kill every file in
sdr/ must have GINA's MD5 and open as HDF5; then one more run completes the set.
"""

from __future__ import annotations

import signal

import pytest
from system_helpers import (
    assert_sdr_holds_only_verified_files,
    run_mirror,
    start_mirror,
    wait_until,
)

from avoviirscollector.standins import synthetic_sdr

pytestmark = pytest.mark.system

#: Fractions of the bytes still missing at which a run is killed.
FRACTIONS = (0.05, 0.10, 0.20, 0.30, 0.40, 0.50, 0.60)


def test_sigkill_at_ten_moments_never_leaves_an_unverified_file_and_next_run_completes(
    gina, start_collector
):
    files = synthetic_sdr.make_pass(gina.directory, "npp", granules=4, size=250_000)
    sizes = {path.name: path.stat().st_size for path in files}
    gina.rate = 1e6
    collector = start_collector(gina=gina)
    moments = ["catalog", "first file request"] + [f"{f:.0%}" for f in FRACTIONS] + ["all served"]
    placed_after = []

    for moment in moments:
        missing = sum(
            size for name, size in sizes.items() if not (collector.sdr_dir / name).exists()
        )
        assert missing, f"nothing left to fetch before the kill {moment}"
        stats = gina.stats()
        mirror = start_mirror(collector)
        try:
            reach(gina, stats, moment, missing)
        finally:
            mirror.send_signal(signal.SIGKILL)
            mirror.wait(10)
        placed_after.append(len(assert_sdr_holds_only_verified_files(collector.sdr_dir, gina)))

    final = run_mirror(collector)
    assert final.returncode == 0, final.stderr[-2000:]
    assert sorted(assert_sdr_holds_only_verified_files(collector.sdr_dir, gina)) == sorted(sizes)
    assert "removed" in final.stderr and "temp file(s) of an interrupted run" in final.stderr
    leftovers = [p for p in (collector.base_dir / "tmp").rglob("*.part")]
    assert leftovers == []
    # Killed before anything was fetched, then ever later: placed files are never lost.
    assert placed_after[0] == 0 and placed_after == sorted(placed_after), placed_after


def reach(gina, before: dict, moment: str, missing: int) -> None:
    """Return when the stand-in's counters show ``moment`` of the run that just started."""
    if moment == "catalog":
        wait_until(
            lambda: gina.stats()["catalog_requests"] > before["catalog_requests"], 30, moment
        )
    elif moment == "first file request":
        wait_until(lambda: gina.stats()["file_requests"] > before["file_requests"], 30, moment)
    else:
        fraction = 1.0 if moment == "all served" else float(moment.rstrip("%")) / 100
        target = before["bytes_served"] + max(1, int(missing * fraction))
        assert gina.wait_for_bytes(target, 60), f"the stand-in never served {moment}"
