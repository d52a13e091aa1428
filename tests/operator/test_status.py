"""viirscollector status: one screen from a real supervisord, a real 19191 and real files."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from helpers.bus import SUPERVISORD_HEAD
from helpers.processes import terminate_then_kill
from helpers.zmq_threads import Publisher

from avoviirscollector.netutil import free_port
from avoviirscollector.operator.status import (
    MIRROR_LAST_RUN,
    Disk,
    MirrorRun,
    NewestFile,
    Program,
    Report,
    Unreadable,
    last_mirror_summary,
    mirror_run_from_json,
    problems,
    render,
)
from avoviirscollector.supervisor_client import SupervisorUnavailable, processes

NOW = dt.datetime(2024, 5, 1, 12, 0, 0)
EPOCH_NOW = NOW.replace(tzinfo=dt.UTC).timestamp()
SUMMARY = (
    "2024-05-01T11:58:00.120Z mirror_gina INFO mirror_gina: run summary: found 120, wanted 8, "
    "fetched 8, failed 0, 41.5 MB in 6.1 s"
)


def test_render_shows_every_part_on_one_screen():
    report = Report(
        base_dir=Path("/viirs"),
        now=NOW,
        programs=[
            Program("nameserver", "RUNNING", EPOCH_NOW - 3725, EPOCH_NOW, "pid 7, uptime 1:02:05"),
            Program("supercronic", "FATAL", 0, EPOCH_NOW, "Exited too quickly"),
        ],
        queue={"queue length": 2, "products waiting": ["tir"]},
        newest=NewestFile("SVI05_j01_x.h5", EPOCH_NOW - 250, 1200),
        mirror=last_mirror_summary(f"noise\n{SUMMARY}\nmore noise\n"),
        disk=Disk(used=int(72e9), free=int(360e9), total=int(1e12)),
        retention_days=7,
    )
    assert render(report) == "\n".join(
        [
            "avoviirscollector in /viirs at 2024-05-01T12:00:00Z",
            "programs:",
            "  nameserver   RUNNING   up 1 h 02 min",
            "  supercronic  FATAL     Exited too quickly",
            "queue:    2 tasks, waiting: tir",
            "newest:   SVI05_j01_x.h5, 4 min 10 s ago (1200 files in sdr/)",
            f"mirror:   2 min 00 s ago: {SUMMARY}",
            "disk:     72.0 GB under /viirs (~2.0 days at 36 GB/day); "
            "360.0 GB free of 1.0 TB (~10.0 more days)",
        ]
    )
    assert problems(report) == ["supercronic"]


def test_render_says_why_each_unreadable_part_is_missing_and_warns_on_retention():
    report = Report(
        base_dir=Path("/viirs"),
        now=NOW,
        programs=Unreadable("no socket /viirs/tmp/supervisor.sock"),
        queue=Unreadable("no state from tcp://localhost:19191 within 3 s"),
        newest=None,
        mirror=None,
        disk=Disk(used=0, free=int(100e9), total=int(200e9)),
        retention_days=7,
    )
    text = render(report)
    assert "programs: cannot read supervisord: no socket /viirs/tmp/supervisor.sock" in text
    assert "queue:    no state from tcp://localhost:19191 within 3 s" in text
    assert "newest:   sdr/ holds no file yet" in text
    assert "mirror:   no mirror run recorded yet" in text
    assert "WARNING 7 days of retention need ~252.0 GB" in text
    assert problems(report) == ["programs", "queue"]


def test_last_mirror_summary_is_the_newest_summary_line():
    older = SUMMARY.replace("11:58", "11:53").replace("fetched 8", "fetched 3")
    run = last_mirror_summary(f"{older}\n{SUMMARY}\nmirror_gina INFO fetched SVI05 4 MB\n")
    assert run == MirrorRun(SUMMARY, dt.datetime(2024, 5, 1, 11, 58))
    assert last_mirror_summary("nothing here\n") is None


LAST_RUN = {
    "finished": "2024-05-01T11:58:30Z",
    "seconds": 6.14,
    "found": 120,
    "wanted": 8,
    "fetched": 7,
    "failed": 1,
    "bytes": 41_500_000,
    "queues": [
        {"queue": "snpp-imagery", "status": "ok", "failed_files": ["SVI05_npp_x.h5"]},
        {"queue": "noaa20-imagery", "status": "busy", "failed_files": []},
        {"queue": "noaa21-moderate", "status": "failed", "failed_files": []},
    ],
}


def test_mirror_state_file_gives_totals_and_names_failed_and_busy_queues():
    run = mirror_run_from_json(json.dumps(LAST_RUN))
    assert run.logged == dt.datetime(2024, 5, 1, 11, 58, 30)
    assert run.line == (
        "found 120, wanted 8, fetched 7, failed 1, 41.5 MB in 6.1 s; "
        "could not list GINA's products: noaa21-moderate; busy: noaa20-imagery; "
        "1 file(s) failed, see the log"
    )


def test_status_reads_the_file_mirror_gina_writes():
    from avoviirscollector.mirror.mirror_gina import LAST_RUN_FILE

    assert MIRROR_LAST_RUN == LAST_RUN_FILE


# ----------------------------------------------------------------- real processes


@pytest.fixture
def short_base():
    """A base directory with a short path: AF_UNIX socket paths hold at most 107 bytes."""
    base = Path(tempfile.mkdtemp(prefix="vst", dir="/tmp"))
    for name in ("sdr", "tmp", "log", "state"):
        (base / name).mkdir()
    yield base
    shutil.rmtree(base, ignore_errors=True)


SUPERVISORD_CONF = (
    SUPERVISORD_HEAD
    + """\
