"""What the demo shows live: one thread per thing to watch, all printing through one console.

- :class:`SdrWatcher`: file messages on the message port (29092), as subscribers see them;
- :class:`QueueWatcher`: the broker's queue state (19191), a line when it changes;
- :class:`DemoWorker`: takes tasks from 19091 the way the viirsprocessor workers do
  (REQ, ``{"desired products": [...]}``, ``Message.decode``), and records which
  granules of which product it has been given;
- :class:`LogFollower`: lines a program writes to its log (the cron's mirror runs);
- :class:`DownloadProgress`: files and bytes placed in sdr/ and the rate, once a second.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import zmq

from avoviirscollector.broker.task_client import BrokerError, BrokerTimeout, TaskClient
from avoviirscollector.bus import (
    Message,  # through bus: posttroll must see our message version first
)
from avoviirscollector.filenames import FilenameError, parse
from avoviirscollector.operator import display
from avoviirscollector.operator.sniff import SDR_PREFIX, parse_queue_state, queue_summary

#: How often an idle demo worker asks again (real workers poll too).
WORKER_IDLE = 0.2
#: Our log lines: "2024-05-01T12:00:00.123Z program LEVEL logger: message".
_LOG_LINE = re.compile(r"^\S+Z \S+ (?P<level>[A-Z]+) [^:]*: (?P<text>.*)$")


class Console:
    """Lines from many threads, each with the seconds since the demo began and its source.

    Writing never raises: ``demo | head -3`` closes the pipe after three lines, and
    ``demo | tee`` loses its reader on Ctrl-C. Either way the demo must still stop what it
    started, so a failed write only sets :attr:`closed` (the demo then stops early: nobody
    is watching) and later lines go nowhere.
    """

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        self.began = time.monotonic()
        self._lock = threading.Lock()
        self.closed = threading.Event()

    def elapsed(self) -> float:
        """Seconds since the demo began."""
        return time.monotonic() - self.began

    def say(self, source: str, text: str) -> None:
        """Print one line, e.g. `` 12.3s  worker | took ...``."""
        self.write(f"{self.elapsed():5.1f}s  {source:<6} | {text}")

    def write(self, text: str) -> None:
        """Print ``text`` and a newline, unless the reader has gone."""
        with self._lock:
            if self.closed.is_set():
                return
            try:
                print(text, file=self.stream, flush=True)
            except (OSError, ValueError):  # BrokenPipeError, EIO, a closed file
                self.closed.set()
                _silence(self.stream)


def _silence(stream) -> None:
    """Point ``stream``'s descriptor at /dev/null: Python's final flush at exit must not
    raise again ("Exception ignored ... BrokenPipeError") for the lines still buffered."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def short_log_line(line: str) -> str:
    """A log line without its timestamp and logger, keeping the level when not INFO."""
    match = _LOG_LINE.match(line.strip())
    if not match:
        return line.strip()
    level, text = match.group("level"), match.group("text")
    return text if level == "INFO" else f"{level} {text}"


class Watcher(threading.Thread):
    """A daemon thread with a stop event; subclasses implement :meth:`watch`."""

    def __init__(self, console: Console, name: str):
        super().__init__(name=f"demo-{name}", daemon=True)
        self.console = console
        self.stop_event = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        """Watch until stopped; an unexpected error is shown, not raised into nowhere."""
        try:
            self.watch()
        except Exception as error:  # shown once; the demo's summary says what is missing
            self.error = error
            self.console.say(self.name.removeprefix("demo-"), f"stopped: {error}")

    def watch(self) -> None:
        raise NotImplementedError

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to end and wait for it (bounded)."""
        self.stop_event.set()
        if self.is_alive():
            self.join(timeout)


class _Subscriber(Watcher):
    """A plain ZMQ SUB, as clients in the field use."""

    def __init__(self, console: Console, name: str, endpoint: str, prefix: str):
        super().__init__(console, name)
        self.endpoint, self.prefix = endpoint, prefix
        self.count = 0

    def watch(self) -> None:
        context = zmq.Context()
        sock = context.socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt_string(zmq.SUBSCRIBE, self.prefix)
        sock.connect(self.endpoint)
        try:
            while not self.stop_event.is_set():
                if sock.poll(200, zmq.POLLIN):
                    self.count += 1
                    self.handle(sock.recv_multipart())
        finally:
            sock.close(linger=0)
            context.term()

    def handle(self, frames: list[bytes]) -> None:
        raise NotImplementedError


class SdrWatcher(_Subscriber):
    """One line per file message on the message port."""

    def __init__(self, console: Console, endpoint: str):
        super().__init__(console, "29092", endpoint, SDR_PREFIX)
        self.files: set[str] = set()

    def handle(self, frames: list[bytes]) -> None:
        message = Message.decode(frames[-1].decode("utf-8"))
        data = message.data
        start = data.get("start_time")
        latency = (display.now() - display.utc_naive(start)).total_seconds() if start else 0
        again = "; again" if data.get("uid") in self.files else ""
        self.files.add(data.get("uid"))
        self.console.say(
            "29092",
            f"{data.get('uid')}  {data.get('platform_name')}  orbit {data.get('orbit_number')}"
            f"  ({display.duration(latency)} after the granule's start{again})",
        )


class QueueWatcher(_Subscriber):
    """A line whenever the broker's queue state changes."""

    def __init__(self, console: Console, endpoint: str):
        super().__init__(console, "19191", endpoint, "")
        self.last: str | None = None

    def handle(self, frames: list[bytes]) -> None:
        text = queue_summary(parse_queue_state(frames))
        if text != self.last:
            self.last = text
            self.console.say("19191", f"queue {text}")


