"""``viirscollector recorder``: the collector's history, recorded as it happens.

A program of its own under supervisord, beside the pipeline and never in its way:

- a posttroll subscriber (through the nameserver, as msg_publisher) hears every file
  message (``/AVO/viirs/sdr``) and granule message (``/AVO/viirs/granule/<product>``);
  posttroll's PUB sockets never wait for a subscriber, so a slow recorder cannot hold
  up trollstalker or a gatherer;
- a SUB socket on the broker's state port samples the queue (on change, at most every
  QUEUE_MIN_INTERVAL s, and every QUEUE_MAX_INTERVAL s regardless);
- every POLL_INTERVAL s it reads, read-only, the broker's queue database (granules
  handed out, tasks leased), the mirror's last-run summary in state/ and supervisord's
  programs (restarts); every DISK_INTERVAL s the disk use of the base directory.

Everything goes into a bounded in-memory queue first; one writer thread stores it in
state/history.sqlite a batch per second. A full queue (the store is slow) or a failing
store (disk full, locked, corrupt) costs a rate-limited log line and the events of
that moment, never a message or a task of the pipeline.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import queue
import signal
import sqlite3
import sys
import threading
import time

from avoviirscollector import (
    bus,  # first: sets posttroll's message version before posttroll is imported
)

# isort: split
import zmq

from avoviirscollector import liveness, logs, supervisor_client
from avoviirscollector import settings as settings_module
from avoviirscollector.filenames import PLATFORM_ALIASES
from avoviirscollector.operator.web import history_store
from avoviirscollector.operator.web.history_rules import FileEvent, history_days

log = logging.getLogger("recorder")

FILE_TOPIC = "/AVO/viirs/sdr"
GRANULE_TOPIC = "/AVO/viirs/granule"
#: The mirror's last-run summary (mirror_gina.LAST_RUN_FILE; a test checks they agree).
MIRROR_LAST_RUN = "mirror_gina-last-run.json"
BROKER_DB = "task_queue.sqlite"
MAX_PENDING = 20000
WRITE_INTERVAL = 1.0
POLL_INTERVAL = 5.0
DISK_INTERVAL = 300.0
TRIM_INTERVAL = 600.0
QUEUE_MIN_INTERVAL = 5.0
QUEUE_MAX_INTERVAL = 60.0
#: The recorder's CPU priority below the pipeline's (os.nice increment).
NICENESS = 10
#: At most one log line per this many seconds about dropped events.
COMPLAINT_INTERVAL = 60.0
_SHORT = {long: short for short, long in PLATFORM_ALIASES.items()}


def epoch(value) -> float:
    """A naive-UTC (or aware) datetime, or an ISO 8601 text, as epoch seconds."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.rstrip("Z"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


def short_platform(data: dict) -> str:
    """``npp``/``j01``/``j02`` from a message's data."""
    return data.get("orig_platform_name") or _SHORT.get(data.get("platform_name"), "?")


def file_event(data: dict, received: float) -> tuple[FileEvent, int | None]:
    """A file message's data as a FileEvent (arrival: the file's mtime) and its size."""
    try:
        stat = os.stat(data["uri"])
        arrival, size = stat.st_mtime, stat.st_size
    except (OSError, KeyError):
        arrival, size = received, None  # gone already (retention) or not local
    event = FileEvent(
        name=data["uid"],
        platform=short_platform(data),
        segment=data["segment"],
        orbit=int(data["orbit_number"]),
        start=epoch(data["start_time"]),
        arrival=arrival,
    )
    return event, size


