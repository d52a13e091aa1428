"""viirscollector demo: the README's "run it" command works, fast, and leaves nothing running."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from avoviirscollector.filenames import compose
from avoviirscollector.netutil import free_port
from avoviirscollector.operator.collector_process import PROGRAMS
from avoviirscollector.operator.demo import (
    COLLECTOR_PORTS,
    MARKER,
    DemoError,
    Outcome,
    expected_work,
    prepare_base,
    product_segments,
    summary,
)

INI = """
[viirs_tir]
publish_topic = /AVO/viirs/granule/tir
critical_files = :GITCO,:SVI05
[viirs_mir]
publish_topic = /AVO/viirs/granule/mir
critical_files = :GITCO,:SVI04
"""


def test_products_and_their_segments_come_from_the_gatherer_config():
    assert product_segments(INI) == {"tir": {"GITCO", "SVI05"}, "mir": {"GITCO", "SVI04"}}


def test_a_granule_is_expected_for_each_product_whose_files_are_all_there():
    start = dt.datetime(2024, 5, 1, 12, 0)
    end = start + dt.timedelta(seconds=85)
    names = [compose(seg, "j01", start, end, 33123, start) for seg in ("GITCO", "SVI05")]
    granule = ("j01", 33123, start)
    assert expected_work(names, product_segments(INI)) == {("tir", granule)}


def test_summary_ends_with_a_line_scripts_can_read():
    text = summary(
        Outcome(files=60, bytes=6_840_000, granules=6, tasks=9, messages=60, seconds=31.44)
    )
    assert text.splitlines()[-1] == (
        "summary: files=60 bytes=6840000 granules=6 tasks=9 seconds=31.4 result=ok"
    )
    assert "INCOMPLETE: 2 files not in sdr/" in summary(Outcome(missing=["2 files not in sdr/"]))


def test_demo_never_empties_a_directory_it_did_not_make(tmp_path):
    precious = tmp_path / "data"
    precious.mkdir()
    (precious / "keep.h5").write_bytes(b"x")
    with pytest.raises(DemoError, match="is not a demo directory"):
        prepare_base(precious)
    assert (precious / "keep.h5").exists()
    old_demo = tmp_path / "demo"
    old_demo.mkdir()
    (old_demo / MARKER).write_text("")
    (old_demo / "sdr").mkdir()
    prepare_base(old_demo)
    assert sorted(p.name for p in old_demo.iterdir()) == [MARKER]


# ----------------------------------------------------------------- the real thing


def processes_of(base: Path) -> list[int]:
    """Pids of live processes whose environment names this base directory."""
    marker = f"VIIRS_BASE_DIR={base}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in environ and state != "Z":
            found.append(int(entry.name))
    return found


@pytest.fixture
def demo_base():
    """A short base path (supervisord's AF_UNIX socket path must stay under 108 bytes)."""
    parent = Path(tempfile.mkdtemp(prefix="vdemo", dir="/tmp"))
    base = parent / "viirs-demo"
    yield base
    for pid in processes_of(base):  # only if the demo failed to clean up: the test says so
        os.kill(pid, signal.SIGKILL)
    shutil.rmtree(parent, ignore_errors=True)


def start_demo(base: Path) -> tuple[subprocess.Popen, dict[str, str]]:
    """The demo on free ports (tests never bind the production ones); posttroll's are the
    session's (conftest)."""
    ports = {name: str(free_port()) for name in COLLECTOR_PORTS}
    process = subprocess.Popen(
        [sys.executable, "-m", "avoviirscollector.cli", "demo", "--base-dir", str(base)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ, **ports),
    )  # fmt: skip
    return process, ports


def status_of(base: Path, state_port: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "avoviirscollector.cli", "status", "--state-port", state_port],
        capture_output=True, text=True, timeout=30, env=dict(os.environ, VIIRS_BASE_DIR=str(base)),
    )  # fmt: skip


@pytest.mark.system
def test_demo_mirrors_a_pass_hands_every_granule_to_a_worker_and_stops_everything(demo_base):
    began = time.monotonic()
    process, ports = start_demo(demo_base)
    try:
        out, err = process.communicate(timeout=150)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, out + err
    assert "Traceback" not in out + err
    last = out.splitlines()[-1]
    match = re.fullmatch(
        r"summary: files=(\d+) bytes=(\d+) granules=(\d+) tasks=(\d+) seconds=([\d.]+) result=ok",
        last,
    )
    assert match, last
    files, size, granules, tasks, seconds = match.groups()
    assert (int(files), int(granules)) == (60, 6)
    assert 3e6 < int(size) < 20e6
    assert int(tasks) >= 8, "at least one task per product and platform"
    assert float(seconds) < 60, "the README promises under a minute"
    assert time.monotonic() - began < 90
    for source in ("mirror", "29092", "19191", "worker", "sdr"):
        assert re.search(rf"^\s*[\d.]+s  {source:<6} \| ", out, re.M), (
            f"nothing shown from {source}"
        )
    assert re.search(r"MB/s", out)
    assert f"tasks (REP) on {ports['VIIRS_TASK_PORT']} (from VIIRS_TASK_PORT)" in out
    assert processes_of(demo_base) == []
    assert len(list((demo_base / "sdr").glob("*.h5"))) == 60


@pytest.mark.system
def test_status_reads_the_demo_collector_and_ctrl_c_stops_every_process_it_started(demo_base):
    process, ports = start_demo(demo_base)
    try:
        deadline = time.monotonic() + 60
        seen = []
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            seen.append(line)
            if "programs RUNNING" in line or not line:
                break
        assert "programs RUNNING" in seen[-1], "".join(seen)
        assert processes_of(demo_base), "the stack should be running now"
        screen = status_of(demo_base, ports["VIIRS_STATE_PORT"])
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130
    assert "interrupted (SIGINT); stopping everything" in out
    # viirscollector status on the real collector, while it ran:
    assert screen.returncode == 0, screen.stdout
    programs = [line.split()[:2] for line in screen.stdout.splitlines() if line.startswith("  ")]
    assert sorted(name for name, _ in programs) == sorted(PROGRAMS)
    assert all(state == "RUNNING" for _, state in programs), programs
    assert "queue:    0 tasks, waiting: none" in screen.stdout
    assert "Traceback" not in out + err
    assert processes_of(demo_base) == []


def test_demo_refuses_a_base_directory_it_did_not_make_in_one_line(tmp_path):
    (tmp_path / "precious.h5").write_bytes(b"x")
    result = subprocess.run(
        [sys.executable, "-m", "avoviirscollector.cli", "demo", "--base-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60, env=dict(os.environ),
    )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert f"error: {tmp_path} exists and is not a demo directory" in result.stdout
    assert result.stdout.splitlines()[-1].endswith("result=incomplete")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious.h5"]
    assert processes_of(tmp_path) == []
