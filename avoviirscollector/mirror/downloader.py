"""Fetch a list of files over N connections that all stay busy until the list is done.

Why not one file at a time: GINA serves each connection at a limited rate, so a
single file on a single connection leaves most of the link idle. Here:

- every file starts with one open-ended request (``Range: bytes=0-``) on a free
  connection; the answer tells its size, the temp file is preallocated and every
  byte is written in place with ``os.pwrite``;
- small files therefore go whole, one per connection, with one request each;
- a connection with nothing left to start takes the second half of the largest
  transfer still running ("work stealing"): a big file ends up cut into Range
  segments fetched in parallel, and the list's tail finishes together;
- connections are kept alive and reused (one curl multi handle, at most N
  connections);
- a failed segment is retried from the byte it reached, after a growing pause, a
  bounded number of times; 4xx answers fail the file at once (a later run retries);
- each file's MD5 is computed from the bytes as they are written
  (:class:`verify.PrefixDigest`), and every ``writeback_bytes`` the file is synced
  to disk in the background (:mod:`flusher`): verifying and fsyncing a finished
  file then costs milliseconds, not a reread of the file and a flush of all of it;
- a server that ignores Range answers 200: that answer becomes the whole file on
  one connection, and the file is never split again;
- connect timeout and a low-speed limit end every stalled transfer, so nothing
  hangs forever; and every file has a deadline (a fixed allowance plus its size at
  a floor rate): a file dripped just above the low-speed limit is given up when it
  passes it, so one slow file cannot hold the run (and the newer granules behind
  it) for hours; the mirror retries it later.

The bookkeeping (which segment next, splitting, retries) is :class:`Plan`: pure,
no I/O, tested directly. :class:`Downloader` only moves bytes with pycurl.
"""

from __future__ import annotations

import errno as errno_module
import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pycurl

from avoviirscollector.mirror.flusher import Flusher
from avoviirscollector.mirror.listing import USER_AGENT
from avoviirscollector.verify import PrefixDigest

log = logging.getLogger(__name__)

MB = 1e6
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


@dataclass
class Options:
    """Knobs of the engine; the defaults suit GINA over the internet."""

    connections: int = 4
    #: A running transfer is split only when both halves would be at least this big.
    min_split: int = 4 * 1024 * 1024
    #: Failures of one segment before its file is given up for this run.
    max_failures: int = 5
    backoff_base: float = 1.0
    backoff_max: float = 30.0
    connect_timeout: float = 15.0
    #: A transfer slower than this many bytes/s for low_speed_time seconds is a stall.
    low_speed_limit: int = 1000
    low_speed_time: int = 30
    buffer_size: int = 256 * 1024
    #: Bytes written to a file after which it is synced in the background (0: never).
    writeback_bytes: int = 1024 * 1024
    progress_interval: float = 10.0
    #: A file must arrive at this many bytes/s on average (over all its connections) ...
    floor_rate: float = 200_000.0
    #: ... plus this many seconds (connection set-up, the first answer), or it is given up.
    deadline_allowance: float = 60.0
    ca_bundle: str | None = None
    user_agent: str = USER_AGENT


@dataclass(eq=False)
class Segment:
    """Bytes [start, end) of a file; ``end`` None while the size is unknown."""

    file: FileTask
    start: int
    end: int | None
    pos: int
    failures: int = 0
    not_before: float = 0.0
    #: Bytes from here to ``pos`` are written but not yet handed to the flusher.
    unflushed_from: int = 0

    @property
    def remaining(self) -> int | None:
        """Bytes still to come, None when unknown."""
        return None if self.end is None else self.end - self.pos


@dataclass(eq=False)
class FileTask:
    """One file to fetch into ``path``, and what happened to it."""

    url: str
    path: Path
    name: str = ""
    status: str = "queued"  # queued, running, done, failed
    size: int | None = None
    ranges: bool = True
    error: str | None = None
    retries: int = 0
    received: int = 0
    started: float | None = None
    finished: float | None = None
    connections: set = field(default_factory=set)
    segments: list = field(default_factory=list)
    order: int = 0
    deadline: float | None = None
    fd: int | None = None
    data: dict = field(default_factory=dict)
    #: MD5 of the bytes written so far in file order (verify.verify reads only the rest).
    digest: PrefixDigest = field(default_factory=PrefixDigest)

    def __post_init__(self):
        self.path = Path(self.path)
        self.name = self.name or self.path.name

    @property
    def seconds(self) -> float:
        """Seconds from its first request to its last byte."""
        if self.started is None or self.finished is None:
            return 0.0
        return max(self.finished - self.started, 1e-9)

    @property
    def rate(self) -> float:
        """MB/s while it was being fetched."""
        return (self.size or self.received) / MB / self.seconds if self.seconds else 0.0


