"""Issue 14.5: with GINA unreachable, ``status`` exits 1 and leads with it; ``health`` says it.

The real mirror_gina runs against the GINA stand-in answering 503, so the outage records
``status`` and ``health`` read are the ones the mirror writes.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys

import pytest

from avoviirscollector.operator import feed, health
from avoviirscollector.operator.status import Disk, Report, problems, render
from avoviirscollector.standins import synthetic_sdr
from avoviirscollector.standins.gina import GinaStandin

QUEUES = """
queues:
  - name: snpp-imagery
    satellite: snpp
    bands: [GITCO, SVI05]
"""
CLI = [sys.executable, "-m", "avoviirscollector.cli"]


@pytest.fixture
def gina(tmp_path):
    directory = tmp_path / "gina"
    synthetic_sdr.make_pass(directory, "npp", granules=1, segments=("GITCO", "SVI05"), size=20_000)
    with GinaStandin(directory) as standin:
        yield standin


@pytest.fixture
def env(base_dir, gina, tmp_path):
    for name in ("sdr", "tmp", "log", "elements", "state"):
        (base_dir / name).mkdir()
    queues = tmp_path / "queues.yaml"
    queues.write_text(QUEUES)
    return {**os.environ, "VIIRS_BASE_DIR": str(base_dir), "GINA_URL": gina.url,
            "QUEUES": str(queues)}  # fmt: skip


def mirror(env):
    return subprocess.run(
        [*CLI, "mirror", "--now", "--queues", env["QUEUES"]],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def status(env):
    socket = os.path.join(env["VIIRS_BASE_DIR"], "tmp", "none.sock")
    return subprocess.run(
        [*CLI, "status", "--socket", socket], env=env, capture_output=True, text=True, timeout=60
    )


def test_status_exits_1_and_leads_with_gina_not_answering_since_when_and_how_many_runs(
    env, gina, base_dir
):
    gina.catalog_fault("error", status=503)
    for _ in range(3):
        assert mirror(env).returncode == 1
    screen = status(env)
    assert screen.returncode == 1
    first = screen.stdout.splitlines()[0]
    assert re.fullmatch(r"GINA not answering since \d\d:\d\dZ, 3 runs: HTTP 503.*", first), first
    assert feed_line(base_dir).startswith("GINA not answering since ")
    gina.clear_faults()
    assert mirror(env).returncode == 0
    assert not status(env).stdout.startswith("GINA"), "the line goes once GINA answers"
    assert feed_line(base_dir) == "GINA answers"


def feed_line(base_dir) -> str:
    return health.feed_state(base_dir / "state")


def test_an_outage_decides_the_exit_status_by_itself(tmp_path):
    outage = feed.FeedOutage(since=0.0, runs=9, error="HTTP 503", queues=("a", "b"))
    report = Report(tmp_path, now=dt.datetime(1970, 1, 1, 3, 20), programs=[], queue={},
                    newest=None, mirror=None, disk=Disk(0, 1, 1), feed=outage)  # fmt: skip
    assert problems(report) == ["GINA"]
    assert render(report).splitlines()[0] == (
        "GINA not answering since 00:00Z, 9 runs (queues a, b): HTTP 503"
    )
