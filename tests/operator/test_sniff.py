"""viirscollector sniff: lines people read, from real PUB sockets, with bounded waits."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from helpers.zmq_threads import Publisher

from avoviirscollector import bus
from avoviirscollector.filenames import compose
from avoviirscollector.netutil import free_port
from avoviirscollector.operator import display
from avoviirscollector.operator.sniff import parse_queue_state, queue_line, queue_summary, sdr_line
from avoviirscollector.pipeline.file_messages import file_message_data

START = dt.datetime(2024, 5, 1, 12, 0, 0, 300000)
NAME = compose("SVI05", "j01", START, START + dt.timedelta(seconds=85), 33123, START)


def file_message(name: str = NAME) -> bus.Message:
    return bus.message("/AVO/viirs/sdr", "file", file_message_data(f"/viirs/sdr/{name}"))


@pytest.fixture
def publisher():
    started = []

    def start(frames):
        started.append(Publisher(frames))
        return started[-1]

    yield start
    for pub in started:
        pub.stop()


def sniff(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "avoviirscollector.cli", "sniff", *args],
        capture_output=True, text=True, timeout=timeout, env=dict(os.environ),
    )  # fmt: skip


def test_sdr_line_names_file_platform_orbit_and_latency_after_start():
    received = START + dt.timedelta(minutes=12, seconds=3.4)
    line = sdr_line(file_message(), received)
    assert line == f"2024-05-01T12:12:03Z  {NAME}  NOAA-20  orbit 33123  12 min 03 s after start"


def test_sdr_line_of_a_message_without_times_still_prints():
    message = bus.message("/AVO/viirs/sdr", "file", {"uri": "/viirs/sdr/odd.h5"})
    assert sdr_line(message, START) == "2024-05-01T12:00:00Z  odd.h5  ?  orbit ?  ? after start"


def test_queue_line_shows_length_products_and_extra_keys():
    state = {
        "queue length": 3,
        "products waiting": ["mir", "tir"],
        "tasks per product": {"mir": 1, "tir": 2},
        "oldest task age": 42.25,
    }
    assert queue_line(state, START) == (
        "2024-05-01T12:00:00Z  queue 3 tasks, waiting: mir, tir; "
        "tasks per product: mir 1, tir 2; oldest task age: 42.2 s"
    )
    assert queue_summary({"queue length": 0, "products waiting": []}) == "0 tasks, waiting: none"


def test_queue_state_is_read_from_plain_json_or_after_a_topic_word():
    assert parse_queue_state([b'{"queue length": 1}']) == {"queue length": 1}
    assert parse_queue_state([b'state {"queue length": 2}']) == {"queue length": 2}
    with pytest.raises(ValueError, match="not a JSON object"):
        parse_queue_state([b"[1, 2]"])


def test_sniff_sdr_prints_file_messages_and_ignores_other_subjects(publisher):
    other = bus.message("/AVO/viirs/granule/tir", "collection", {"dataset": []})
    pub = publisher(lambda: [[other.encode().encode()], [file_message().encode().encode()]])
    result = sniff("sdr", "--port", str(pub.port), "--count", "2", "--timeout", "20")
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        f"sniff sdr: listening to tcp://localhost:{pub.port}; Ctrl-C stops",
        "sniff: files in /viirs/sdr",  # the default VIIRS_BASE_DIR's: this collector's files
    ]
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert all(f"  {NAME}  NOAA-20  orbit 33123  " in line for line in lines)
    received = dt.datetime.strptime(lines[0][:20], "%Y-%m-%dT%H:%M:%SZ")
    assert abs((received - display.now()).total_seconds()) < 30


def test_sniff_queue_length_prints_the_number_once_and_exits(publisher):
    state = json.dumps({"queue length": 7, "products waiting": ["btd"]}).encode()
    pub = publisher(lambda: [[state]])
    result = sniff("queue", "--length", "--port", str(pub.port))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "7\n"


def test_sniff_queue_prints_one_line_per_update(publisher):
    state = json.dumps({"queue length": 1, "products waiting": ["tir"]}).encode()
    pub = publisher(lambda: [[state]])
    result = sniff("queue", "--port", str(pub.port), "--count", "3", "--timeout", "20")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3 and all(line.endswith("queue 1 task, waiting: tir") for line in lines)


def test_nothing_published_within_timeout_is_one_line_and_status_1():
    port = free_port()
    began = time.monotonic()
    result = sniff("queue", "--length", "--port", str(port), "--timeout", "0.5")
    assert result.returncode == 1
    assert result.stderr == (
        f"sniff queue: nothing from tcp://localhost:{port} within 0.5 s; "
        "is task_broker running there?\n"
    )
    assert time.monotonic() - began < 10


def test_ctrl_c_ends_sniff_sdr_cleanly_without_traceback():
    process = subprocess.Popen(
        [sys.executable, "-m", "avoviirscollector.cli", "sniff", "sdr", "--port", str(free_port())],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ),
    )  # fmt: skip
    try:
        first = process.stderr.readline()  # printed once it listens
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    finally:
        process.kill()
        process.wait()
    assert first.startswith("sniff sdr: listening to tcp://localhost:")
    assert process.returncode == 0
    assert out == "" and err == ""


def test_an_impossible_host_or_port_is_one_line_not_a_traceback():
    bad_host = sniff("queue", "--host", "bad host", "--timeout", "1")
    assert bad_host.returncode == 1
    assert bad_host.stderr.splitlines()[-1].startswith(
        "sniff queue: cannot listen to tcp://bad host:19191: Invalid argument"
    )
    bad_port = sniff("sdr", "--port", "99999")
    assert bad_port.returncode == 2
    assert bad_port.stderr.splitlines()[-1].endswith("'99999' is not a port number (1-65535)")
    assert "Traceback" not in bad_host.stderr + bad_port.stderr