class Plan:
    """Which segment a free connection fetches next, and what a result means. No I/O."""

    def __init__(self, files: Iterable[FileTask], options: Options):
        self.options = options
        self.files = list(files)
        for order, task in enumerate(self.files):
            task.order = order
        self._queued = list(reversed(self.files))  # pop() gives the first file
        self.waiting: list[Segment] = []  # failed, to retry after not_before
        self.active: list[Segment] = []
        self.completed: list[FileTask] = []  # done or failed since the caller last looked

    def finished(self) -> bool:
        """True when no file is queued, running, or waiting for a retry."""
        return not (self._queued or self.waiting or self.active)

    def next_wakeup(self, now: float) -> float | None:
        """Seconds until the earliest retry is due, None when none waits."""
        if not self.waiting:
            return None
        return max(0.0, min(s.not_before for s in self.waiting) - now)

    def ready(self, now: float) -> bool:
        """True when :meth:`next_segment` would hand out work now."""
        return (
            bool(self._queued)
            or any(s.not_before <= now for s in self.waiting)
            or bool(self._split_candidates())
        )

    def next_segment(self, now: float) -> Segment | None:
        """Work for a free connection: a due retry, else a new file, else half a transfer."""
        due = [s for s in self.waiting if s.not_before <= now]
        if due:
            segment = min(due, key=lambda s: (s.file.order, s.start))
            self.waiting.remove(segment)
        elif self._queued:
            task = self._queued.pop()
            task.status, task.started = "running", now
            task.deadline = self.deadline(task)
            segment = Segment(task, 0, None, 0)
            task.segments.append(segment)
        else:
            segment = self._steal()
            if segment is None:
                return None
        self.active.append(segment)
        return segment

    def deadline(self, task: FileTask) -> float | None:
        """When a running file is given up: started + allowance + size / floor rate."""
        if task.started is None:
            return None
        size = task.size or 0
        return task.started + self.options.deadline_allowance + size / self.options.floor_rate

    def overdue(self, now: float) -> list[FileTask]:
        """Running files past their deadline."""
        running = {s.file for s in self.active} | {s.file for s in self.waiting}
        return [
            t
            for t in self.files
            if t in running
            and t.status == "running"
            and t.deadline is not None
            and now > t.deadline
        ]

    def give_up(self, task: FileTask, error: str) -> list[Segment]:
        """Fail a whole file now (its deadline passed); segments to cancel."""
        task.status, task.error = "failed", error
        self.completed.append(task)
        self.waiting = [s for s in self.waiting if s.file is not task]
        cancelled = [s for s in self.active if s.file is task]
        self.active = [s for s in self.active if s.file is not task]
        task.segments = []
        return cancelled

    def _split_candidates(self) -> list[Segment]:
        return [
            s
            for s in self.active
            if s.file.ranges
            and s.remaining is not None
            and s.remaining >= 2 * self.options.min_split
        ]

    def _steal(self) -> Segment | None:
        """Split the largest running transfer; the new segment takes its second half."""
        candidates = self._split_candidates()
        if not candidates:
            return None
        victim = max(candidates, key=lambda s: (s.remaining, -s.file.order))
        middle = victim.pos + victim.remaining // 2
        piece = Segment(victim.file, middle, victim.end, middle)
        victim.end = middle
        victim.file.segments.append(piece)
        return piece

    def accept(self, segment: Segment, status: int, headers: dict[str, str]) -> list[Segment]:
        """Check an answer's headers before its body is written; segments to cancel.

        Raises ValueError when the answer cannot be used for this segment.
        """
        task = segment.file
        if status == 206:
            first, total = _content_range(headers.get("content-range", ""))
            if first != segment.pos:
                raise ValueError(f"server sent bytes from {first}, asked from {segment.pos}")
            if total is not None:
                if task.size is not None and total != task.size:
                    raise ValueError(f"file size changed from {task.size} to {total} bytes")
                task.size = total
                task.deadline = self.deadline(task)
                if segment.end is None:
                    segment.end = total
            return []
        if status == 200:
            # Range ignored: this answer is the whole file, written from byte 0.
            length = headers.get("content-length")
            size = int(length) if length and length.isdigit() else None
            if task.size is not None and size is not None and size != task.size:
                raise ValueError(f"file size changed from {task.size} to {size} bytes")
            task.ranges, task.size = False, size if size is not None else task.size
            task.deadline = self.deadline(task)
            segment.start = segment.pos = 0
            segment.end = task.size
            others = [s for s in task.segments if s is not segment]
            task.segments = [segment]
            self.waiting = [s for s in self.waiting if s.file is not task]
            cancelled = [s for s in others if s in self.active]
            for other in cancelled:
                self.active.remove(other)
            return cancelled
        raise ValueError(f"unexpected HTTP status {status}")

    def succeeded(self, segment: Segment) -> None:
        """The transfer ended well: all its bytes are written."""
        task = segment.file
        self.active.remove(segment)
        if segment.end is None:  # no size announced: the body ran to the end of the file
            segment.end = task.size = segment.pos
        task.segments.remove(segment)
        if not task.segments and task.status == "running":
            task.status = "done"
            self.completed.append(task)

    def failed(
        self, segment: Segment, error: str, now: float, permanent: bool = False
    ) -> list[Segment]:
        """A transfer failed: retry later from ``pos``, or give up the file; segments to cancel."""
        task = segment.file
        if segment in self.active:
            self.active.remove(segment)
        segment.failures += 1
        task.retries += 1
        task.error = error
        if not permanent and segment.failures <= self.options.max_failures:
            segment.not_before = now + self.backoff(segment.failures)
            self.waiting.append(segment)
            return []
        task.status = "failed"
        self.completed.append(task)
        self.waiting = [s for s in self.waiting if s.file is not task]
        cancelled = [s for s in self.active if s.file is task]
        self.active = [s for s in self.active if s.file is not task]
        task.segments = []
        return cancelled

    def backoff(self, failures: int) -> float:
        """Pause before retry number ``failures``: doubling from base, capped."""
        return min(self.options.backoff_base * 2 ** (failures - 1), self.options.backoff_max)


