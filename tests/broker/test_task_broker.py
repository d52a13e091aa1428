"""The task_broker daemon, end to end: a real nameserver, a real posttroll publisher standing
for a segment_gatherer, the real ``task_broker`` subprocess, workers on real ZMQ sockets.

posttroll's slow joiner: a message published before the broker's subscriber is connected
is lost, so every granule is published again until the broker shows it (re-publishing is
harmless: a granule already queued merges into its own task and adds nothing).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zmq
from helpers.bus import Daemon, nameserver_argv, wait_until
from helpers.legacy_posttroll import decode_with_posttroll_1_5

from avoviirscollector import bus
from avoviirscollector.broker.task_store import DB_NAME
from avoviirscollector.netutil import free_port

pytestmark = pytest.mark.timeout(180)

T0 = dt.datetime(2024, 3, 1, 12, 0, 0, 300000)


def granule_data(orbit=1000, minutes=0.0, platform="NOAA-20", tag="", **extra) -> dict:
    """Data of a granule message as segment_gatherer publishes it."""
    start = T0 + dt.timedelta(minutes=minutes)
    stamp = f"{orbit}_{start:%H%M%S}{tag}"
    return {
        "platform_name": platform,
        "orbit_number": orbit,
        "start_time": start,
        "end_time": start + dt.timedelta(seconds=85.4),
        "sensor": ["viirs"],
        "dataset": [
            {"uid": f"GITCO_{stamp}.h5", "uri": f"/viirs/sdr/GITCO_{stamp}.h5"},
            {"uid": f"SVI05_{stamp}.h5", "uri": f"/viirs/sdr/SVI05_{stamp}.h5"},
        ],
        **extra,
    }


def uids(raw: bytes) -> list[str]:
    return [item["uid"] for item in bus.Message.decode(raw.decode("utf-8")).data["dataset"]]


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


class Broker:
    """The ``task_broker`` program on free ports with its own base directory.

    Its granules start in 2024: VIIRS_STALE_TASK_HOURS=0 keeps the original order for
    all of them unless a test sets the variable (the newest-first tests do).
    """

    def __init__(self, base: Path, env: dict | None = None):
        self.base = base
        self.task_port, self.state_port = free_port(), free_port()
        self.env = {
            **os.environ,
            "VIIRS_BASE_DIR": str(base),
            "VIIRS_TASK_PORT": str(self.task_port),
            "VIIRS_STATE_PORT": str(self.state_port),
            "PYTHONUNBUFFERED": "1",
            "VIIRS_STALE_TASK_HOURS": "0",
            **(env or {}),
        }
        base.mkdir(parents=True, exist_ok=True)  # state/ is the broker's to create
        self.log_path = base / "task_broker.log"
        self.daemon: Daemon | None = None
        self.context = zmq.Context()
        self.sub = self.context.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.connect(f"tcp://127.0.0.1:{self.state_port}")

    @property
    def db(self) -> Path:
        return self.base / "state" / DB_NAME

    def start(self) -> Broker:
        self.daemon = Daemon([shutil.which("task_broker")], self.env, self.log_path)
        self.state(timeout=20)  # it answers: sockets bound, queue open
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def state(self, timeout: float = 3) -> dict:
        """The next queue-state message published from now on."""
        while self.sub.poll(0):
            self.sub.recv()
        if not self.sub.poll(int(timeout * 1000)):
            raise AssertionError(f"no queue state within {timeout} s\n{self.log()}")
        return json.loads(self.sub.recv())

    def request(self, request, timeout: float = 5) -> bytes:
        """One request from a fresh REQ socket, as a worker sends it (JSON or raw bytes)."""
        req = self.context.socket(zmq.REQ)
        req.setsockopt(zmq.LINGER, 0)
        req.connect(f"tcp://127.0.0.1:{self.task_port}")
        try:
            if isinstance(request, bytes):
                req.send(request)
            else:
                req.send_json(request)
            if not req.poll(int(timeout * 1000)):
                raise AssertionError(f"no reply to {request!r:.100} within {timeout} s")
            return req.recv()
        finally:
            req.close(linger=0)

    def peek(self, *products: str) -> bytes:
        return self.request({"desired products": list(products), "just testing": True})

    def take(self, *products: str, **extra) -> bytes:
        return self.request({"desired products": list(products), "just testing": False, **extra})

    def stop(self) -> int:
        return self.daemon.stop() if self.daemon else 0

    def kill9(self) -> None:
        self.daemon.process.kill()
        self.daemon.process.wait(10)
        self.daemon.stop()

    def close(self) -> None:
        self.stop()
        self.sub.close(linger=0)
        self.context.term()


@pytest.fixture(scope="module")
def nameserver(tmp_path_factory):
    log = tmp_path_factory.mktemp("nameserver") / "nameserver.log"
    daemon = Daemon(nameserver_argv(), dict(os.environ), log)
    port = int(os.environ["POSTTROLL_NAMESERVER_PORT"])
    wait_until(lambda: _listening(port), 20, "the nameserver to listen")
    yield daemon
    daemon.stop()


@pytest.fixture(scope="module")
def gatherer(nameserver):
    """A posttroll publisher registered with the nameserver, as a segment_gatherer is."""
    with bus.publish("segment_gatherer_viirs_tir") as publisher:
        yield publisher


@pytest.fixture
def broker(tmp_path, nameserver):
    broker = Broker(tmp_path / "viirs").start()
    yield broker
    broker.close()


def deliver(gatherer, data: dict, arrived, product: str = "tir", timeout: float = 30):
    """Publish a granule message until ``arrived()`` is true (the slow joiner)."""
    raw = bus.message(f"/AVO/viirs/granule/{product}", "dataset", data).encode()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        gatherer.send(raw)
        try:
            return wait_until(arrived, 0.6, "the granule to arrive")
        except AssertionError:
            continue
    raise AssertionError(f"the broker never showed granule {data['dataset'][0]['uid']}")


def queue_length(broker: Broker, count: int):
    return lambda: broker.state()["queue length"] == count


def holds(broker: Broker, uid: str, product: str = "tir"):
    """True once the oldest task of ``product`` holds the file ``uid``."""

    def check() -> bool:
        raw = broker.peek(product)
        return bool(raw) and uid in uids(raw)

    return check


# --- the workers' protocol ------------------------------------------------------------


def test_worker_like_the_existing_ones_gets_a_task_posttroll_1_5_decodes(broker, gatherer):
    data = granule_data(orbit=41131)
    deliver(gatherer, data, queue_length(broker, 1))
    context = zmq.Context()
    socket_ = context.socket(zmq.REQ)
    socket_.setsockopt(zmq.LINGER, 0)
    socket_.setsockopt(zmq.RCVTIMEO, 5000)
    socket_.connect(f"tcp://localhost:{broker.task_port}")
    try:
        socket_.send_json({"desired products": ["tir", "mir"], "just testing": False})
        reply = socket_.recv()
        task = bus.Message.decode(reply.decode("utf-8"))
        socket_.send_json({"desired products": ["tir", "mir"], "just testing": False})
        assert socket_.recv() == b"", "the task was removed from the queue"
    finally:
        socket_.close(linger=0)
        context.term()
    assert task.subject == "/AVO/viirs/granule/tir"
    assert task.version == "v1.01"
    assert task.data["orbit_number"] == 41131
    assert task.data["start_time"] == T0 and task.data["start_time"].tzinfo is None
    assert [d["uid"] for d in task.data["dataset"]] == [d["uid"] for d in data["dataset"]]
    legacy = decode_with_posttroll_1_5(reply)
    assert legacy["subject"] == "/AVO/viirs/granule/tir" and legacy["version"] == "v1.01"
    assert {"start_time", "end_time"} <= set(legacy["datetimes"])
    assert legacy["data"]["start_time"] == T0.isoformat()
    assert "handed out task 1 (tir 41131_120000 12:00:00, 2 files) to " in broker.log()


def test_empty_reply_when_no_task_of_the_desired_products(broker, gatherer):
    assert broker.take("tir") == b""
    deliver(gatherer, granule_data(), queue_length(broker, 1))
    assert broker.take("mir", "vis") == b""
    assert broker.peek("tir") != b""


def test_just_testing_returns_the_task_and_leaves_it_queued(broker, gatherer):
    deliver(gatherer, granule_data(), queue_length(broker, 1))
    first, second = broker.peek("tir"), broker.peek("tir")
    assert uids(first) == uids(second)
    assert broker.state()["queue length"] == 1
    assert uids(broker.take("tir")) == uids(first)
    assert broker.peek("tir") == b""


BAD_REQUESTS = [
    (b"tir please", "not JSON"),
    (b"\xff\xfe\xfd", "not UTF-8"),
    (b'["tir"]', "JSON object"),
    (b'{"just testing": false}', "'desired products' is missing"),
    (b'{"desired products": []}', "empty"),
    (b'{"desired products": "tir"}', "list of strings"),
    (b'{"desired products": [7]}', "not a product name"),
    (b'{"desired products": ["tir"], "just testing": "no"}', "true or false"),
    (b'{"desired products": ["tir"], "lease": 0}', "over 0"),
    (b'{"ack": "1-nosuchlease"}', "holds no lease"),
    (b'{"desired products": ["tri"]}', "unknown product 'tri' (known: tir, vis, btd, mir)"),
]


def test_each_bad_request_gets_an_error_reply_and_next_good_one_is_served(broker, gatherer):
    deliver(gatherer, granule_data(), queue_length(broker, 1))
    for raw, reason in BAD_REQUESTS:
        reply = broker.request(raw)
        assert reply.startswith(b"error: ") and reason.encode() in reply, (raw[:60], reply)
        assert broker.peek("tir") != b"", f"not served after {raw[:60]!r}"
    assert broker.log().count("WARNING task_broker: refused a request") == len(BAD_REQUESTS)
    assert broker.take("tir") != b""


def test_same_orbit_10_min_apart_merges_and_50_min_apart_splits(broker, gatherer):
    deliver(gatherer, granule_data(minutes=0), queue_length(broker, 1))
    ten = granule_data(minutes=10)
    deliver(gatherer, ten, holds(broker, ten["dataset"][0]["uid"]))
    deliver(gatherer, granule_data(minutes=50), queue_length(broker, 2))
    merged = bus.Message.decode(broker.take("tir").decode())
    assert len(merged.data["dataset"]) == 4
    assert merged.data["start_time"] == T0
    assert merged.data["end_time"] == ten["end_time"]
    split = bus.Message.decode(broker.take("tir").decode())
    assert split.data["start_time"] == T0 + dt.timedelta(minutes=50)
    assert len(split.data["dataset"]) == 2


def test_merged_task_keeps_its_place_in_the_queue(broker, gatherer):
    deliver(gatherer, granule_data(orbit=1), queue_length(broker, 1))
    deliver(gatherer, granule_data(orbit=2), queue_length(broker, 2))
    late = granule_data(orbit=1, minutes=-3)  # merges into orbit 1 and moves its start back
    deliver(gatherer, late, holds(broker, late["dataset"][0]["uid"]))
    first = bus.Message.decode(broker.take("tir").decode())
    assert first.data["orbit_number"] == 1 and len(first.data["dataset"]) == 4
    assert first.data["start_time"] == late["start_time"]
    assert bus.Message.decode(broker.take("tir").decode()).data["orbit_number"] == 2


def test_granule_published_again_after_hand_out_is_not_a_second_task_but_a_reprocess_is(
    broker, gatherer
):
    data = granule_data()
    deliver(gatherer, data, queue_length(broker, 1))
    handed = broker.take("tir")
    deliver(gatherer, data, lambda: "(published again)" in broker.log())
    assert broker.state()["queue length"] == 0
    deliver(gatherer, {**data, "reprocess": "2024-03-02T10:00:00Z"}, queue_length(broker, 1))
    again = bus.Message.decode(broker.take("tir").decode())
    assert uids(handed) == [d["uid"] for d in again.data["dataset"]]
    # posttroll decodes the time-like request id into a datetime: still one id
    assert again.data["reprocess"] == dt.datetime(2024, 3, 2, 10, 0)
    assert "(reprocess 2024-03-02T10:00:00)" in broker.log()


def test_lease_expiry_returns_task_to_the_head_and_ack_finishes_it(broker, gatherer):
    deliver(gatherer, granule_data(orbit=1), queue_length(broker, 1))
    deliver(gatherer, granule_data(orbit=2), queue_length(broker, 2))
    leased = bus.Message.decode(broker.take("tir", lease=1).decode())
    task_id = leased.data["task_id"]
    assert leased.data["orbit_number"] == 1
    assert bus.Message.decode(broker.peek("tir").decode()).data["orbit_number"] == 2
    wait_until(lambda: "expired without an ack" in broker.log(), 10, "the lease to expire")
    back = bus.Message.decode(broker.peek("tir").decode())
    assert back.data["orbit_number"] == 1 and "task_id" not in back.data
    assert broker.request({"ack": task_id}).startswith(b"error: ")
    again = bus.Message.decode(broker.take("tir", lease=30).decode())
    assert again.data["orbit_number"] == 1 and again.data["task_id"] != task_id
    assert broker.request({"ack": again.data["task_id"]}) == b"ok"
    assert broker.state()["queue length"] == 1
    assert bus.Message.decode(broker.take("tir").decode()).data["orbit_number"] == 2


# --- durability -----------------------------------------------------------------------


def test_kill_9_with_tasks_queued_then_restart_serves_the_same_queue(broker, gatherer):
    for count, (orbit, product) in enumerate(((5, "tir"), (3, "tir"), (4, "mir")), 1):
        deliver(gatherer, granule_data(orbit=orbit), queue_length(broker, count), product)
    leased = bus.Message.decode(broker.take("tir", lease=60).decode())
    before = broker.state()
    broker.kill9()
    broker.start()
    assert broker.state()["queue length"] == before["queue length"] == 2
    assert broker.state()["tasks leased"] == 1
    assert leased.data["orbit_number"] == 5
    assert bus.Message.decode(broker.take("tir", "mir").decode()).data["orbit_number"] == 3
    assert bus.Message.decode(broker.take("tir", "mir").decode()).data["orbit_number"] == 4
    assert broker.request({"ack": leased.data["task_id"]}) == b"ok"
    assert broker.take("tir", "mir") == b""


def test_corrupt_database_is_moved_aside_with_a_mailed_error_and_broker_serves(
    tmp_path, nameserver, gatherer, smtp_server, mail_env
):
    base = tmp_path / "viirs"
    (base / "state").mkdir(parents=True)
    (base / "state" / DB_NAME).write_bytes(b"not a database\n" * 1000)
    broker = Broker(base, mail_env).start()
    try:
        assert broker.take("tir") == b""
        deliver(gatherer, granule_data(), queue_length(broker, 1))
        aside = list((base / "state").glob(f"{DB_NAME}.corrupt-*"))
        assert len(aside) == 1 and aside[0].read_bytes() == b"not a database\n" * 1000
        assert "ERROR task_broker: task queue" in broker.log()
        [mail] = smtp_server.wait_for(1, timeout=20)
        assert "moved it to" in mail.get_content() and "task_broker" in mail["Subject"]
    finally:
        broker.close()


# --- the monitors' view, discovery, shutdown -------------------------------------------


def test_queue_state_every_second_on_the_state_port(broker, gatherer):
    deliver(gatherer, granule_data(orbit=1), queue_length(broker, 1))
    deliver(gatherer, granule_data(orbit=2), queue_length(broker, 2), product="mir")
    started = time.monotonic()
    states = [broker.state(), broker.state(), broker.state()]
    assert 1.0 <= time.monotonic() - started < 4.5
    state = states[-1]
    assert state["queue length"] == 2
    assert state["products waiting"] == ["mir", "tir"]
    assert state["tasks per product"] == {"mir": 1, "tir": 1}
    assert state["oldest task age"] >= 0 and state["tasks leased"] == 0


def test_gatherer_started_after_the_broker_and_restarted_is_picked_up(broker, nameserver):
    with bus.publish("segment_gatherer_viirs_mir") as late:
        deliver(late, granule_data(orbit=7), queue_length(broker, 1), product="mir")
    with bus.publish("segment_gatherer_viirs_mir") as restarted:
        deliver(restarted, granule_data(orbit=8), queue_length(broker, 2), product="mir")


def test_sigterm_stops_the_broker_cleanly_with_status_0(broker):
    broker.daemon.signal(signal.SIGTERM)
    assert broker.daemon.process.wait(10) == 0
    assert "stopped (SIGTERM)" in broker.log()
    assert "Traceback" not in broker.log()


def test_bad_setting_is_one_line_and_status_2(tmp_path):
    env = {**os.environ, "VIIRS_BASE_DIR": str(tmp_path), "VIIRS_TASK_PORT": "nineteen"}
    done = subprocess.run(["task_broker"], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "configuration error: VIIRS_TASK_PORT='nineteen' is not valid: "
        "expected an integer from 1 to 65535"
    ]


def test_task_port_in_use_is_one_error_line_and_status_1(tmp_path, broker):
    other = Broker(tmp_path / "other", {"VIIRS_TASK_PORT": str(broker.task_port)})
    try:
        done = subprocess.run(
            ["task_broker"], env=other.env, capture_output=True, text=True, timeout=30
        )
    finally:
        other.close()
    assert done.returncode == 1
    assert "cannot listen on ports" in done.stderr and "Traceback" not in done.stderr


_PUBLISHER = """
import datetime as dt, sys, time
from avoviirscollector import bus
start = dt.datetime(2024, 3, 1, 12)
data = {"platform_name": "NOAA-20", "orbit_number": 77, "start_time": start,
        "end_time": start + dt.timedelta(seconds=85), "sensor": ["viirs"],
        "dataset": [{"uid": "SVI05_late.h5", "uri": "/viirs/sdr/SVI05_late.h5"}]}
