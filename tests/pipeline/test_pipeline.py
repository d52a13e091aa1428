"""The whole pipeline under the real supervisord.conf, from an empty base directory.

``viirscollector run`` starts everything; SDR files renamed into sdr/ must give one
message per file on the message port (29092 in production) and one granule message
per completed product, readable by posttroll 1.5.1 and today's; every program must
come back after ``kill -9`` with the pipeline delivering again, whatever the order
in which programs start.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from helpers.bus import PRODUCTS, REPO, BusListener, ZmqReader, wait_until
from helpers.legacy_posttroll import decode_many_with_posttroll_1_5

from avoviirscollector import bus
from avoviirscollector.netutil import connected
from avoviirscollector.operator.collector_process import (
    GATHERERS,
    PIPELINE,
    PROGRAMS,
    CollectorProcess,
)
from avoviirscollector.pipeline.replay_listener import replay_targets
from avoviirscollector.standins.synthetic_sdr import make_sdr_file

pytestmark = pytest.mark.system

SEGMENTS = sorted({segment for segments in PRODUCTS.values() for segment in segments})
#: Programs whose code is in the package (task_broker and cron come from other work).
EXPECTED = [
    program
    for program in PROGRAMS
    if program in PIPELINE
    or (
        program == "task_broker"
        and importlib.util.find_spec("avoviirscollector.broker.task_broker")
    )
    or (program == "supercronic" and importlib.util.find_spec("avoviirscollector.jobs.cron"))
]
#: What a restarted program logs once it has looked back at sdr/.
LOOK_BACK = {"trollstalker": "catch-up:", **{g: "replay:" for g in GATHERERS}}


class Pipeline:
    """The collector plus the test's two ends: the message port and the granule topic."""

    def __init__(self, collector: CollectorProcess):
        self.collector = collector
        self.reader = ZmqReader(collector.message_port)
        self.granules = BusListener("/AVO/viirs/granule").__enter__()
        self.orbit = 40000

    def close(self):
        self.granules.__exit__(None, None, None)
        self.reader.__exit__(None, None, None)

    def ready(self, timeout: float = 30):
        """Every subscription in place: collector's own, and the test's ends."""
        self.collector.wait_subscribed(timeout=timeout)
        pids = {program: self.collector.pid(program) for program in PIPELINE}
        me = os.getpid()
        for program in (*GATHERERS, "msg_publisher"):
            wait_until(lambda p=program: connected(me, pids[p]), timeout, f"test -> {program}")
        time.sleep(0.2)
        self.reader.drain(0.3)
        self.granules.drain(0.3)

    def deliver(self) -> tuple[list[bytes], list[bus.Message]]:
        """Land one granule of every segment; return its frames on the port and its granules."""
        self.orbit += 1
        orbit = self.orbit
        start = dt.datetime(2026, 1, 1, 0, 0, 0, 100000) + dt.timedelta(seconds=86 * orbit)
        staging = self.collector.base_dir / "tmp"
        for segment in SEGMENTS:
            path = make_sdr_file(staging, segment, "j01", start, orbit=orbit, size=20_000)
            os.replace(path, self.collector.sdr_dir / path.name)
        expected_frames = len(SEGMENTS) + len(PRODUCTS)
        frames: list[bytes] = []
        granules: list[bus.Message] = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and (
            len(frames) < expected_frames or len(granules) < len(PRODUCTS)
        ):
            frames += [f for f in self.reader.drain(0.1) if _orbit(f) == orbit]
            granules += [m for m in self.granules.drain(0.1) if m.data["orbit_number"] == orbit]
        frames += [f for f in self.reader.drain(0.5) if _orbit(f) == orbit]
        granules += [m for m in self.granules.drain(0.1) if m.data["orbit_number"] == orbit]
        return frames, granules


def _orbit(frame: bytes) -> int | None:
    return bus.Message.decode(frame.decode("utf-8")).data.get("orbit_number")


@pytest.fixture(scope="module")
def collector():
    base = Path(tempfile.mkdtemp(prefix="v"))
    try:
        with CollectorProcess(base / "viirs").start(EXPECTED, timeout=90) as running:
            yield running
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def pipeline(collector):
    pipeline = Pipeline(collector)
    try:
        # After trollstalker's catch-up and the gatherers' replay, which would publish
        # the first test's files a second time.
        for program, text in LOOK_BACK.items():
            wait_until(lambda p=program, t=text: t in collector.log(p), 30, f"{program} start")
        pipeline.ready()
        yield pipeline
    finally:
        pipeline.close()