def granules_of(task: Message) -> set[tuple[str, int, object]]:
    """The granule keys (platform, orbit, start) of the files in a task's dataset."""
    keys = set()
    for item in task.data.get("dataset", []) if isinstance(task.data, dict) else []:
        try:
            keys.add(parse(item.get("uid") or item.get("uri", "")).granule)
        except (FilenameError, AttributeError):
            continue
    return keys


class DemoWorker(Watcher):
    """Asks for every product as a worker does, and records what it was handed."""

    def __init__(self, console: Console, host: str, port: int, products: Iterable[str]):
        super().__init__(console, "worker")
        self.products = list(products)
        self.client = TaskClient(host, port, timeout=5.0)
        self.tasks: list[Message] = []
        self.covered: set[tuple[str, tuple]] = set()

    def watch(self) -> None:
        try:
            while not self.stop_event.is_set():
                if not self._ask_once():
                    self.stop_event.wait(WORKER_IDLE)
        finally:
            self.client.close()

    def _ask_once(self) -> bool:
        try:
            task = self.client.request(self.products)
        except (BrokerError, BrokerTimeout) as error:
            self.console.say("worker", f"{error}; asking again")
            return False
        if task is None:
            return False
        product = task.subject.rstrip("/").rsplit("/", 1)[-1]
        granules = granules_of(task)
        self.tasks.append(task)
        self.covered.update((product, granule) for granule in granules)
        files = len(task.data.get("dataset", []))
        self.console.say(
            "worker",
            f"took a {product} task: {task.data.get('platform_name')} orbit "
            f"{task.data.get('orbit_number')}, {len(granules)} granule(s), {files} files",
        )
        return True


class LogFollower(Watcher):
    """Lines appended to a log file from now on (the cron's own mirror runs)."""

    def __init__(self, console: Console, source: str, path: Path, keep=lambda line: True):
        super().__init__(console, source)
        self.source, self.path, self.keep = source, path, keep
        self.offset = path.stat().st_size if path.exists() else 0

    def watch(self) -> None:
        pending = b""
        while not self.stop_event.wait(0.2):
            if not self.path.exists():
                continue
            with self.path.open("rb") as stream:
                stream.seek(self.offset)
                chunk = stream.read()
            self.offset += len(chunk)
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                text = line.decode("utf-8", "replace")
                if text.strip() and self.keep(text):
                    self.console.say(self.source, short_log_line(text))


class DownloadProgress(Watcher):
    """Files and bytes in sdr/ against what the pass holds, and the rate, twice a second."""

    def __init__(self, console: Console, sdr_dir: Path, total_files: int, total_bytes: int):
        super().__init__(console, "sdr")
        self.sdr_dir, self.total_files, self.total_bytes = sdr_dir, total_files, total_bytes
        self.files = self.bytes = 0

    def measure(self) -> tuple[int, int]:
        """Files (not hidden) and their bytes now in sdr/."""
        files = size = 0
        for path in self.sdr_dir.iterdir():
            if not path.name.startswith("."):
                files += 1
                size += path.stat().st_size
        return files, size

    def watch(self) -> None:
        began, shown = time.monotonic(), (0, 0)
        while not self.stop_event.wait(0.5):
            self.files, self.bytes = self.measure()
            if (self.files, self.bytes) == shown:
                continue
            shown = (self.files, self.bytes)
            rate = self.bytes / max(time.monotonic() - began, 1e-6) / 1e6
            self.console.say(
                "sdr",
                f"{self.files}/{self.total_files} files, {display.size(self.bytes)} of "
                f"{display.size(self.total_bytes)} placed ({rate:.1f} MB/s on average)",
            )