def mirror_run(summary: dict) -> dict:
    """The mirror's last-run JSON as a history row.

    ``listing``: one record per products.json request (status, wire bytes). A poll whose
    listing failed has none and every queue ``failed``: one failed request.
    """
    queues = [q for q in summary.get("queues") or [] if isinstance(q, dict)]
    requests = [r for r in summary.get("listing") or [] if isinstance(r, dict)]
    failed_poll = bool(queues) and not requests and all(q.get("status") == "failed" for q in queues)
    return {
        "finished": epoch(summary["finished"]),
        "seconds": float(summary.get("seconds") or 0),
        **{key: int(summary.get(key) or 0) for key in ("found", "wanted", "fetched", "failed")},
        "bytes": int(summary.get("bytes") or 0),
        "queues": len(queues),
        "listing_failed": sorted(str(q.get("queue")) for q in queues) if failed_poll else [],
        "listing_ok": len(requests),
        "listing_failures": int(failed_poll),
        "listing_bytes": sum(int(r.get("wire_bytes") or 0) for r in requests),
    }


class Complaints:
    """Rate-limited log lines about what was lost, so a broken store cannot flood the log."""

    def __init__(self):
        self.lost, self.last = 0, 0.0
        self.lock = threading.Lock()

    def lost_events(self, count: int, why: str) -> None:
        """``count`` events dropped because of ``why``."""
        with self.lock:
            self.lost += count
            now = time.monotonic()
            if now - self.last < COMPLAINT_INTERVAL:
                return
            lost, self.lost, self.last = self.lost, 0, now
        log.error(
            "history: %d event(s) not recorded: %s; the pipeline is not affected, "
            "recording goes on (at most one such line a minute)",
            lost,
            why,
        )


