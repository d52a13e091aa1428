"""Helpers of the system tests: granules, workers as in the field, mirror runs, memory."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import h5py
import zmq
from helpers.bus import wait_until  # noqa: F401 - the system tests import it from here

from avoviirscollector import filenames, verify
from avoviirscollector.broker.task_client import BrokerError, BrokerTimeout, TaskClient
from avoviirscollector.operator.collector_process import CollectorProcess
from avoviirscollector.standins.gina import GinaStandin
from avoviirscollector.standins.synthetic_sdr import make_sdr_file

#: Segments of each product (etc/segment_gatherer.ini).
PRODUCTS = {
    "tir": ("GITCO", "SVI05"),
    "vis": ("GMTCO", "GITCO", "SVM03", "SVM04", "SVM05", "SVI01"),
    "btd": ("GMTCO", "SVM15", "SVM16"),
    "mir": ("GITCO", "SVI04"),
}
SEGMENTS = tuple(sorted({s for segments in PRODUCTS.values() for s in segments}))
MIRROR = [sys.executable, "-m", "avoviirscollector.cli", "mirror"]


def vm_rss_kb(pid: int) -> int:
    """Resident memory of a process in kB (/proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


REPO = Path(__file__).resolve().parents[2]


def mirror_env(collector: CollectorProcess) -> dict[str, str]:
    """The environment the crontab's mirror_gina gets from supervisord."""
    return {**collector.env, "VIIRS_CONFIG_DIR": str(REPO)}


def run_mirror(collector: CollectorProcess, *args: str, timeout: float = 120):
    """mirror_gina as the crontab runs it (retry pause shortened), to its end."""
    return subprocess.run(
        [*MIRROR, "--now", "--retry-pause", "0.05", *args],
        env=mirror_env(collector),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_mirror(collector: CollectorProcess, *args: str) -> subprocess.Popen:
    """mirror_gina started in the background (for a SIGKILL at a chosen moment)."""
    return subprocess.Popen(
        [*MIRROR, "--now", "--retry-pause", "0.05", *args],
        env=mirror_env(collector),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def assert_sdr_holds_only_verified_files(sdr: Path, gina: GinaStandin) -> list[str]:
    """Every file in sdr/ is GINA's (MD5 of the catalogue) and opens as HDF5; their names."""
    names = []
    for path in sorted(sdr.iterdir()):
        assert not path.name.startswith("."), f"hidden file {path.name} in sdr/"
        assert verify.md5sum(path) == gina.md5(path.name), f"{path.name}: not GINA's bytes"
        with h5py.File(path, "r"):
            pass
        names.append(path.name)
    return names


def granule_start(index: int, origin: dt.datetime) -> dt.datetime:
    """Start of the index-th consecutive granule after ``origin`` (tenths of a second)."""
    start = origin + dt.timedelta(seconds=85.35 * index)
    return start.replace(microsecond=start.microsecond // 100000 * 100000)


def write_granule(directory: Path, platform: str, start: dt.datetime, orbit: int, size: int):
    """The files of one granule, every segment, written (atomically) into ``directory``."""
    return [
        make_sdr_file(directory, segment, platform, start, orbit=orbit, size=size)
        for segment in SEGMENTS
    ]


def land(paths, sdr: Path) -> None:
    """Rename files into sdr/, as mirror_gina places them."""
    for path in paths:
        os.replace(path, sdr / path.name)


class Worker(threading.Thread):
    """A viirsprocessor worker: REQ socket, ``send_json``, ``recv``, ``Message.decode``.

    ``lease``: ask with a lease and ack each task. ``dies_after``: take that many
    tasks with a lease, never ack them, and stop, as a worker that died would.
    """

    def __init__(self, port: int, lease: float | None = None, dies_after: int | None = None):
        super().__init__(daemon=True)
        self.port, self.lease, self.dies_after = port, lease, dies_after
        self.done: list = []  # tasks this worker finished (received; acked if leased)
        self.abandoned: list = []
        self.errors: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        client = TaskClient(port=self.port, timeout=2.0)
        try:
            while not self.stopping.is_set():
                if not self._one(client):
                    self.stopping.wait(0.05)
        finally:
            client.close()

    def _one(self, client: TaskClient) -> bool:
        try:
            task = client.request(list(PRODUCTS), lease=self.lease)
            if task is None:
                return False
            if self.dies_after is not None:
                self.abandoned.append(task)
                if len(self.abandoned) >= self.dies_after:
                    self.stopping.set()
                return True
            if self.lease is not None:
                client.ack(task.data["task_id"])
        except BrokerTimeout:  # the broker died under the request: a new socket, ask again
            return False
        except BrokerError as error:
            if "holds no lease" in str(error):  # our lease expired while the broker was down
                return False
            self.errors.append(str(error))
            return False
        self.done.append(task)
        return True

    def stop(self) -> None:
        self.stopping.set()
        self.join(10)


def granules_in(tasks) -> Counter:
    """(product, platform, granule start) -> how many of ``tasks`` hold that granule."""
    found: Counter = Counter()
    for task in tasks:
        product = task.subject.rsplit("/", 1)[1]
        starts = set()
        for item in task.data["dataset"]:
            name = filenames.parse(item["uid"])
            starts.add((name.platform, name.start))
        for platform, start in starts:
            found[(product, platform, start)] += 1
    return found


def segments_in(tasks) -> dict:
    """(product, platform, granule start) -> the segments its task carried."""
    found: dict = {}
    for task in tasks:
        product = task.subject.rsplit("/", 1)[1]
        for item in task.data["dataset"]:
            name = filenames.parse(item["uid"])
            found.setdefault((product, name.platform, name.start), set()).add(name.segment)
    return found


def queue_length(collector) -> int:
    """The queue length the broker publishes on its state port (19191)."""
    context = zmq.Context()
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(f"tcp://127.0.0.1:{collector.state_port}")
    try:
        return json.loads(sub.recv())["queue length"] if sub.poll(3000) else -1
    finally:
        sub.close(linger=0)
        context.term()