with bus.publish("segment_gatherer_viirs_tir") as publisher:
    for _ in range(200):
        publisher.send(bus.message("/AVO/viirs/granule/tir", "dataset", data).encode())
        time.sleep(0.3)
"""


def test_broker_started_before_the_nameserver_serves_then_subscribes(tmp_path):
    ports = {
        name: str(free_port())
        for name in (
            "POSTTROLL_NAMESERVER_PORT",
            "POSTTROLL_ADDRESS_PUBLISH_PORT",
            "POSTTROLL_BROADCAST_PORT",
        )
    }
    broker = Broker(tmp_path / "viirs", ports).start()
    nameserver = publisher = None
    try:
        wait_until(lambda: "cannot subscribe" in broker.log(), 20, "a failed subscription")
        assert broker.take("tir") == b"", "workers are served meanwhile"
        nameserver = Daemon(nameserver_argv(), broker.env, tmp_path / "ns.log")
        publisher = Daemon(
            [sys.executable, "-c", _PUBLISHER], broker.env, tmp_path / "publisher.log"
        )
        wait_until(queue_length(broker, 1), 40, "the granule from the late nameserver")
        assert broker.daemon.process.poll() is None
    finally:
        for daemon in (publisher, nameserver):
            if daemon is not None:
                daemon.stop()
        broker.close()


def test_wal_checkpoint_waits_for_a_quiet_moment_but_not_forever():
    from avoviirscollector.broker.task_broker import (
        CHECKPOINT_EVERY,
        CHECKPOINT_IDLE,
        checkpoint_due,
    )

    busy = 100.0  # a request was served just now
    assert not checkpoint_due(now=100.0, last_activity=busy, last_checkpoint=90.0)
    assert checkpoint_due(now=100.0 + CHECKPOINT_IDLE, last_activity=busy, last_checkpoint=90.0)
    assert checkpoint_due(now=100.0, last_activity=busy, last_checkpoint=100.0 - CHECKPOINT_EVERY)
    assert not checkpoint_due(now=100.5, last_activity=0.0, last_checkpoint=100.0)


# --- requests over the limit, log lines, newest first ------------------------------------


def test_frame_over_the_request_limit_closes_that_connection_and_others_are_served(
    broker, gatherer
):
    """Issue 12.4: ZMQ_MAXMSGSIZE is the documented 64 KiB limit; libzmq drops larger frames."""
    from avoviirscollector.broker.task_rules import MAX_REQUEST_BYTES

    deliver(gatherer, granule_data(), queue_length(broker, 1))
    at_limit = b'{"desired products": ["tir"], "just testing": true, "x": "'
    at_limit += b"y" * (MAX_REQUEST_BYTES - len(at_limit) - 2) + b'"}'
    assert len(at_limit) == MAX_REQUEST_BYTES and broker.request(at_limit) != b""
    with pytest.raises(AssertionError, match="no reply"):
        broker.request(at_limit[:-2] + b'y"}', timeout=2)
    assert broker.peek("tir") != b"", "served after the oversized frame"
    assert "Traceback" not in broker.log()


REAL_NAME = (
    "{segment}_j01_d20240301_t{start:%H%M%S}3_e{end:%H%M%S}5_b{orbit}"
    "_c20240301{start:%H%M%S}123456_cspp_dev.h5"
)


def real_granule(orbit: int, start: dt.datetime) -> dict:
    """A granule message whose files have names of the real pattern."""
    end = start + dt.timedelta(seconds=85)
    names = [
        REAL_NAME.format(segment=s, start=start, end=end, orbit=orbit) for s in ("GITCO", "SVI05")
    ]
    return {
        "platform_name": "NOAA-20",
        "orbit_number": orbit,
        "start_time": start,
        "end_time": end,
        "sensor": ["viirs"],
        "dataset": [{"uid": name, "uri": f"/viirs/sdr/{name}"} for name in names],
    }


def test_broker_lines_name_the_files_stem_stay_under_200_and_peeks_write_none(broker, gatherer):
    """Issue 14.10 for the broker: grep a file's stem finds its story; idle polls log nothing."""
    first = real_granule(41131, T0)
    stem = "j01_d20240301_t1200003_e1201255_b41131"
    deliver(gatherer, first, queue_length(broker, 1))
    later = real_granule(41131, T0 + dt.timedelta(seconds=86))
    deliver(gatherer, later, holds(broker, later["dataset"][0]["uid"]))
    deliver(gatherer, real_granule(41132, T0 + dt.timedelta(minutes=101)), queue_length(broker, 2))
    lines_before = broker.log().count("\n")
    for _ in range(200):
        broker.peek("tir", "mir")
    assert broker.log().count("\n") == lines_before, "a just-testing poll wrote a line"
    leased = bus.Message.decode(broker.take("tir", lease=600).decode())
    assert broker.request({"ack": leased.data["task_id"]}) == b"ok"
    broker.take("tir")
    deliver(gatherer, first, lambda: "(published again)" in broker.log())
    # lines naming the queue's file are measured as in production (base /viirs)
    log = broker.log().replace(str(broker.base), "/viirs")
    info = [line for line in log.splitlines() if " INFO " in line]
    assert [line for line in info if len(line) >= 200] == []
    story = [line.split(": ", 1)[1] for line in info if stem in line]
    assert [line.split(" ", 2)[:2] for line in story] == [
        ["queued", "task"],
        ["handed", "out"],
        ["task", "1"],
        ["ignored", "granule"],
    ], story
    assert story[0] == f"queued task 1 (tir {stem} 12:00:00, 2 files)"
    assert story[1].startswith(f"handed out task 1 (tir {stem} +1 12:00:00, 4 files) to 127.")
    assert story[2].endswith("acknowledged by 127.0.0.1: done")
    merged = [line for line in info if "merged granule tir j01_d20240301_t1201263" in line]
    assert len(merged) == 1 and "into task 1 (+2 files, 4 in all" in merged[0], info