[program:sleeper]
command={python} -c "import time; time.sleep(600)"
startsecs=1
stdout_logfile={base}/log/sleeper.log
[program:quitter]
command={python} -c "raise SystemExit(3)"
startsecs=1
startretries=0
stdout_logfile={base}/log/quitter.log
"""
)


@pytest.fixture
def supervisord(short_base):
    """A real supervisord with one program that runs and one that fails at start."""
    conf = short_base / "supervisord.conf"
    conf.write_text(SUPERVISORD_CONF.format(base=short_base, python=sys.executable))
    process = subprocess.Popen(
        [sys.executable, "-m", "supervisor.supervisord", "-c", str(conf)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    socket_path = short_base / "tmp" / "supervisor.sock"
    deadline = time.monotonic() + 20
    states = {}
    while time.monotonic() < deadline and states != {"sleeper": "RUNNING", "quitter": "FATAL"}:
        try:
            states = {p["name"]: p["statename"] for p in processes(socket_path, 2)}
        except SupervisorUnavailable:
            pass
        time.sleep(0.1)  # supervisord offers no event for "program reached its state"
    try:
        assert states == {"sleeper": "RUNNING", "quitter": "FATAL"}
        yield short_base
    finally:
        terminate_then_kill(process)


class QueueStatePublisher(Publisher):
    """A PUB publishing a broker-like 19191 state every 100 ms on a free port."""

    STATE = json.dumps({"queue length": 3, "products waiting": ["mir", "tir"]}).encode()

    def __init__(self):
        super().__init__(lambda: [[self.STATE]], interval=0.1)


@pytest.fixture
def queue_state():
    publisher = QueueStatePublisher()
    yield publisher.port
    publisher.stop()


def status(base: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, VIIRS_BASE_DIR=str(base))
    return subprocess.run(
        [sys.executable, "-m", "avoviirscollector.cli", "status", *args],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip


def test_status_reads_supervisord_queue_newest_file_mirror_log_and_disk(supervisord, queue_state):
    base = supervisord
    old, new = base / "sdr" / "GITCO_old.h5", base / "sdr" / "SVI05_new.h5"
    old.write_bytes(b"x" * 10_000)
    new.write_bytes(b"y" * 20_000)
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    os.utime(new, (time.time() - 90, time.time() - 90))
    (base / "sdr" / ".partial.h5").write_bytes(b"z")
    (base / "log" / "supercronic.log").write_text(f"{SUMMARY}\nmirror_gina INFO no new files\n")

    result = status(base, "--state-port", str(queue_state))
    lines = result.stdout.splitlines()
    assert result.returncode == 1, "quitter is FATAL"
    assert result.stderr == ""
    assert lines[0].startswith(f"avoviirscollector in {base} at ")
    assert lines[1] == "programs:"
    assert lines[2] == "  quitter  FATAL     Exited too quickly (process log may have details)"
    assert lines[3].startswith("  sleeper  RUNNING   up ")
    assert lines[4] == "queue:    3 tasks, waiting: mir, tir"
    assert lines[5].startswith("newest:   SVI05_new.h5, 1 min 3")
    assert lines[5].endswith(" s ago (2 files in sdr/)")
    assert lines[6].startswith("mirror:   ") and lines[6].endswith(SUMMARY)

    (base / "state" / MIRROR_LAST_RUN).write_text(json.dumps(LAST_RUN))
    lines = status(base, "--state-port", str(queue_state)).stdout.splitlines()
    assert lines[6].startswith("mirror:   ") and " ago: found 120, wanted 8, fetched 7" in lines[6]
    assert lines[7].startswith("disk:     ")
    assert f" under {base} (~0.0 days at 36 GB/day)" in lines[7]


def test_status_of_a_collector_that_is_not_there_explains_each_part_without_traceback(tmp_path):
    result = status(tmp_path / "absent", "--state-port", str(free_port()))
    assert result.returncode == 1
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[1:]] == [
        "programs", "queue", "newest", "mirror", "disk"
    ]  # fmt: skip
    assert "supervisord is not running for this base" in lines[1]
    assert "is task_broker running?" in lines[2]
    assert all("does not exist" in line or "No such file" in line for line in lines[3:])
