"""Test helpers for the message bus: a real nameserver, a listening subscriber, a ZMQ reader.

Everything here is real posttroll and real ZMQ on loopback, with the session's
posttroll ports (tests/conftest.py), bounded waits and sockets closed with linger 0.
"""

from __future__ import annotations

import datetime as dt
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import zmq

from avoviirscollector import bus, filenames
from avoviirscollector.netutil import connected

REPO = Path(__file__).resolve().parents[2]


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05):
    """Poll ``predicate`` until it is truthy; AssertionError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Daemon:
    """A program of ours (or posttroll's) as a subprocess, stopped by :meth:`stop`."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path):
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            argv, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, signum: int):
        self.process.send_signal(signum)

    def stop(self, timeout: float = 10) -> int:
        """SIGTERM, then SIGKILL after ``timeout``; return the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        self._log.close()
        return self.process.returncode


def viirscollector(*args: str) -> list[str]:
    """argv for a subcommand, run with this interpreter."""
    return [sys.executable, "-m", "avoviirscollector.cli", *args]


def nameserver_argv() -> list[str]:
    """The collector's nameserver (posttroll's without multicast, re-announcing)."""
    return viirscollector("nameserver")


def daemon_env(base_dir: Path, **extra: str) -> dict[str, str]:
    """The environment supervisord gives our programs."""
    env = dict(os.environ)
    env.update(
        VIIRS_BASE_DIR=str(base_dir),
        VIIRS_CONFIG_DIR=str(REPO),
        POSTTROLL_MESSAGE_VERSION=bus.MESSAGE_VERSION,
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


class BusListener:
    """A real posttroll subscriber (via the nameserver) collecting messages in a thread."""

    def __init__(self, topics: str | list[str]):
        self.messages: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(topics,), daemon=True)

    def __enter__(self) -> BusListener:
        self._thread.start()
        self._ready.wait(40)
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join(10)

    def _run(self, topics):
        deadline = time.monotonic() + 30
        while True:
            try:
                subscriber_context = bus.subscribe(topics)
                break
            except TimeoutError:  # a nameserver that just started may be slow to answer
                if time.monotonic() > deadline:
                    raise
        with subscriber_context as subscriber:
            self._ready.set()
            for message in subscriber.recv(timeout=0.1):
                if self._stop.is_set():
                    break
                if message is not None and message.type not in ("beat", "info"):
                    self.messages.put(message)

    def wait_connected(self, publisher_pid: int, timeout: float = 20):
        """Wait until this process is connected to the publisher of ``publisher_pid``."""
        wait_until(
            lambda: connected(os.getpid(), publisher_pid), timeout, "subscription to publisher"
        )
        time.sleep(0.2)

    def get(self, timeout: float = 10) -> bus.Message:
        """The next message; AssertionError if none arrives in time."""
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no message within {timeout} s") from None

    def drain(self, quiet: float = 0.5) -> list[bus.Message]:
        """Every message until none arrived for ``quiet`` seconds."""
        found = []
        while True:
            try:
                found.append(self.messages.get(timeout=quiet))
            except queue.Empty:
                return found


class ZmqReader:
    """A plain ZMQ SUB socket on a port, as the clients of 29092 read it."""

    def __init__(self, port: int):
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.SUB)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.SUBSCRIBE, b"")
        self.socket.connect(f"tcp://127.0.0.1:{port}")

    def __enter__(self) -> ZmqReader:
        return self

    def __exit__(self, *exc_info):
        self.socket.close(linger=0)
        self.context.term()

    def recv(self, timeout: float = 10) -> bytes:
        """One raw frame; AssertionError if none arrives in time."""
        if not self.socket.poll(int(timeout * 1000)):
            raise AssertionError(f"nothing on the socket within {timeout} s")
        return self.socket.recv()

    def drain(self, quiet: float = 0.5) -> list[bytes]:
        """Every frame until none arrived for ``quiet`` seconds."""
        frames = []
        while self.socket.poll(int(quiet * 1000)):
            frames.append(self.socket.recv())
        return frames


#: Segments of each product (etc/segment_gatherer.ini), as the issue lists them.
PRODUCTS = {
    "tir": ("GITCO", "SVI05"),
    "vis": ("GMTCO", "GITCO", "SVM03", "SVM04", "SVM05", "SVI01"),
    "btd": ("GMTCO", "SVM15", "SVM16"),
    "mir": ("GITCO", "SVI04"),
}
ALL_SEGMENTS = tuple(sorted({segment for segments in PRODUCTS.values() for segment in segments}))


def granule_names(
    segments, platform: str = "j01", orbit: int = 10131, start: dt.datetime | None = None
) -> list[str]:
    """Real file names of one granule (content does not matter to the pipeline).

    Each orbit number gets its own start time by default, as on a real satellite (our
    gatherer keeps apart granules of other orbits starting within 30 s; upstream's
    segment_gatherer would not).
    """
    if start is None:
        start = dt.datetime(2019, 10, 21, 0, 0, 0, 100000)
        start += dt.timedelta(seconds=86 * (orbit % 1000))
    end = start + dt.timedelta(seconds=85.2)
    created = start + dt.timedelta(minutes=11)
    return [filenames.compose(s, platform, start, end, orbit, created) for s in segments]


#: Content that passes the stalker's cheap check (the HDF5 signature); the pipeline reads no more.
SDR_BYTES = b"\x89HDF\r\n\x1a\n" + b"sdr"


def land(base_dir: Path, name: str, content: bytes = SDR_BYTES) -> Path:
    """Write a file in tmp/ and rename it into sdr/, as the mirror does."""
    staged = base_dir / "tmp" / name
    staged.parent.mkdir(parents=True, exist_ok=True)
    staged.write_bytes(content)
    final = base_dir / "sdr" / name
    os.replace(staged, final)
    return final


#: The head of a minimal supervisord.conf for tests that need a real supervisord with
#: stand-in programs (format with base=...; append [program:...] sections).
SUPERVISORD_HEAD = """\
[unix_http_server]
file={base}/tmp/supervisor.sock
[supervisord]
nodaemon=true
logfile={base}/log/supervisord.log
pidfile={base}/tmp/supervisord.pid
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
"""