def _content_range(value: str) -> tuple[int, int | None]:
    match = _CONTENT_RANGE.match(value.strip())
    if not match:
        raise ValueError(f"206 answer without a usable Content-Range: {value!r}")
    total = match.group(3)
    return int(match.group(1)), None if total == "*" else int(total)


class _Slot:
    """One connection's easy handle and the transfer it carries."""

    def __init__(self, number: int, engine: Downloader):
        self.number, self.engine = number, engine
        self.curl = pycurl.Curl()
        self.curl.slot = self
        self.segment: Segment | None = None
        self.busy = False
        self.reset()

    def reset(self):
        self.status, self.headers, self.checked, self.problem = 0, {}, False, None
        self.local_error: OSError | None = None

    def header(self, line: bytes):
        text = line.decode("latin-1").strip()
        if text.startswith("HTTP/"):
            parts = text.split()
            self.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
            self.headers = {}
        elif ":" in text:
            key, _, value = text.partition(":")
            self.headers[key.strip().lower()] = value.strip()

    def write(self, data: bytes):
        return self.engine._write(self, data)


class Downloader:
    """Fetch FileTasks with pycurl's multi interface; ``on_done(task)`` as each one ends."""

    def __init__(
        self,
        options: Options | None = None,
        on_done: Callable[[FileTask], None] | None = None,
        logger: logging.Logger | None = None,
        label: str = "download",
    ):
        self.options = options or Options()
        self.label = label
        self.on_done = on_done
        self.log = logger or log
        self.new_connections = 0

    def run(self, files: Iterable[FileTask]) -> list[FileTask]:
        """Fetch every file; returns them with status done or failed. Never raises for I/O."""
        plan = Plan(files, self.options)
        self._plan = plan
        self._multi = multi = pycurl.CurlMulti()
        count = self.options.connections
        multi.setopt(pycurl.M_MAX_TOTAL_CONNECTIONS, count)
        multi.setopt(pycurl.M_MAX_HOST_CONNECTIONS, count)
        multi.setopt(pycurl.M_MAXCONNECTS, count)
        slots = self._slots = [_Slot(number, self) for number in range(count)]
        self._to_remove: list[_Slot] = []
        self._progress_at = time.monotonic() + self.options.progress_interval
        self._flusher = Flusher()
        try:
            while not plan.finished():
                self._fill(slots)
                self._perform()
                self._collect()
                self._expire()
                self._remove_cancelled()
                self._report_completed()
                self._progress()
                if plan.ready(time.monotonic()) and not all(slot.busy for slot in slots):
                    continue  # a connection just came free: its next request goes out now,
                    # not after select() waits for another socket (up to the server's delay)
                wakeup = plan.next_wakeup(time.monotonic())
                multi.select(0.5 if wakeup is None else min(0.5, max(wakeup, 0.001)))
        finally:
            for slot in slots:
                if slot.busy:
                    multi.remove_handle(slot.curl)
                slot.curl.close()
            multi.close()
            for task in plan.files:
                self._close(task)
            self._flusher.close()
        return plan.files

    # -- handing out work ------------------------------------------------------------------

    def _fill(self, slots: list[_Slot]):
        now = time.monotonic()
        for slot in slots:
            if slot.busy:
                continue
            segment = self._plan.next_segment(now)
            if segment is None:
                return
            self._start(slot, segment)

    def _start(self, slot: _Slot, segment: Segment):
        task = segment.file
        if task.fd is None:
            try:
                task.fd = os.open(task.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
            except OSError as error:
                task.data["local_error"] = error.errno  # this machine's fault, not the file's
                self._cancel(
                    self._plan.failed(
                        segment,
                        f"cannot create {task.path}: {error}",
                        time.monotonic(),
                        permanent=True,
                    )
                )
                return
        slot.segment = segment
        slot.reset()
        curl, options = slot.curl, self.options
        curl.setopt(pycurl.URL, task.url)
        end = "" if segment.end is None else str(segment.end - 1)
        curl.setopt(pycurl.RANGE, f"{segment.pos}-{end}")
        curl.setopt(pycurl.WRITEFUNCTION, slot.write)
        curl.setopt(pycurl.HEADERFUNCTION, slot.header)
        curl.setopt(pycurl.NOSIGNAL, 1)
        curl.setopt(pycurl.FOLLOWLOCATION, 1)
        curl.setopt(pycurl.MAXREDIRS, 5)
        curl.setopt(pycurl.FAILONERROR, 1)
        curl.setopt(pycurl.CONNECTTIMEOUT_MS, int(options.connect_timeout * 1000))
        curl.setopt(pycurl.LOW_SPEED_LIMIT, options.low_speed_limit)
        curl.setopt(pycurl.LOW_SPEED_TIME, options.low_speed_time)
        curl.setopt(pycurl.BUFFERSIZE, options.buffer_size)
        curl.setopt(pycurl.TCP_KEEPALIVE, 1)
        curl.setopt(pycurl.USERAGENT, options.user_agent)
        if options.ca_bundle:
            curl.setopt(pycurl.CAINFO, options.ca_bundle)
        task.connections.add(slot.number)
        self._multi.add_handle(curl)
        slot.busy = True

    # -- bytes -----------------------------------------------------------------------------

    def _write(self, slot: _Slot, data: bytes):
        segment = slot.segment
        if segment is None:
            return 0
        task = segment.file
        if not slot.checked:
            slot.checked = True
            try:
                self._cancel(self._plan.accept(segment, slot.status, slot.headers))
                self._preallocate(task)
            except ValueError as error:
                slot.problem = str(error)
                return 0
            except OSError as error:
                slot.local_error = error
                return 0
        limit = len(data) if segment.end is None else segment.end - segment.pos
        if limit <= 0:
            return 0  # reached the end given to this segment: stop here (not an error)
        piece = data if len(data) <= limit else memoryview(data)[:limit]
        try:
            written = os.pwrite(task.fd, piece, segment.pos)
        except OSError as error:
            slot.local_error = error
            return 0
        task.digest.wrote(segment.pos, piece if written == len(piece) else piece[:written])
        segment.pos += written
        task.received += written
        self._write_back(task, segment)
        return None if written == len(data) else written

    def _write_back(self, task: FileTask, segment: Segment):
        """Have what this segment wrote synced to disk, in the background (no waiting)."""
        start = segment.unflushed_from
        if not segment.start <= start <= segment.pos:  # a new segment, or one started over
            start = segment.start
        pending = segment.pos - start
        every = self.options.writeback_bytes
        if every <= 0 or pending < every:
            return
        segment.unflushed_from = segment.pos
        self._flusher.written(task.path, task.fd)

    def _preallocate(self, task: FileTask):
        if task.size is None or task.data.get("allocated"):
            return
        task.data["allocated"] = True
        try:
            os.posix_fallocate(task.fd, 0, task.size) if task.size else None
        except OSError as error:
            if error.errno not in (errno_module.EOPNOTSUPP, errno_module.EINVAL):
                raise
            os.ftruncate(task.fd, task.size)

    # -- results ---------------------------------------------------------------------------

    def _perform(self):
        while True:
            result, _ = self._multi.perform()
            if result != pycurl.E_CALL_MULTI_PERFORM:
                return

    def _collect(self):
        while True:
            queued, ok, failed = self._multi.info_read()
            for curl in ok:
                self._finish(curl.slot, 0, "")
            for curl, code, message in failed:
                self._finish(curl.slot, code, message)
            if not queued:
                return

    def _finish(self, slot: _Slot, code: int, message: str):
        segment, slot.segment = slot.segment, None
        self._multi.remove_handle(slot.curl)
        slot.busy = False
        self.new_connections += slot.curl.getinfo(pycurl.NUM_CONNECTS)
        if segment is None or segment not in self._plan.active:
            return  # cancelled meanwhile
        now = time.monotonic()
        complete = segment.end is not None and segment.pos >= segment.end
        # A transfer we stopped at its segment's end (after a split) ends with a write error.
        reached_end = complete and code in (0, pycurl.E_WRITE_ERROR) and slot.problem is None
        ran_to_eof = code == 0 and segment.end is None
        if slot.local_error is not None:
            error = f"cannot write {segment.file.path}: {slot.local_error.strerror}"
            segment.file.data["local_error"] = slot.local_error.errno  # e.g. a full disk
            self._cancel(self._plan.failed(segment, error, now, permanent=True))
        elif reached_end or ran_to_eof:
            self._plan.succeeded(segment)
        else:
            error, permanent = self._describe(slot, segment, code, message)
            self.log.debug("%s: %s (connection %d)", segment.file.name, error, slot.number)
            self._cancel(self._plan.failed(segment, error, now, permanent))

    def _describe(self, slot: _Slot, segment: Segment, code: int, message: str):
        """(error text, permanent?) for a failed transfer."""
        where = f"at byte {segment.pos}"
        if slot.problem:
            return f"{slot.problem} {where}", False
        if code == pycurl.E_HTTP_RETURNED_ERROR:
            status = slot.curl.getinfo(pycurl.RESPONSE_CODE)
            permanent = 400 <= status < 500 and status not in (408, 429)
            return f"HTTP {status} {where}", permanent
        if code == 0:
            return f"answer ended early {where} of {segment.end}", False
        return f"{message or 'transfer failed'} (curl error {code}) {where}", False

    def _expire(self):
        """Give up files past their deadline (their connections go to the next files)."""
        now = time.monotonic()
        for task in self._plan.overdue(now):
            seconds = now - (task.started or now)
            size = f"{task.size} bytes" if task.size else "an unknown size"
            error = (
                f"too slow: {task.received} of {size} in {seconds:.0f} s, below "
                f"{self.options.floor_rate / 1000:.0f} kB/s plus "
                f"{self.options.deadline_allowance:.0f} s"
            )
            self._cancel(self._plan.give_up(task, error))

    def _cancel(self, segments: list[Segment]):
        """Stop transfers the plan no longer wants (their file failed or went single).

        Called from curl callbacks too, where handles must not be removed: the slot
        stops writing at once and its handle is removed after perform().
        """
        for slot in self._slots:
            if slot.segment is not None and slot.segment in segments:
                slot.segment = None
                self._to_remove.append(slot)

    def _remove_cancelled(self):
        while self._to_remove:
            slot = self._to_remove.pop()
            if slot.busy:
                self._multi.remove_handle(slot.curl)
                slot.busy = False

    def _report_completed(self):
        plan = self._plan
        while plan.completed:
            task = plan.completed.pop(0)
            task.finished = time.monotonic()
            self._close(task)
            if self.on_done is not None:
                self.on_done(task)

    def _close(self, task: FileTask):
        if task.fd is not None:
            os.close(task.fd)
            task.fd = None

    def _progress(self):
        now = time.monotonic()
        if now < self._progress_at:
            return
        self._progress_at = now + self.options.progress_interval
        files = self._plan.files
        done = sum(t.status == "done" for t in files)
        received = sum(t.received for t in files)
        self.log.info(
            "%s: %d of %d files done, %.1f MB received, %d transfers running",
            self.label,
            done,
            len(files),
            received / MB,
            len(self._plan.active),
        )
