"""mirror_gina: fetch every new VIIRS SDR file from GINA into sdr/, never a bad one.

Run by cron every few minutes. For each enabled queue of ``etc/gina_queues.yaml``
(concurrently), under a lock of its own:

1. ask GINA's products.json for the backfill window;
2. pick the files the queue wants that sdr/ lacks, newest granule first,
   geolocation before bands, leaving out files held back after failures;
3. fetch them with :mod:`downloader` into ``tmp/mirror_gina-<queue>/``;
4. verify each (MD5, HDF5), fsync it and rename it into sdr/, then fsync sdr/.

sdr/ therefore never holds a partial or unverified file, even if the run is killed
with SIGKILL; the next run removes the dead run's temp files. A second run while
one is busy skips the busy queues with one log line (flock: the kernel releases it
when a process dies, so no stale lock can block the mirror).

Exit status: 0 when every enabled queue was asked and its list worked through, or
skipped because another run holds it. Files that failed do not change it: each is
logged and mailed, and retried by a later run after a growing pause (a cron job
that "fails" every time one file is bad tells the operator nothing new).
1 when at least one queue could not list GINA's products (HTTP error, timeout,
an answer that is not a JSON list): the mirror is blind for that queue.
2 for a bad environment variable or queue file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import fcntl
import json
import logging
import os
import queue as queue_module
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from avoviirscollector import logs, verify
from avoviirscollector import settings as settings_module
from avoviirscollector.mirror import downloader, failure_memory, gina_catalog
from avoviirscollector.mirror.downloader import MB, FileTask, Options
from avoviirscollector.mirror.gina_catalog import CatalogError, Product, Queue, QueueConfigError

PROGRAM = "mirror_gina"
log = logging.getLogger(PROGRAM)
#: Seconds products.json may take before the queue gives up for this run.
CATALOG_TIMEOUT = 120.0
LAST_RUN_FILE = "mirror_gina-last-run.json"


@dataclass
class QueueResult:
    """What one queue did in one run (logged, and kept in state/ for ``status``)."""

    queue: str
    status: str = "ok"  # ok, busy, failed
    found: int = 0
    wanted: int = 0
    held_back: int = 0
    fetched: int = 0
    failed: int = 0
    bytes: int = 0
    seconds: float = 0.0
    error: str | None = None
    failed_files: list = field(default_factory=list)


def load_queues(path: Path) -> list[Queue]:
    """The queues of the YAML file; QueueConfigError with the file's name on any problem."""
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as error:
        raise QueueConfigError(f"cannot read {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise QueueConfigError(f"{path} is not valid YAML: {error}") from None
    try:
        return gina_catalog.parse_queues(document)
    except QueueConfigError as error:
        raise QueueConfigError(f"{path}: {error}") from None


class QueueLock:
    """An exclusive, non-blocking flock; ``acquired`` False when another run holds it."""

    def __init__(self, path: Path):
        self.path = path
        self.acquired = False
        self._fd: int | None = None

    def __enter__(self) -> QueueLock:
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return self
        self.acquired = True
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"{os.getpid()}\n".encode())
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the flock
            self._fd = None


