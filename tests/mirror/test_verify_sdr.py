"""verify-sdr against the GINA stand-in, on real files: what is quarantined, resumed, paced."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.bus import wait_until

from avoviirscollector import verify
from avoviirscollector.mirror import verify_sdr_rules as rules
from avoviirscollector.standins import synthetic_sdr
from avoviirscollector.standins.gina import GinaStandin

VERIFY = [sys.executable, "-m", "avoviirscollector.cli", "verify-sdr"]


def run_verify(base: Path, gina: GinaStandin, *args: str, **extra) -> subprocess.CompletedProcess:
    env = {**os.environ, "VIIRS_BASE_DIR": str(base), "GINA_URL": gina.url, **extra}
    return subprocess.run([*VERIFY, *args], env=env, capture_output=True, text=True, timeout=120)


def journal(base: Path) -> dict:
    path = base / "state" / "verify-sdr-done.jsonl"
    return rules.parse_done(path.read_text()) if path.exists() else {}


@pytest.fixture
def volume(tmp_path):
    """sdr/ as the original leaves it, and a GINA that lists what it should."""
    gina_dir, base = tmp_path / "gina", tmp_path / "viirs"
    sdr = base / "sdr"
    sdr.mkdir(parents=True)
    start = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0) - dt.timedelta(hours=3)
    served = synthetic_sdr.make_pass(gina_dir, "npp", start, granules=2, size=120_000)
    for path in served:
        shutil.copy2(path, sdr / path.name)
    truncated, zeros = served[0].name, served[3].name
    with open(sdr / truncated, "r+b") as stream:
        stream.truncate(50_000)
    (sdr / zeros).write_bytes(b"\0" * served[3].stat().st_size)  # a crash's zero-filled file
    old = start - dt.timedelta(days=2)
    unlisted = synthetic_sdr.make_pass(sdr, "j01", old, granules=1, segments=("GITCO", "SVI05"))
    with open(unlisted[1], "r+b") as stream:
        stream.truncate(30_000)
    with GinaStandin(gina_dir) as gina:
        yield {
            "base": base,
            "gina": gina,
            "served": [p.name for p in served],
            "bad": {truncated: "bad-md5", zeros: "bad-md5", unlisted[1].name: "not-hdf5"},
            "unlisted_good": unlisted[0].name,
        }


def test_first_scheduled_run_quarantines_bad_files_and_later_runs_do_nothing(volume):
    base, gina = volume["base"], volume["gina"]
    before = {p.name: verify.md5sum(p) for p in (base / "sdr").iterdir()}

    first = run_verify(base, gina, "--scheduled")

    assert first.returncode == 0, first.stderr
    assert "verification begins (first start" in first.stderr
    quarantine = base / "quarantine"
    assert sorted(p.name for p in quarantine.glob("*.h5")) == sorted(volume["bad"])
    for bad, result in volume["bad"].items():
        assert verify.md5sum(quarantine / bad) == before[bad], "moved, never altered"
        record = json.loads((quarantine / f"{bad}.json").read_text())
        assert record["result"] == result and record["size"] == len((quarantine / bad).read_bytes())
        assert time.time() - (quarantine / bad).stat().st_mtime < 60, "retention counts from now"
    now = {p.name: verify.md5sum(p) for p in (base / "sdr").iterdir()}
    refetched = {n for n in volume["bad"] if n in volume["served"]}
    assert len(refetched) == 2
    for name in refetched:  # the poll verify-sdr asked for fetched GINA's bytes again
        assert now.pop(name) == gina.md5(name)
    assert now == {n: m for n, m in before.items() if n not in volume["bad"]}
    assert "GINA no longer lists it, so it is not fetched again" in first.stderr
    assert "the mirror fetches it again from GINA at the poll this run asks for" in first.stderr
    assert "asking the mirror to poll now: 2 quarantined file(s)" in first.stderr
    record = json.loads((base / "state" / "verify-sdr.json").read_text())
    assert record["finished"] and record["results"] == {
        "ok": len(volume["served"]) - 2,
        "ok-hdf5-only": 1,
        "bad-md5": 2,
        "not-hdf5": 1,
    }
    assert not (base / "state" / "verify-sdr-plan.json").exists()

    again = run_verify(base, gina, "--scheduled")
    assert again.returncode == 0 and again.stderr == "", "a finished verification is not repeated"
    requests = gina.stats()["catalog_requests"]
    again = run_verify(base, gina, "--scheduled")
    assert again.returncode == 0 and again.stderr == ""
    assert gina.stats()["catalog_requests"] == requests, "GINA is not asked again"


def test_on_demand_run_checks_again_every_file_now_in_sdr(volume):
    base, gina = volume["base"], volume["gina"]
    assert run_verify(base, gina, "--scheduled").returncode == 0
    (base / "sdr" / volume["served"][5]).write_bytes(b"<html>502 Bad Gateway</html>")

    result = run_verify(base, gina)

    assert result.returncode == 0, result.stderr
    assert "verification begins (on demand)" in result.stderr
    assert (base / "quarantine" / volume["served"][5]).exists()


def test_a_time_boxed_run_stops_and_the_next_continues_where_it_stopped(volume):
    base, gina = volume["base"], volume["gina"]
    started = time.monotonic()
    first = run_verify(base, gina, "--rate", "1", "--minutes", "0.02")  # 1.2 s at 1 MB/s
    seconds = time.monotonic() - started

    assert first.returncode == 0, first.stderr
    assert "run stopped: this run's 0.02 minute(s) are used" in first.stderr
    checked = journal(base)
    assert 0 < len(checked) < 22, checked
    assert seconds < 10

    second = run_verify(base, gina)
    assert second.returncode == 0, second.stderr
    assert "continuing the verification" in second.stderr
    assert f"checking {22 - len(checked)} file(s)" in second.stderr
    assert json.loads((base / "state" / "verify-sdr.json").read_text())["finished"]


def test_reading_is_paced_to_the_rate_limit(volume):
    base, gina = volume["base"], volume["gina"]
    listed = sum(
        (base / "sdr" / n).stat().st_size for n in volume["served"] if n not in volume["bad"]
    )
    started = time.monotonic()
    result = run_verify(base, gina, "--rate", "2")
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert seconds >= listed / 2e6 * 0.9, (seconds, listed)


def test_a_killed_run_loses_nothing_and_the_next_run_finishes(volume):
    base, gina = volume["base"], volume["gina"]
    env = {**os.environ, "VIIRS_BASE_DIR": str(base), "GINA_URL": gina.url}
    process = subprocess.Popen(
        [*VERIFY, "--rate", "0.5"], env=env, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL
    )
    try:
        wait_until(lambda: len(journal(base)) >= 2, 30, "two files checked")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    checked = journal(base)

    result = run_verify(base, gina)

    assert result.returncode == 0, result.stderr
    assert f"checking {22 - len(checked)} file(s)" in result.stderr
    record = json.loads((base / "state" / "verify-sdr.json").read_text())
    assert sum(record["results"].values()) == 22
    assert sorted(p.name for p in (base / "quarantine").glob("*.h5")) == sorted(volume["bad"])


def test_without_gina_nothing_is_judged_and_the_next_run_tries_again(volume):
    base, gina = volume["base"], volume["gina"]
    gina.catalog_fault("error", times=1)

    failed = run_verify(base, gina, "--scheduled")

    assert failed.returncode == 1
    assert "could not ask GINA for the MD5s" in failed.stderr
    assert not (base / "quarantine").exists() or not list((base / "quarantine").iterdir())
    assert run_verify(base, gina, "--scheduled").returncode == 0
    assert len(list((base / "quarantine").glob("*.h5"))) == 3