def check_delivery(frames: list[bytes], granules: list[bus.Message]):
    messages = [bus.Message.decode(f.decode("utf-8")) for f in frames]
    files = [m for m in messages if m.type == "file"]
    assert sorted(m.data["segment"] for m in files) == SEGMENTS, "one message per file"
    assert all(m.subject == "/AVO/viirs/sdr" and m.version == "v1.01" for m in files)
    on_port = sorted(m.subject for m in messages if m.type == "dataset")
    by_product = sorted(f"/AVO/viirs/granule/{p}" for p in PRODUCTS)
    assert on_port == by_product, "granule messages are republished on the port too"
    assert sorted(m.subject for m in granules) == by_product, "one granule per product"
    for granule in granules:
        product = granule.subject.rsplit("/", 1)[1]
        segments = sorted(d["uid"][:5] for d in granule.data["dataset"])
        assert segments == sorted(PRODUCTS[product])


def test_every_program_runs_from_an_empty_base_directory(collector):
    states = collector.program_states()
    assert {name: states[name] for name in EXPECTED} == dict.fromkeys(EXPECTED, "RUNNING")
    assert sorted(p.name for p in collector.base_dir.iterdir()) == [
        "elements",
        "log",
        "sdr",
        "state",
        "tmp",
    ]


def test_supervisor_issue_123_program_logs_are_readable_by_other_users(collector):
    for program in [*EXPECTED, "supervisord"]:
        path = collector.base_dir / "log" / f"{program}.log"
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def test_supervisorctl_works_with_the_same_config(collector):
    env = dict(os.environ, VIIRS_BASE_DIR=str(collector.base_dir), VIIRS_CONFIG_DIR=str(REPO))
    result = subprocess.run(
        ["supervisorctl", "-c", str(REPO / "supervisord.conf"), "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    lines = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()}
    assert {name: lines.get(name) for name in EXPECTED} == dict.fromkeys(EXPECTED, "RUNNING")


def test_granule_files_give_one_message_each_and_one_granule_per_product(pipeline):
    frames, granules = pipeline.deliver()

    check_delivery(frames, granules)
    legacy = decode_many_with_posttroll_1_5(frames)
    assert {m["version"] for m in legacy} == {"v1.01"}
    file_message = next(m for m in legacy if m["type"] == "file")
    assert set(file_message["data"]) >= {
        "segment",
        "platform_name",
        "orig_platform_name",
        "orbit_number",
        "start_time",
        "end_time",
        "proctime",
        "sensor",
        "uid",
        "uri",
    }
    assert {"start_time", "end_time", "proctime"} <= set(file_message["datetimes"])
    assert file_message["data"]["platform_name"] == "NOAA-20"


@pytest.mark.parametrize("program", PIPELINE)
def test_kill9_is_followed_by_a_restart_and_the_pipeline_delivers_again(
    pipeline, collector, program
):
    looked_back = collector.log(program).count(LOOK_BACK.get(program, "\0"))
    replayed = f"replayed after the restart of {program}"
    replays = collector.log("replay_listener").count(replayed)
    old = collector.kill9(program)

    collector.wait_running([program], timeout=30, not_pids={old})
    if program in LOOK_BACK:
        wait_until(
            lambda: collector.log(program).count(LOOK_BACK[program]) > looked_back,
            30,
            f"{program} to look back at sdr/ after its restart",
        )
    if replay_targets(program, GATHERERS):  # the gatherers replay once all is connected
        wait_until(
            lambda: collector.log("replay_listener").count(replayed) > replays,
            45,
            f"the gatherers' replay after the restart of {program}",
        )
    pipeline.ready()

    check_delivery(*pipeline.deliver())


def test_supervisorctl_stop_of_a_gatherer_returns_quickly(collector, pipeline):
    env = dict(os.environ, VIIRS_BASE_DIR=str(collector.base_dir), VIIRS_CONFIG_DIR=str(REPO))
    command = ["supervisorctl", "-c", str(REPO / "supervisord.conf")]
    started = time.monotonic()
    result = subprocess.run(
        [*command, "stop", "segment_gatherer-viirs_vis"], env=env, capture_output=True, timeout=30
    )
    elapsed = time.monotonic() - started
    subprocess.run([*command, "start", "segment_gatherer-viirs_vis"], env=env, timeout=30)
    assert result.returncode == 0, result
    assert elapsed < 5, f"stop took {elapsed:.1f} s; stopwaitsecs would have killed it"
    collector.wait_running(["segment_gatherer-viirs_vis"])


def test_start_order_does_not_matter(collector, pipeline):
    looked_back = {p: collector.log(p).count(text) for p, text in LOOK_BACK.items()}
    rpc = collector.rpc().supervisor
    rpc.stopAllProcesses(True)
    # Subscribers first, publishers next, the nameserver last.
    for program in ("msg_publisher", *GATHERERS, "trollstalker", "nameserver"):
        rpc.startProcess(program, True)
    for program in EXPECTED:
        if program not in PIPELINE:
            rpc.startProcess(program, True)
    collector.wait_running(EXPECTED)
    for program, text in LOOK_BACK.items():
        wait_until(
            lambda p=program, t=text: collector.log(p).count(t) > looked_back[p],
            30,
            f"{program} to look back at sdr/",
        )
    pipeline.ready()

    check_delivery(*pipeline.deliver())
