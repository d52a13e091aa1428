"""Every daemon reports its own liveness: a heartbeat file naming its dead threads."""

from __future__ import annotations

import os
import threading

import pytest
from helpers.bus import wait_until

from avoviirscollector import liveness


def test_heartbeat_names_this_process_and_the_time(tmp_path):
    heartbeat = liveness.Heartbeat(tmp_path, "nameserver", interval=0.1).start()
    try:
        first = liveness.read(tmp_path, "nameserver")
        assert first["pid"] == os.getpid() and first["dead"] == []
        wait_until(
            lambda: liveness.read(tmp_path, "nameserver")["time"] > first["time"], 5, "a beat"
        )
    finally:
        heartbeat.stop()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_thread_dying_of_an_exception_is_recorded_at_once(tmp_path):
    heartbeat = liveness.Heartbeat(tmp_path, "nameserver", interval=60).start()
    try:

        def receive():
            raise KeyError("getpwuid(): uid not found: 2001")

        thread = threading.Thread(target=receive, name="AddressReceiver")
        thread.start()
        thread.join()
        record = liveness.read(tmp_path, "nameserver")
    finally:
        heartbeat.stop()
    assert record["dead"] == [
        "thread AddressReceiver died: KeyError: 'getpwuid(): uid not found: 2001'"
    ]


def test_an_essential_thread_that_ended_quietly_is_reported(tmp_path):
    worker = threading.Thread(target=lambda: None, name="placer")
    worker.start()
    worker.join()
    heartbeat = liveness.Heartbeat(tmp_path, "task_broker", lambda: [worker], interval=0.1).start()
    try:
        record = liveness.read(tmp_path, "task_broker")
    finally:
        heartbeat.stop()
    assert record["dead"] == ["thread placer is no longer running"]


def test_the_program_name_is_supervisords(tmp_path, monkeypatch):
    monkeypatch.setenv("SUPERVISOR_PROCESS_NAME", "segment_gatherer-viirs_tir")
    heartbeat = liveness.start(tmp_path, "segment_gatherer")
    heartbeat.stop()
    assert liveness.read(tmp_path, "segment_gatherer-viirs_tir")["pid"] == os.getpid()
