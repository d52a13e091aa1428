"""The shipped crontab: every line parses, the schedules are what the comments say, and
every job's command runs for real against a temporary base directory.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from croniter import croniter

from avoviirscollector import cli
from avoviirscollector.jobs import crontab_rules
from avoviirscollector.standins import synthetic_sdr
from avoviirscollector.standins.celestrak import TleStandin
from avoviirscollector.standins.gina import GinaStandin

REPO = Path(__file__).resolve().parents[2]
CRONTAB = REPO / "crontab"
MIDNIGHT = dt.datetime(2024, 3, 1, 0, 0, tzinfo=dt.UTC)


def jobs() -> dict[str, crontab_rules.Job]:
    """The crontab's jobs by what they run (the command's first words)."""
    tab = crontab_rules.parse(CRONTAB.read_text())
    return {" ".join(job.command.split()[:2]): job for job in tab.jobs}


def test_every_job_line_is_a_valid_croniter_schedule():
    tab = crontab_rules.parse(CRONTAB.read_text())
    assert len(tab.jobs) == 4 and tab.environment == {}
    for job in tab.jobs:
        assert croniter.is_valid(job.seven_fields, second_at_beginning=True), job.schedule


def test_schedules_mirror_check_every_5_s_verify_every_minute_tle_hourly_cleanup_at_midnight():
    by_command = jobs()
    mirror = by_command["mirror_gina"]
    assert mirror.next_run(MIDNIGHT) == MIDNIGHT + dt.timedelta(seconds=5)
    assert mirror.next_run(MIDNIGHT + dt.timedelta(seconds=55)) == MIDNIGHT + dt.timedelta(
        minutes=1
    )
    tle = by_command["viirscollector fetch-tle"]
    first = tle.next_run(MIDNIGHT)
    assert tle.next_run(first) - first == dt.timedelta(hours=1)
    verify = by_command["viirscollector verify-sdr"]
    assert verify.next_run(MIDNIGHT) == MIDNIGHT + dt.timedelta(minutes=1)
    cleanup = by_command["viirscollector cleanup"]
    assert cleanup.next_run(MIDNIGHT) == MIDNIGHT + dt.timedelta(days=1)
    assert cleanup.next_run(MIDNIGHT - dt.timedelta(seconds=1)) == MIDNIGHT


def test_every_command_exists_as_a_console_script_or_subcommand():
    for command in jobs():
        words = command.split()
        if words[0] == "viirscollector":
            assert words[1] in cli.SUBCOMMANDS
        else:
            assert shutil.which(words[0]), f"{words[0]} is not installed"


@pytest.fixture
def services(tmp_path):
    """GINA and Celestrak stand-ins with a recent granule and sample elements."""
    gina_dir = tmp_path / "gina"
    synthetic_sdr.make_pass(gina_dir, "npp", granules=1, segments=("GITCO", "SVI05"), size=20_000)
    with GinaStandin(gina_dir) as gina:
        tle = TleStandin().start()
        yield gina, tle
        tle.stop()


def test_each_job_runs_for_real_against_a_temporary_base_directory(base_dir, services):
    gina, tle = services
    for name in ("sdr", "tmp", "log", "elements", "state"):
        (base_dir / name).mkdir()
    stale = base_dir / "log" / "old.log"
    stale.write_text("from last month")
    month_ago = time.time() - 30 * 86400
    os.utime(stale, (month_ago, month_ago))
    env = {
        **os.environ,
        "VIIRS_BASE_DIR": str(base_dir),
        "VIIRS_RETENTION": "7",
        "GINA_URL": gina.url,
        "TLE_URL": tle.url,
    }
    tab = crontab_rules.parse(CRONTAB.read_text())
    for job in tab.jobs:  # exactly as the runner and supercronic run them: SHELL -c COMMAND
        result = subprocess.run(
            [tab.shell, "-c", job.command], env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, f"{job.command}: {result.stderr}"
    assert sorted(p.name[:5] for p in (base_dir / "sdr").iterdir()) == ["GITCO", "SVI05"]
    assert (base_dir / "elements" / "noaa.txt").read_bytes() == tle.body
    assert not stale.exists()
