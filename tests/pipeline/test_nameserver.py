"""Our nameserver announces known publishers again, so a late subscriber still finds them.

posttroll's nameserver announces an address once; a subscriber connecting to the
announcements after that moment never hears of it. Real nameserver, real publisher,
and a plain ZMQ SUB socket on the announcement port connected *after* registration.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest
import zmq
from helpers.bus import Daemon, daemon_env, viirscollector, wait_until

from avoviirscollector import bus
from avoviirscollector.pipeline.nameserver import REANNOUNCE_SECONDS


@pytest.fixture
def nameserver():
    base = Path(tempfile.mkdtemp(prefix="v"))
    daemon = Daemon(viirscollector("nameserver"), daemon_env(base), base / "nameserver.log")
    yield daemon
    daemon.stop()
    shutil.rmtree(base, ignore_errors=True)


def test_publisher_is_announced_again_to_a_subscriber_that_connected_late(nameserver):
    port = int(os.environ["POSTTROLL_ADDRESS_PUBLISH_PORT"])
    with bus.publish("late_subscriber_test") as publisher:
        publisher_port = publisher.port_number
        wait_until(lambda: "late_subscriber_test" in nameserver.log(), 20, "the first announcement")
        context = zmq.Context()
        socket = context.socket(zmq.SUB)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.SUBSCRIBE, b"pytroll://address")
        socket.connect(f"tcp://127.0.0.1:{port}")
        try:
            deadline = time.monotonic() + REANNOUNCE_SECONDS + 5
            announced = None
            while time.monotonic() < deadline and announced is None:
                if socket.poll(500):
                    message = bus.Message.decode(socket.recv_string())
                    if message.subject == "/address/late_subscriber_test":
                        announced = message
        finally:
            socket.close(linger=0)
            context.term()
    assert announced is not None, "no announcement for a publisher registered earlier"
    assert announced.data["status"] is True
    assert announced.data["URI"].endswith(f":{publisher_port}")


def test_nameserver_stops_at_once_on_sigterm(nameserver):
    wait_until(lambda: "re-announced every" in nameserver.log(), 20, "the nameserver to start")
    started = time.monotonic()
    assert nameserver.stop(timeout=10) == 0
    assert time.monotonic() - started < 4
