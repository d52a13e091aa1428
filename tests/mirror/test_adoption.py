"""The adoption's file operations, in-process: a held lock, the quarantine's record."""

from __future__ import annotations

import fcntl
import json
import os

from avoviirscollector.mirror import adoption


def test_a_lock_some_process_still_holds_is_kept_and_said_so(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    held, stale = tmp / "viirs-moderate-snpp.lock", tmp / "viirs-imagery-snpp.lock"
    held.write_text("4711\n")
    stale.write_text("4712\n")
    fd = os.open(held, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # the original, still running on this volume
    try:
        lines = adoption.remove_original_leftovers(tmp)
    finally:
        os.close(fd)
    assert held.exists() and not stale.exists()
    assert any("is the original collector still running" in line for line in lines), lines


def test_quarantine_keeps_the_bytes_and_records_why_and_a_second_one_keeps_both(tmp_path):
    sdr, quarantine = tmp_path / "sdr", tmp_path / "quarantine"
    sdr.mkdir()
    bad = sdr / "SVI05_npp_x.h5"
    for content in (b"first", b"second"):
        bad.write_bytes(content)
        os.utime(bad, (1_000_000, 1_000_000))
        target = adoption.quarantine(bad, quarantine, {"result": "bad-md5", "reason": "x"})
        assert target.read_bytes() == content and not bad.exists()
    assert sorted(p.name for p in quarantine.iterdir()) == [
        "SVI05_npp_x.h5",
        "SVI05_npp_x.h5.1",
        "SVI05_npp_x.h5.1.json",
        "SVI05_npp_x.h5.json",
    ]
    record = json.loads((quarantine / "SVI05_npp_x.h5.json").read_text())
    assert record["result"] == "bad-md5" and record["original_mtime"].startswith("1970-01-12")
