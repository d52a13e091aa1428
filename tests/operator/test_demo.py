"""viirscollector demo: the README's "run it" command works, fast, and leaves nothing running."""

from __future__ import annotations

import datetime as dt
import json
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
    choose_ports,
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


def listening_address(port: int) -> str | None:
    """The IPv4 address a TCP socket listens on at ``port`` (/proc/net/tcp), if any."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:
            return ".".join(str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0))
    return None


def listening_addresses(ports: list[int], timeout: float = 30) -> dict[int, str | None]:
    """Each port's listening address, once all listen (RUNNING precedes a program's bind)."""
    deadline = time.monotonic() + timeout
    while True:
        found = {port: listening_address(port) for port in ports}
        if None not in found.values() or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_demo_never_picks_the_production_ports_unless_asked():
    chosen, notes = choose_ports({})
    production = {19091, 19191, 29092, 5557, 16543}
    assert not production & {int(port) for port in chosen.values()}
    chosen, _ = choose_ports({"VIIRS_TASK_PORT": "4242"})
    assert chosen["VIIRS_TASK_PORT"] == "4242"


def test_demo_into_a_closed_pipe_stops_and_leaves_no_process_port_or_directory(demo_base, tmp_path):
    """`demo | head -3`: the reader is gone; the demo must still stop what it started."""
    scratch = tmp_path / "tmpdir"
    scratch.mkdir()
    ports = {name: str(free_port()) for name in COLLECTOR_PORTS}
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write to stdout now fails with EPIPE
    process = subprocess.Popen(
        [sys.executable, "-m", "avoviirscollector.cli", "demo", "--base-dir", str(demo_base)],
        stdout=write_end, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, TMPDIR=str(scratch), **ports),
    )  # fmt: skip
    os.close(write_end)
    try:
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert process.returncode == 130, err
    assert processes_of(demo_base) == []
    assert {listening_address(int(port)) for port in ports.values()} == {None}
    assert list(scratch.iterdir()) == [], "the GINA stand-in's pass directory is removed"


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
    match = re.search(
        r"^summary: files=(\d+) bytes=(\d+) granules=(\d+) tasks=(\d+) seconds=([\d.]+) result=ok$",
        out,
        re.M,
    )
    assert match, out[-2000:]
    last = out.splitlines()[-2:]
    assert (
        last[0] == f"directory: {demo_base}  (every program's log: {demo_base}/log/<program>.log)"
    )
    assert last[1].startswith("next: `viirscollector demo --keep` keeps the collector running")
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
    assert f"status page: http://127.0.0.1:{ports['VIIRS_WEB_PORT']}/ (open it now" in out
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
        addresses = listening_addresses([int(port) for port in ports.values()])
        screen = status_of(demo_base, ports["VIIRS_STATE_PORT"])
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130
    assert "interrupted (SIGINT); stopping everything" in out
    assert set(addresses.values()) == {"127.0.0.1"}, f"the demo listens on loopback: {addresses}"
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
    assert result.stdout.splitlines()[-3].endswith("result=incomplete")
    assert result.stdout.splitlines()[-2].startswith(f"directory: {tmp_path}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious.h5"]
    assert processes_of(tmp_path) == []


@pytest.mark.system
def test_demo_worker_turns_each_task_into_one_png_made_from_exactly_that_tasks_files(demo_base):
    """``demo --worker``: the demo's pass, the real collector, the reference worker (satpy)."""
    from helpers.satpy_needed import satpy
    from PIL import Image

    from avoviirscollector.filenames import parse
    from avoviirscollector.settings import load
    from avoviirscollector.standins.synthetic_scene import shape

    satpy()
    ports = {name: str(free_port()) for name in COLLECTOR_PORTS}
    done = subprocess.run(
        [sys.executable, "-m", "avoviirscollector.cli", "demo", "--worker", "--base-dir",
         str(demo_base)],
        capture_output=True, text=True, timeout=180, env=dict(os.environ, **ports),
    )  # fmt: skip
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "Traceback" not in out + done.stderr
    match = re.search(r"^summary: .* tasks=(\d+) images=(\d+) seconds=[\d.]+ result=ok$", out, re.M)
    assert match, out[-3000:]
    tasks, images = map(int, match.groups())
    pngs = sorted((demo_base / "quicklooks").glob("*.png"))
    assert tasks == images == len(pngs) >= 8, "one image per task, at least one per product"
    listing = out.split("quick-look PNGs in", 1)[1].splitlines()[1 : 1 + len(pngs)]
    assert [line.strip() for line in listing] == [f"quicklooks/{p.name}" for p in pngs]

    sdr = {p.name for p in (demo_base / "sdr").glob("*.h5")}
    needs = product_segments((load().config_dir / "etc/segment_gatherer.ini").read_text())
    made: dict = {}
    for png in pngs:
        record = json.loads(png.with_suffix(".json").read_text())
        product, files = record["product"], [parse(n) for n in record["files"]]
        granules = {f.granule for f in files}
        # exactly the task's files: every needed segment of its granules, nothing else
        expected = {n for n in sdr if parse(n).granule in granules
                    and parse(n).segment in needs[product]}  # fmt: skip
        assert sorted(record["files"]) == sorted(expected), png.name
        assert len({(f.platform, f.orbit) for f in files}) == 1, "one satellite, one orbit"
        # ... and satpy read just those: the rows of their granules, their satellite and span
        for band, (rows, columns) in record["bands"].items():
            per_granule = shape(band[0])
            assert (rows, columns) == (len(granules) * per_granule[0], per_granule[1]), band
        assert record["platform_name"] == files[0].platform_name
        assert record["start_time"] == min(f.start for f in files).isoformat()
        assert record["task"]["task_id"], "taken on a lease, and acknowledged"
        width, height = Image.open(png).size
        assert height == max(rows for rows, _ in record["bands"].values())
        for granule in granules:
            assert (product, granule) not in made, f"{product} {granule} in two images"
            made[(product, granule)] = png.name
    assert set(made) == expected_work(sorted(sdr), needs)
    assert processes_of(demo_base) == []
