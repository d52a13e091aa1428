"""msg_publisher republishes every message on its port, readable by posttroll 1.5 and today's.

A real nameserver, the real ``msg_publisher``, a real posttroll publisher and a plain
ZMQ SUB socket as the clients of 29092 use; decoded by posttroll 1.13 and 1.5.1.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from helpers.bus import Daemon, ZmqReader, daemon_env, nameserver_argv, wait_until
from helpers.legacy_posttroll import decode_many_with_posttroll_1_5

from avoviirscollector import bus
from avoviirscollector.netutil import free_port
from avoviirscollector.operator.collector_process import connected
from avoviirscollector.pipeline import msg_publisher
from avoviirscollector.pipeline.msg_publisher import is_chatter, legacy_encoding, naive_utc

FILE_DATA = {
    "segment": "SVI05",
    "platform_name": "NOAA-20",
    "orig_platform_name": "j01",
    "start_time": dt.datetime(2019, 10, 21, 23, 27, 56, 100000),
    "end_time": dt.datetime(2019, 10, 21, 23, 29, 20, 300000),
    "orbit_number": 10131,
    "proctime": dt.datetime(2019, 10, 21, 23, 39, 10, 734917),
    "uri": "/viirs/sdr/SVI05.h5",
    "uid": "SVI05.h5",
    "sensor": ["viirs"],
}


@pytest.fixture(scope="module")
def base():
    path = Path(tempfile.mkdtemp(prefix="v"))
    (path / "log").mkdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def port():
    return free_port()


@pytest.fixture(scope="module")
def publisher_daemon(base, port):
    ns = Daemon(nameserver_argv(), daemon_env(base), base / "log" / "nameserver.log")
    daemon = Daemon(
        ["msg_publisher"],
        daemon_env(base, VIIRS_MESSAGE_PORT=str(port)),
        base / "log" / "msg_publisher.log",
    )
    yield daemon
    daemon.stop()
    ns.stop()


@pytest.fixture(scope="module")
def source(publisher_daemon):
    with bus.publish("test_source") as pub:
        wait_until(
            lambda: connected(publisher_daemon.pid, os.getpid()), 20, "msg_publisher to subscribe"
        )
        yield pub


def test_every_message_is_republished_readable_by_posttroll_1_5_and_today(port, source):
    with ZmqReader(port) as reader:
        raws = _send_until_received(source, reader, FILE_DATA)
        source.send(str(bus.message("/AVO/viirs/granule/tir", "dataset", {"dataset": []})))
        raws.append(reader.recv())

    current = [bus.Message.decode(raw.decode("utf-8")) for raw in raws[-2:]]
    assert [m.subject for m in current] == ["/AVO/viirs/sdr", "/AVO/viirs/granule/tir"]
    assert {**current[0].data, "uid": "SVI05.h5"} == FILE_DATA
    assert current[0].version == "v1.01"
    legacy = decode_many_with_posttroll_1_5(raws[-2:])
    assert legacy[0]["version"] == "v1.01"
    assert legacy[0]["data"]["start_time"] == "2019-10-21T23:27:56.100000"
    assert {"start_time", "end_time", "proctime"} <= set(legacy[0]["datetimes"])
    assert legacy[1]["subject"] == "/AVO/viirs/granule/tir"


def test_heartbeats_are_not_republished(port, source):
    with ZmqReader(port) as reader:
        _send_until_received(source, reader, FILE_DATA)
        source.heartbeat()
        source.send(str(bus.message("/AVO/viirs/sdr", "file", {"uid": "after-beat"})))
        frames = [reader.recv()] + reader.drain(0.3)
    messages = [bus.Message.decode(f.decode()) for f in frames]
    assert [m.data.get("uid") for m in messages] == ["after-beat"]


def _send_until_received(source, reader: ZmqReader, data: dict) -> list[bytes]:
    """Send a file message until the reader gets one (a SUB socket misses what is sent
    while it connects); each attempt names another file: a repeat would not pass."""
    raws: list[bytes] = []
    attempts = iter(range(1000))

    def attempt():
        uid = f"{data['uid']}-{next(attempts)}-{time.monotonic_ns()}"
        source.send(str(bus.message("/AVO/viirs/sdr", "file", {**data, "uid": uid})))
        raws.extend(reader.drain(0.2))
        return raws

    wait_until(attempt, 10, "the first republished message")
    return raws


def test_aware_datetimes_become_naive_utc():
    alaska = dt.timezone(dt.timedelta(hours=-9))
    value = {"t": dt.datetime(2019, 10, 21, 14, 0, tzinfo=alaska), "l": [dt.datetime(2019, 1, 1)]}
    assert naive_utc(value) == {
        "t": dt.datetime(2019, 10, 21, 23, 0),
        "l": [dt.datetime(2019, 1, 1)],
    }


def test_a_v1_2_message_is_re_encoded_as_v1_01():
    message = bus.Message("/AVO/viirs/sdr", "file", dict(FILE_DATA), version="v1.2")
    message.data["start_time"] = message.data["start_time"].replace(tzinfo=dt.UTC)
    raw = legacy_encoding(message).decode("utf-8")
    assert " v1.01 " in raw
    assert "+00:00" not in raw
    assert bus.Message.decode(raw).data["start_time"] == FILE_DATA["start_time"]


def test_address_announcements_and_heartbeats_are_chatter():
    assert is_chatter(bus.Message("/address/trollstalker", "info", {"URI": "tcp://x:1"}))
    assert is_chatter(bus.Message("/heartbeat/trollstalker", "beat", {"min_interval": 0}))
    assert not is_chatter(bus.message("/AVO/viirs/sdr", "file", FILE_DATA))


def test_a_file_or_granule_sent_again_is_not_republished_but_a_reprocess_is(
    port, source, publisher_daemon
):
    with ZmqReader(port) as reader:
        _send_until_received(source, reader, FILE_DATA)
        again = {**FILE_DATA, "uid": "SVI05_again.h5"}
        granule = {"dataset": [{"uid": "GITCO.h5"}, {"uid": "SVI05_again.h5"}]}
        for _ in range(3):  # the catch-up and the replays repeat on purpose
            source.send(str(bus.message("/AVO/viirs/sdr", "file", again)))
            source.send(str(bus.message("/AVO/viirs/granule/tir", "dataset", granule)))
        source.send(str(bus.message("/AVO/viirs/sdr", "file", {**again, "reprocess": "r-1"})))
        frames = reader.drain(1.0)
    messages = [bus.Message.decode(f.decode()) for f in frames]
    assert [(m.type, m.data.get("reprocess")) for m in messages] == [
        ("file", None),
        ("dataset", None),
        ("file", "r-1"),
    ]


def test_what_was_sent_is_remembered_across_a_kill_9(base, tmp_path):
    memory = msg_publisher.SentMemory(base / "state" / "kill9.sqlite", 3600)
    assert memory.first_time("file|A.h5|1")
    assert not memory.first_time("file|A.h5|1")
    del memory  # no close: as after a kill -9
    reopened = msg_publisher.SentMemory(base / "state" / "kill9.sqlite", 3600)
    assert not reopened.first_time("file|A.h5|1")
    assert reopened.first_time("file|A.h5|2"), "the same name on a new inode is a new file"
    later = msg_publisher.SentMemory(
        base / "state" / "kill9.sqlite", 3600, clock=lambda: time.time() + 7200
    )
    assert later.first_time("file|A.h5|1"), "forgotten after the memory"