def fsync_directory(path: Path) -> None:
    """Make a rename in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Placer:
    """Verifies finished downloads and renames good ones into sdr/, in its own thread.

    A thread of its own so the connections keep downloading while a file is hashed.
    """

    def __init__(self, queue: Queue, sdr_dir: Path, memory: failure_memory.FailureMemory):
        self.queue, self.sdr_dir, self.memory = queue, sdr_dir, memory
        self.result_lock = threading.Lock()
        self.fetched: list[FileTask] = []
        self.failed: list[tuple[str, str]] = []
        self._inbox: queue_module.Queue = queue_module.Queue()
        self._thread = threading.Thread(target=self._work, name=f"placer-{queue.name}")
        self._thread.start()

    def submit(self, task: FileTask) -> None:
        """Called by the downloader when a file is done or given up."""
        self._inbox.put(task)

    def close(self) -> None:
        """Wait until every submitted file is placed or rejected."""
        self._inbox.put(None)
        self._thread.join()

    def _work(self) -> None:
        while (task := self._inbox.get()) is not None:
            try:
                self._handle(task)
            except Exception:  # one file must not stop the others; logged and mailed
                log.exception("queue %s: unexpected error with %s", self.queue.name, task.name)
                self._reject(task, "unexpected error (see the log)")

    def _handle(self, task: FileTask) -> None:
        if task.status != "done":
            reason = f"download failed after {task.retries} retries: {task.error}"
            self._reject(task, reason, local="local_error" in task.data)
            return
        started = time.monotonic()
        try:
            verify.verify(task.path, task.data["md5"])
        except (verify.VerifyError, OSError) as error:
            self._reject(task, str(error))
            return
        self._place(task)
        log.info(
            "queue %s: fetched %s: %d bytes in %.1f s (%.1f MB/s), %d connection(s), "
            "%d retries, verified in %.2f s",
            self.queue.name,
            task.name,
            task.size or 0,
            task.seconds,
            task.rate,
            len(task.connections),
            task.retries,
            time.monotonic() - started,
        )
        with self.result_lock:
            self.fetched.append(task)
            self.memory.succeeded(task.name)

    def _place(self, task: FileTask) -> None:
        fd = os.open(task.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(task.path, self.sdr_dir / task.name)
        fsync_directory(self.sdr_dir)

    def _reject(self, task: FileTask, reason: str, local: bool = False) -> None:
        """Delete the temp file; remember the failure unless it was this machine's (``local``).

        A full disk or an unwritable tmp/ is no reason to hold a good file back for
        minutes once the operator has fixed it: the next run tries it again.
        """
        try:
            task.path.unlink()
        except FileNotFoundError:
            pass
        if local:
            with self.result_lock:
                self.failed.append((task.name, reason))
            log.error(
                "queue %s: %s not placed: %s; a problem of this machine, not of the file: "
                "the next run tries it again",
                self.queue.name,
                task.name,
                reason,
            )
            return
        with self.result_lock:
            failure = self.memory.failed(task.name, reason, time.time())
            self.failed.append((task.name, reason))
        retry = dt.datetime.fromtimestamp(failure.retry_at, dt.UTC).strftime("%H:%M:%SZ")
        log.error(
            "queue %s: %s not placed: %s; failure %d in a row, next try after %s",
            self.queue.name,
            task.name,
            reason,
            failure.count,
            retry,
        )


def list_products(
    queue: Queue,
    settings: settings_module.Settings,
    backfill_days: int | None = None,
    facility: str | None = None,
) -> tuple[list[Product], list[str]]:
    """GINA's products.json for a queue's satellite: (usable products, skipped entries).

    The mirror asks for its backfill window and facility; verify-sdr asks for the days
    of the files it checks, from any facility. Raises OSError or CatalogError.
    """
    today = dt.datetime.now(dt.UTC).date()
    days = settings.backfill_days if backfill_days is None else backfill_days
    params = gina_catalog.query(queue, facility or settings.facility, days, today)
    url = gina_catalog.query_url(settings.gina_url, params)
    log.debug("queue %s: asking %s", queue.name, url)
    body = downloader.get(url, timeout=CATALOG_TIMEOUT)
    return gina_catalog.parse_products(body)


class QueueRun:
    """One queue's run: lock, list, select, fetch, verify, place, remember."""

    def __init__(self, queue: Queue, settings: settings_module.Settings, options: Options):
        self.queue, self.settings, self.options = queue, settings, options
        self.work_dir = settings.tmp_dir / f"{PROGRAM}-{queue.name}"
        self.state_path = settings.state_dir / f"{PROGRAM}-{queue.name}.json"
        self.outage_path = settings.state_dir / f"{PROGRAM}-{queue.name}-outage.json"
        self.result = QueueResult(queue.name)

    def run(self) -> QueueResult:
        """Run the queue unless another process holds its lock."""
        started = time.monotonic()
        lock_path = self.settings.tmp_dir / f"{PROGRAM}-{self.queue.name}.lock"
        with QueueLock(lock_path) as lock:
            if not lock.acquired:
                log.info(
                    "queue %s: skipped, another mirror_gina is running it (%s is locked)",
                    self.queue.name,
                    lock_path,
                )
                self.result.status = "busy"
                return self.result
            try:
                self._locked_run()
            finally:
                self.result.seconds = time.monotonic() - started
        self._log_summary()
        return self.result

    def _locked_run(self) -> None:
        self._clean_work_dir()
        try:
            products = self._list_products()
        except (OSError, CatalogError) as error:
            self.result.status, self.result.error = "failed", str(error)
            self._report_outage(str(error))
            return
        self._report_recovery()
        memory, problem = failure_memory.load(self.state_path)
        if problem:
            log.warning("queue %s: failure memory %s", self.queue.name, problem)
        wanted = self._select(products, memory)
        if wanted:
            self._fetch(wanted, memory)
        memory.prune(time.time())
        failure_memory.save(memory, self.state_path)

    def _report_outage(self, error: str) -> None:
        """An ERROR (mailed) at the start of an outage and once per mail interval after."""
        now = time.time()
        interval_minutes = self.settings.mail_interval_minutes
        interval = interval_minutes * 60.0
        outage, mail = failure_memory.outage_failed(
            failure_memory.load_outage(self.outage_path), error, now, interval
        )
        failure_memory.save_outage(outage, self.outage_path)
        since = dt.datetime.fromtimestamp(outage.since, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        log.log(
            logging.ERROR if mail else logging.WARNING,
            "queue %s: could not list GINA's products: %s; failing since %s; nothing fetched "
            "for this queue, the next run tries again%s",
            self.queue.name,
            error,
            since,
            "" if mail else f" ({logs.mail_note(self.settings, PROGRAM, interval_minutes)})",
        )

    def _report_recovery(self) -> None:
        outage = failure_memory.load_outage(self.outage_path)
        if outage is not None:
            log.info(
                "queue %s: GINA answers again after %.0f minutes of failures",
                self.queue.name,
                (time.time() - outage.since) / 60,
            )
            failure_memory.save_outage(None, self.outage_path)

    def _clean_work_dir(self) -> None:
        """Remove what a killed run left behind (we hold the lock: nobody else uses it)."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        leftovers = [p for p in self.work_dir.iterdir() if p.is_file()]
        for path in leftovers:
            path.unlink()
        if leftovers:
            log.info(
                "queue %s: removed %d temp file(s) of an interrupted run",
                self.queue.name,
                len(leftovers),
            )

    def _list_products(self) -> list[Product]:
        products, problems = list_products(self.queue, self.settings)
        for problem in problems:
            log.error("queue %s: skipped an entry of products.json: %s", self.queue.name, problem)
        self.result.found = len(products)
        return products

    def _select(self, products: list[Product], memory) -> list[Product]:
        present = os.listdir(self.settings.sdr_dir)
        wanted, problems = gina_catalog.select(products, self.queue, present)
        for problem in problems:
            log.error("queue %s: skipped a listed file: %s", self.queue.name, problem)
        now = time.time()
        due = [p for p in wanted if memory.due(p.name, now)]
        held = [p for p in wanted if not memory.due(p.name, now)]
        self.result.wanted, self.result.held_back = len(due), len(held)
        if held:
            soonest = min(memory.failures[p.name].retry_at for p in held)
            log.info(
                "queue %s: %d file(s) held back after failures, next one due at %s",
                self.queue.name,
                len(held),
                dt.datetime.fromtimestamp(soonest, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            )
        return due

    def _fetch(self, wanted: list[Product], memory) -> None:
        tasks = [
            FileTask(p.url, self.work_dir / f"{p.name}.part", p.name, data={"md5": p.md5})
            for p in wanted
        ]
        log.info(
            "queue %s: fetching %d file(s) on %d connection(s)",
            self.queue.name,
            len(tasks),
            self.options.connections,
        )
        placer = Placer(self.queue, self.settings.sdr_dir, memory)
        try:
            label = f"queue {self.queue.name}: progress"
            engine = downloader.Downloader(self.options, placer.submit, log, label)
            engine.run(tasks)
        finally:
            placer.close()
        self.result.fetched = len(placer.fetched)
        self.result.failed = len(placer.failed)
        self.result.failed_files = [name for name, _ in placer.failed]
        self.result.bytes = sum(t.size or 0 for t in placer.fetched)

    def _log_summary(self) -> None:
        r = self.result
        log.info(
            "queue %s: %s; found %d, wanted %d, held back %d, fetched %d, failed %d, "
            "%.1f MB in %.1f s (%.1f MB/s)",
            r.queue,
            r.status,
            r.found,
            r.wanted,
            r.held_back,
            r.fetched,
            r.failed,
            r.bytes / MB,
            r.seconds,
            r.bytes / MB / r.seconds if r.seconds else 0.0,
        )


def run_queues(
    queues: list[Queue], settings: settings_module.Settings, options: Options
) -> list[QueueResult]:
    """Run every queue concurrently (one thread each); their results in queue order."""
    results: dict[str, QueueResult] = {}

    def work(queue: Queue) -> None:
        try:
            results[queue.name] = QueueRun(queue, settings, options).run()
        except Exception as error:  # e.g. a full disk for the state file: logged and mailed
            log.exception("queue %s: stopped by an unexpected error", queue.name)
            results[queue.name] = QueueResult(queue.name, "failed", error=str(error))

    threads = [threading.Thread(target=work, args=(q,), name=f"queue-{q.name}") for q in queues]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [results[q.name] for q in queues]


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description="Fetch new VIIRS SDR files from GINA into $VIIRS_BASE_DIR/sdr.",
        epilog="Exit status: 0 every queue ran (failed files are mailed and retried later), "
        "1 a queue could not list GINA's products, 2 bad configuration.",
    )
    parser.add_argument("--queues", type=Path, help="queue file (default: etc/gina_queues.yaml)")
    parser.add_argument(
        "--stall-seconds",
        type=int,
        default=Options.low_speed_time,
        help="give a transfer up after this many seconds below 1 kB/s (default %(default)s)",
    )
    parser.add_argument(
        "--retry-pause",
        type=float,
        default=Options.backoff_base,
        help="first pause before retrying a failed transfer, doubled each time "
        "(default %(default)s s)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mirror_gina`` console script and ``viirscollector mirror``."""
    args = _arguments(argv)
    settings = settings_module.load_or_exit()
    logs.setup(PROGRAM, settings)
    queue_file = args.queues or settings.config_dir / "etc" / "gina_queues.yaml"
    try:
        queues = load_queues(queue_file)
    except QueueConfigError as error:
        log.error("cannot use the queue file: %s", error)
        return 2
    for directory in (settings.sdr_dir, settings.tmp_dir, settings.state_dir):
        directory.mkdir(parents=True, exist_ok=True)
    for queue in queues:
        if not queue.enabled:
            log.info("queue %s: disabled in %s, skipped", queue.name, queue_file)
    enabled = [q for q in queues if q.enabled]
    options = Options(
        connections=settings.gina_connections,
        low_speed_time=args.stall_seconds,
        backoff_base=args.retry_pause,
    )
    started = time.monotonic()
    results = run_queues(enabled, settings, options)
    _summarize(results, time.monotonic() - started, settings)
    return 1 if any(r.status == "failed" for r in results) else 0


def _summarize(results: list[QueueResult], seconds: float, settings) -> None:
    """One line for the whole run, and the same in state/ for ``viirscollector status``."""
    total = {
        key: sum(getattr(r, key) for r in results)
        for key in ("found", "wanted", "fetched", "failed", "bytes")
    }
    busy = [r.queue for r in results if r.status == "busy"]
    broken = [r.queue for r in results if r.status == "failed"]
    log.info(
        "run summary: found %d, wanted %d, fetched %d, failed %d, %.1f MB in %.1f s; "
        "%d queue(s)%s%s",
        total["found"],
        total["wanted"],
        total["fetched"],
        total["failed"],
        total["bytes"] / MB,
        seconds,
        len(results),
        f"; busy in another run: {', '.join(busy)}" if busy else "",
        f"; could not list GINA's products: {', '.join(broken)}" if broken else "",
    )
    summary = {
        "finished": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "seconds": round(seconds, 3),
        **total,
        "queues": [asdict(r) for r in results],
    }
    try:
        failure_memory.write_atomically(
            settings.state_dir / LAST_RUN_FILE, json.dumps(summary, indent=1)
        )
    except OSError as error:
        log.warning("could not record the run summary in %s: %s", settings.state_dir, error)


if __name__ == "__main__":
    sys.exit(main())
