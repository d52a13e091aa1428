"""``viirscollector run`` never starts beside another collector (issue 14.6, 14.8).

A second collector on taken ports crash-looped and cross-fed the first one's
gatherers; a second ``run`` on a running base directory appended a CRIT line to the
running collector's log. Both are refused in one line, exit status 2, nothing started.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from avoviirscollector.netutil import free_port
from avoviirscollector.operator.collector_process import PROGRAMS, CollectorProcess

PORTS = (
    "VIIRS_TASK_PORT",
    "VIIRS_STATE_PORT",
    "VIIRS_MESSAGE_PORT",
    "VIIRS_WEB_PORT",
    "POSTTROLL_NAMESERVER_PORT",
    "POSTTROLL_ADDRESS_PUBLISH_PORT",
)


def run(base, **env):
    ports = {name: str(free_port()) for name in PORTS}
    return subprocess.run(
        [sys.executable, "-m", "avoviirscollector.cli", "run"],
        env={**os.environ, **ports, "VIIRS_BASE_DIR": str(base), **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.fixture
def short_base():
    """A base directory short enough for supervisord's AF_UNIX socket path."""
    path = Path(tempfile.mkdtemp(prefix="v"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def listener():
    """A TCP port something listens on (bound like a ZMQ socket of another collector)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock.getsockname()[1]
    sock.close()


@pytest.mark.parametrize("variable", PORTS)
def test_run_refuses_a_taken_port_in_one_line_exit_2_and_starts_nothing(
    short_base, listener, variable
):
    result = run(short_base, **{variable: str(listener)})
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert f"port(s) already in use: {listener} ({variable}" in result.stderr
    assert not (short_base / "tmp" / "supervisord.pid").exists()


def test_run_refuses_one_port_given_for_two_purposes(short_base):
    port = str(free_port())
    result = run(short_base, VIIRS_TASK_PORT=port, POSTTROLL_NAMESERVER_PORT=port)
    assert result.returncode == 2
    assert f"are both port {port}" in result.stderr


def test_second_run_on_a_running_base_says_so_and_touches_nothing_of_it(short_base):
    with CollectorProcess(short_base).start(PROGRAMS) as collector:
        pid = int((short_base / "tmp" / "supervisord.pid").read_text())
        log = short_base / "log" / "supervisord.log"
        before = log.read_bytes()
        listing = sorted(p.name for p in (short_base / "log").iterdir())
        result = subprocess.run(
            [sys.executable, "-m", "avoviirscollector.cli", "run"],
            env=collector.env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 2
        assert result.stderr.splitlines() == [
            f"viirscollector run: a collector already runs on {short_base} "
            f"(supervisord pid {pid}); nothing started"
        ]
        assert log.read_bytes() == before, "nothing appended to the running collector's log"
        assert sorted(p.name for p in (short_base / "log").iterdir()) == listing
        assert set(collector.program_states().values()) == {"RUNNING"}