def test_a_2019_worker_gets_the_newest_granule_first_when_the_backlog_is_stale(
    tmp_path, nameserver, gatherer
):
    """Issue 17: tasks older than VIIRS_STALE_TASK_HOURS wait behind the current pass."""
    broker = Broker(tmp_path / "viirs", {"VIIRS_STALE_TASK_HOURS": "1"}).start()
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    ages = {50001: 26, 50002: 5, 50003: 0.3, 50004: 3, 50005: 0.1}  # orbit -> hours ago
    try:
        for count, (orbit, hours) in enumerate(ages.items(), 1):
            data = real_granule(orbit, now - dt.timedelta(hours=hours))
            deliver(gatherer, data, queue_length(broker, count))
        context = zmq.Context()
        worker = context.socket(zmq.REQ)  # as the 2019 workers ask, nothing new
        worker.setsockopt(zmq.LINGER, 0)
        worker.setsockopt(zmq.RCVTIMEO, 5000)
        worker.connect(f"tcp://localhost:{broker.task_port}")
        orbits = []
        for _ in ages:
            worker.send_json({"desired products": ["tir", "mir"], "just testing": False})
            orbits.append(bus.Message.decode(worker.recv().decode()).data["orbit_number"])
        worker.close(linger=0)
        context.term()
    finally:
        broker.close()
    assert orbits == [50003, 50005, 50004, 50002, 50001]