class Recorder:
    """The threads of the recorder and the state they share."""

    def __init__(self, settings: settings_module.Settings, max_bytes: int | None = None):
        self.settings = settings
        self.path = history_store.path_of(settings.state_dir)
        self.max_bytes = max_bytes or settings.history_max_mb * 1024 * 1024
        self.pending: queue.Queue = queue.Queue(maxsize=MAX_PENDING)
        self.stop = threading.Event()
        self.complaints = Complaints()
        self.store: history_store.HistoryStore | None = None
        self.leased: set[str] = set()
        self.handout_mark: float | None = None
        self.mirror_mark: float | None = None
        self.recorded = 0

    # --- producers (never block) ------------------------------------------------------

    def offer(self, kind: str, payload) -> None:
        """Queue an event for the writer; drop it (and say so) when the writer lags."""
        try:
            self.pending.put_nowait((kind, payload))
        except queue.Full:
            self.complaints.lost_events(1, f"the history store is slow ({MAX_PENDING} waiting)")

    def listen_bus(self) -> None:
        """File and granule messages, through the nameserver."""
        while not self.stop.is_set():
            try:
                with bus.subscribe([FILE_TOPIC, GRANULE_TOPIC]) as subscriber:
                    log.info("listening to %s and %s*", FILE_TOPIC, GRANULE_TOPIC)
                    for message in subscriber.recv(timeout=1):
                        if self.stop.is_set():
                            return
                        if message is not None and message.type in ("file", "dataset"):
                            self.offer(message.type, (message.subject, message.data, time.time()))
            except TimeoutError as error:
                log.warning("nameserver on localhost not answering (%s); retrying in 1 s", error)
                self.stop.wait(1)

    def listen_state(self) -> None:
        """The broker's queue state: a sample on change (bounded) and once a minute."""
        context = zmq.Context.instance()
        sock = context.socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SUBSCRIBE, b"")
        sock.connect(f"tcp://localhost:{self.settings.state_port}")
        last_key, last_time = None, 0.0
        try:
            while not self.stop.is_set():
                if not sock.poll(1000):
                    continue
                try:
                    state = json.loads(sock.recv())
                except ValueError:
                    continue
                if not isinstance(state, dict):
                    continue
                now = time.time()
                key = (state.get("queue length"), json.dumps(state.get("tasks per product")))
                elapsed = now - last_time
                if (key != last_key and elapsed >= QUEUE_MIN_INTERVAL) or (
                    elapsed >= QUEUE_MAX_INTERVAL
                ):
                    self.offer("queue", (now, state))
                    last_key, last_time = key, now
        finally:
            sock.close(linger=0)

    def watch_disk(self) -> None:
        """Disk use of the base directory (a walk: its own thread, seldom)."""
        from avoviirscollector.operator.status import read_disk

        while not self.stop.is_set():
            try:
                disk = read_disk(self.settings.base_dir)
                self.offer("disk", (time.time(), disk.used, disk.free, disk.total))
            except Exception as error:  # noqa: BLE001 - any failure is one line, then retry
                log.warning("cannot measure disk use of %s: %s", self.settings.base_dir, error)
            self.stop.wait(DISK_INTERVAL)

    # --- the writer -------------------------------------------------------------------

    def _open(self) -> history_store.HistoryStore:
        if self.store is None:
            self.store = history_store.HistoryStore(self.path, self.max_bytes)
            self.handout_mark = self.store.last_handout()
            self.mirror_mark = self.store.last_mirror_run()
            log.info("recording the history in %s", self.path)
        return self.store

    def _drop_store(self) -> None:
        if self.store is not None:
            try:
                self.store.close()
            except sqlite3.Error:
                pass
        self.store = None

    def write(self, batch: list[tuple[str, object]]) -> int:
        """Store a batch in one transaction; on failure log (rate-limited) and drop it."""
        if not batch:
            return 0
        try:
            store = self._open()
            store.begin()
            for kind, payload in batch:
                self._apply(store, kind, payload)
            store.commit()
        except (sqlite3.Error, OSError) as error:
            if self.store is not None:
                try:
                    self.store.rollback()
                except sqlite3.Error:
                    pass
            self._drop_store()
            self.complaints.lost_events(len(batch), f"cannot write {self.path}: {error}")
            return 0
        self.recorded += len(batch)
        return len(batch)

    def _apply(self, store: history_store.HistoryStore, kind: str, payload) -> None:
        handler = getattr(self, f"_apply_{kind}")
        try:
            handler(store, payload)
        except (KeyError, ValueError, TypeError, AttributeError) as error:
            log.warning("history: skipped a %s event it cannot read: %s", kind, error)

    def _apply_file(self, store, payload) -> None:
        _, data, received = payload
        event, size = file_event(data, received)
        store.add_file(event, size)

    def _apply_dataset(self, store, payload) -> None:
        subject, data, received = payload
        product = subject.rsplit("/", 1)[-1]
        store.add_granule(
            product,
            short_platform(data),
            int(data["orbit_number"]),
            epoch(data["start_time"]),
            received,
        )

    def _apply_queue(self, store, payload) -> None:
        store.add_queue_sample(*payload)

    def _apply_disk(self, store, payload) -> None:
        store.add_disk(*payload)

    def _apply_handouts(self, store, payload) -> None:
        handouts, leased = payload
        for granule, when in handouts:
            acknowledged = granule in self.leased
            store.add_handout(
                granule, history_store.product_of_granule(granule), when, acknowledged
            )
            self.leased.discard(granule)
        for product, count in history_store.tasks_of(handouts).items():
            store.add_tasks_handed_out(product, count)
        self.leased |= set(leased)
        if handouts:
            self.handout_mark = max(when for _, when in handouts)

    def _apply_mirror(self, store, payload) -> None:
        if store.add_mirror_run(payload):
            self.mirror_mark = payload["finished"]

    def _apply_programs(self, store, payload) -> None:
        when, infos = payload
        for info in infos:
            if info.get("start") and store.program_started(info["name"], info["start"], when):
                log.info("%s restarted (recorded for the page's restart count)", info["name"])

    # --- polls (in the writer's thread: they only read) --------------------------------

    def poll(self) -> list[tuple[str, object]]:
        """Read the broker's queue, the mirror's summary and supervisord; events to store."""
        events = []
        broker_db = self.settings.state_dir / BROKER_DB
        if broker_db.exists() and self.handout_mark is not None:
            try:
                leased = history_store.read_broker_leased(broker_db)
                handouts = history_store.read_broker_handouts(broker_db, self.handout_mark)
                events.append(("handouts", (handouts, leased)))
            except sqlite3.Error as error:
                log.warning("cannot read the broker's queue %s: %s", broker_db, error)
        last_run = self.settings.state_dir / MIRROR_LAST_RUN
        try:
            run = mirror_run(json.loads(last_run.read_text()))
            if self.mirror_mark is not None and run["finished"] > self.mirror_mark:
                events.append(("mirror", run))
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            log.warning("cannot read the mirror's last run %s: %s", last_run, error)
        try:
            infos = supervisor_client.processes(supervisor_client.socket_of(self.settings.base_dir))
            events.append(("programs", (time.time(), infos)))
        except supervisor_client.SupervisorUnavailable as error:
            log.debug("supervisord: %s", error)
        return events

    def trim(self) -> None:
        """Delete what is older than the history's days, keep the file under its bound."""
        days = history_days(self.settings.retention_days)
        try:
            deleted = self._open().trim(days)
            self.store.checkpoint()
        except sqlite3.Error as error:
            log.warning("history: trimming %s failed: %s; tried again later", self.path, error)
            self._drop_store()
            return
        if deleted:
            log.info(
                "history: deleted %d row(s) older than %d days or over the bound", deleted, days
            )

    def run_writer(self) -> None:
        """Every second: store what arrived; every few seconds poll; now and then trim."""
        next_poll = next_trim = 0.0
        while not self.stop.is_set():
            now = time.monotonic()
            batch = self._drain()
            if now >= next_poll:
                if self.handout_mark is None:
                    self._open_quietly()  # the marks: where to read the broker and mirror on
                batch += self.poll()
                next_poll = now + POLL_INTERVAL
            self.write(batch)
            if now >= next_trim:
                self.trim()
                next_trim = now + TRIM_INTERVAL
            self.stop.wait(WRITE_INTERVAL)
        self.write(self._drain())

    def _open_quietly(self) -> None:
        try:
            self._open()
        except (sqlite3.Error, OSError) as error:
            self._drop_store()
            self.complaints.lost_events(0, f"cannot open {self.path}: {error}")

    def _drain(self) -> list[tuple[str, object]]:
        batch = []
        while len(batch) < MAX_PENDING:
            try:
                batch.append(self.pending.get_nowait())
            except queue.Empty:
                break
        return batch

    def threads(self) -> list[threading.Thread]:
        """The recorder's threads (not started)."""
        return [
            threading.Thread(target=self.listen_bus, name="bus", daemon=True),
            threading.Thread(target=self.listen_state, name="state", daemon=True),
            threading.Thread(target=self.watch_disk, name="disk", daemon=True),
        ]


def main(argv: list[str] | None = None) -> int:
    """Record until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(
        prog="viirscollector recorder",
        description="Record file arrivals, granules, the queue, tasks, mirror runs, restarts "
        "and disk use in $VIIRS_BASE_DIR/state/history.sqlite for the status page "
        "(viirscollector web); kept VIIRS_RETENTION days (14 when unset), at most "
        "VIIRS_HISTORY_MAX_MB.",
    )
    parser.parse_args(argv)
    settings = settings_module.load_or_exit()
    logs.setup("recorder", settings, daemon=True)
    # The history may wait, the pipeline may not: on a busy machine the scheduler gives
    # trollstalker, the gatherers and msg_publisher the CPU first.
    os.nice(NICENESS)
    liveness.start(settings.base_dir, "recorder")
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    recorder = Recorder(settings)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: recorder.stop.set())
    for thread in recorder.threads():
        thread.start()
    recorder.run_writer()
    log.info("stopping after %d event(s) recorded", recorder.recorded)
    if recorder.store is not None:
        recorder.store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
