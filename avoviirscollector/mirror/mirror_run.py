"""One mirror poll: ask GINA once, split the answer per queue, fetch, verify, place.

:mod:`mirror_gina` decides cheaply whether a poll is due, sends the poll's listing
request (:mod:`listing`: products.json asked once for every satellite the enabled
queues need, gzip accepted, conditional, for today's dates or, every few minutes
and after a start or an outage, the whole backfill window) and imports this module
while GINA answers. :class:`Poll` then:

1. takes the answer (a 304 means nothing new: no parse, no work);
2. splits the answer per queue and runs the queues concurrently, each under a lock
   of its own: select the files the queue wants and sdr/ lacks (newest granule
   first, geolocation before bands, files held back after failures left out), fetch
   them with :mod:`downloader` into ``tmp/mirror_gina-<queue>/``, verify each (MD5,
   HDF5), fsync it and rename it into sdr/;
3. predicts the passes over the antenna from the TLE file when its cache runs out
   (:mod:`passes`), and sets the next poll by :mod:`cadence_rules`.

sdr/ never holds a partial or unverified file, even after SIGKILL; the next run
removes the dead run's temp files.

Log: a poll that found nothing new writes nothing at INFO (DEBUG says why it asked
and what it cost); a poll that fetched writes one line per file (with its name) and
one line for the poll; a change between fast and slow polling is one line, and one
line an hour sums up the polls. A GINA outage is one line per poll (an ERROR, mailed,
at its start and once per mail interval).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import queue as queue_module
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from avoviirscollector import logs, verify
from avoviirscollector import settings as settings_module
from avoviirscollector.mirror import (
    cadence_rules,
    downloader,
    failure_memory,
    gina_catalog,
    listing_rules,
    poll_state,
)
from avoviirscollector.mirror.cadence_rules import Intervals, Pass
from avoviirscollector.mirror.downloader import MB, FileTask, Options
from avoviirscollector.mirror.gina_catalog import CatalogError, Product, Queue
from avoviirscollector.mirror.listing import (
    CATALOG_TIMEOUT,
    Asking,
    Listing,
    enabled_satellites,
    fetch_document,
)
from avoviirscollector.mirror.locks import QueueLock
from avoviirscollector.mirror.poll_state import PollState

PROGRAM = "mirror_gina"
log = logging.getLogger(PROGRAM)
LAST_RUN_FILE = poll_state.LAST_RUN_FILE
#: The TLE file the hourly ``fetch-tle`` job writes (jobs/tle.py TLE_FILENAME).
TLE_FILE = "noaa.txt"
#: Hours of passes predicted at once; predicted again when fewer than PASS_MARGIN remain.
PASS_HOURS, PASS_MARGIN = 36.0, 12.0
#: After a failed listing the next try waits at least this long.
OUTAGE_RETRY = 60.0
#: Seconds between the hourly digest lines.
DIGEST_SECONDS = 3600.0


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
    #: Epoch seconds of the soonest retry of a held-back or failed file (None: none).
    retry_due: float | None = None
    local_failures: int = 0


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
        self.local_failures = 0
        #: Set when the thread itself died: the run is then a failed run (exit 1, mailed).
        self.crashed: str | None = None
        self.submitted = 0
        self._inbox: queue_module.Queue = queue_module.Queue()
        self._thread = threading.Thread(target=self._work, name=f"placer-{queue.name}")
        self._thread.start()

    def submit(self, task: FileTask) -> None:
        """Called by the downloader when a file is done or given up."""
        self.submitted += 1
        self._inbox.put(task)

    def close(self) -> None:
        """Wait until every submitted file is placed or rejected."""
        self._inbox.put(None)
        self._thread.join()
        if self.crashed is None and self.submitted != len(self.fetched) + len(self.failed):
            self.crashed = "files were submitted that it never handled"

    def _work(self) -> None:
        try:
            while (task := self._inbox.get()) is not None:
                self._one(task)
        except BaseException as error:  # the thread dies: say so, the run fails
            self.crashed = f"{type(error).__name__}: {error}"
            log.exception("queue %s: the placer thread died", self.queue.name)

    def _one(self, task: FileTask) -> None:
        """Place or reject one file; any error is that file's failure, never the others'."""
        try:
            self._handle(task)
        except Exception as error:  # logged (mailed), remembered; the next file goes on
            log.exception("queue %s: unexpected error with %s", self.queue.name, task.name)
            try:
                self._reject(task, f"unexpected error: {type(error).__name__}: {error}")
            except Exception:
                log.exception("queue %s: could not even reject %s", self.queue.name, task.name)
                with self.result_lock:
                    self.failed.append((task.name, "unexpected error"))

    def _handle(self, task: FileTask) -> None:
        if task.status != "done":
            reason = f"download failed after {task.retries} retries: {task.error}"
            self._reject(task, reason, local="local_error" in task.data)
            return
        started = time.monotonic()
        try:
            verify.verify(task.path, task.data["md5"], task.digest)
        except (verify.VerifyError, OSError) as error:
            self._reject(task, str(error))
            return
        self._place(task)
        retries = f", {task.retries} retries" if task.retries else ""
        log.info(
            "fetched %s: %.1f MB, %.1f s, %d conn%s, verified %.2f s",
            task.name,
            (task.size or 0) / MB,
            task.seconds,
            len(task.connections),
            retries,
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
        except OSError:
            pass  # not there (never created), or a name the filesystem refuses
        if local:
            with self.result_lock:
                self.failed.append((task.name, reason))
                self.local_failures += 1
            log.error(
                "%s not placed: %s; a problem of this machine, not of the file: "
                "the next run tries it again",
                task.name,
                reason,
            )
            return
        with self.result_lock:
            failure = self.memory.failed(task.name, reason, time.time())
            self.failed.append((task.name, reason))
        retry = dt.datetime.fromtimestamp(failure.retry_at, dt.UTC).strftime("%H:%M:%SZ")
        log.error(
            "%s not placed: %s; failure %d in a row, next try after %s",
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

    verify-sdr asks for the days of the files it checks, from any facility (one request,
    unconditional). Raises OSError or CatalogError.
    """
    today = dt.datetime.now(dt.UTC).date()
    days = settings.backfill_days if backfill_days is None else backfill_days
    params = gina_catalog.query(queue, facility or settings.facility, days, today)
    url = gina_catalog.query_url(settings.gina_url, params)
    log.debug("queue %s: asking %s", queue.name, url)
    document = fetch_document(url, timeout=CATALOG_TIMEOUT)
    return gina_catalog.parse_products(document.body)


class QueueRun:
    """One queue's share of a poll: lock, select, fetch, verify, place, remember."""

    def __init__(self, queue: Queue, settings: settings_module.Settings, options: Options):
        self.queue, self.settings, self.options = queue, settings, options
        self.work_dir = settings.tmp_dir / f"{PROGRAM}-{queue.name}"
        self.state_path = settings.state_dir / f"{PROGRAM}-{queue.name}.json"
        self.result = QueueResult(queue.name)

    def run(self, products: list[Product]) -> QueueResult:
        """Work through the queue's share of the listing unless another process holds it."""
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
                self._locked_run(products)
            finally:
                self.result.seconds = time.monotonic() - started
        self._log_summary()
        return self.result

    def _locked_run(self, products: list[Product]) -> None:
        self._clean_work_dir()
        self.result.found = len(products)
        memory, problem = failure_memory.load(self.state_path)
        if problem:
            log.warning("queue %s: failure memory %s", self.queue.name, problem)
        wanted = self._select(products, memory)
        if wanted:
            self._fetch(wanted, memory)
        now = time.time()
        memory.prune(now)
        failure_memory.save(memory, self.state_path)
        retries = [f.retry_at for f in memory.failures.values() if f.retry_at > now]
        self.result.retry_due = min(retries, default=None)

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

    def _select(self, products: list[Product], memory) -> list[Product]:
        present = os.listdir(self.settings.sdr_dir)
        wanted, problems = gina_catalog.select(products, self.queue, present)
        for problem in problems:
            log.error("queue %s: skipped a listed file: %s", self.queue.name, problem)
        now = time.time()
        due = [p for p in wanted if memory.due(p.name, now)]
        held = [p for p in wanted if not memory.due(p.name, now)]
        self.result.wanted, self.result.held_back = len(due), len(held)
        if held and due:
            soonest = min(memory.failures[p.name].retry_at for p in held)
            log.info(
                "queue %s: %d file(s) held back after failures, next one due at %s",
                self.queue.name,
                len(held),
                dt.datetime.fromtimestamp(soonest, dt.UTC).strftime("%H:%M:%SZ"),
            )
        elif held:
            log.debug("queue %s: %d file(s) held back after failures", self.queue.name, len(held))
        return due

    def _fetch(self, wanted: list[Product], memory) -> None:
        tasks = [
            FileTask(
                p.url,
                self.work_dir / f"{p.name}{gina_catalog.TEMP_SUFFIX}",
                p.name,
                data={"md5": p.md5},
            )
            for p in wanted
        ]
        log.debug(
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
        self.result.local_failures = placer.local_failures
        self.result.bytes = sum(t.size or 0 for t in placer.fetched)
        if placer.crashed:
            self.result.status = "failed"
            self.result.error = f"the placer thread died ({placer.crashed})"
            log.error(
                "queue %s: %s; %d file(s) of this run not placed, the next run tries again",
                self.queue.name,
                self.result.error,
                len(tasks) - len(placer.fetched),
            )

    def _log_summary(self) -> None:
        r = self.result
        level = logging.INFO if (r.wanted or r.failed) else logging.DEBUG
        log.log(
            level,
            "queue %s: %s; found %d, wanted %d, held back %d, fetched %d, failed %d, "
            "%.1f MB in %.1f s",
            r.queue,
            r.status,
            r.found,
            r.wanted,
            r.held_back,
            r.fetched,
            r.failed,
            r.bytes / MB,
            r.seconds,
        )


def run_queues(
    shares: list[tuple[Queue, list[Product]]],
    settings: settings_module.Settings,
    options: Options,
) -> list[QueueResult]:
    """Run every queue concurrently (one thread each); their results in queue order.

    A queue thread that dies without a result is a failed queue (never a silent one).
    """
    results: dict[str, QueueResult] = {}

    def work(queue: Queue, products: list[Product]) -> None:
        try:
            results[queue.name] = QueueRun(queue, settings, options).run(products)
        except Exception as error:  # e.g. a full disk for the state file: logged and mailed
            log.exception("queue %s: stopped by an unexpected error", queue.name)
            results[queue.name] = QueueResult(queue.name, "failed", error=str(error))

    threads = [
        threading.Thread(target=work, args=(q, p), name=f"queue-{q.name}") for q, p in shares
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    missing = [q.name for q, _ in shares if q.name not in results]
    for name in missing:
        log.error("queue %s: its thread died without a result; the run failed", name)
        results[name] = QueueResult(name, "failed", error="queue thread died")
    return [results[q.name] for q, _ in shares]


# ----------------------------------------------------------------- the poll


def intervals_of(settings: settings_module.Settings) -> Intervals:
    poll = settings.poll
    return Intervals(
        fast=float(poll.fast_seconds),
        slow=float(poll.slow_seconds),
        hold=float(poll.arrival_hold_seconds),
        latency=poll.pass_latency_minutes * 60.0,
    )


def refresh_passes(settings, state: PollState, satellites: list[str], now: float) -> list[Pass]:
    """Predicted passes, from the cache while it covers the next hours and the TLEs are the same.

    A missing, stale or bad TLE file gives no passes (the fixed cadence) and one log
    line when that condition starts or changes, never an exception.
    """
    path = settings.elements_dir / TLE_FILE
    try:
        mtime = path.stat().st_mtime
    except OSError:
        mtime = None
    key = {"facility": settings.facility, "satellites": satellites, "mtime": mtime}
    cached = [Pass(**p) for p in state.passes]
    stored = {k: v for k, v in state.passes_key.items() if k != "checked"}
    if stored == key:
        covered = max((p.fall for p in cached), default=0.0) > now + PASS_MARGIN * 3600
        if state.tle_problem is None and covered:
            return cached
        if state.tle_problem is not None and state.passes_key.get("checked", 0) > now - 600:
            return cached  # the same unusable file: looked at again every 10 minutes
    predicted, problem = [], None
    if mtime is None:
        problem = f"no TLE file {path} (the hourly fetch-tle job writes it)"
    else:
        predicted, problem = _predict(path, settings.facility, satellites, now)
    _report_tle(state, problem, path, settings)
    state.passes = [asdict(p) for p in predicted]
    state.passes_key = {**key, "checked": now}
    state.tle_problem = problem
    return predicted


def _predict(path: Path, facility: str, satellites: list[str], now: float):
    from avoviirscollector.mirror import passes

    moment = dt.datetime.fromtimestamp(now, dt.UTC).replace(tzinfo=None)
    try:
        elements = passes.read_elements(path.read_text(errors="replace"), satellites, moment)
        start = moment - dt.timedelta(hours=1)
        return passes.predict(elements, facility, start, PASS_HOURS), None
    except passes.TleProblem as error:
        return [], f"{path}: {error}"
    except Exception as error:  # never let a bad file or a library surprise stop the mirror
        return [], f"{path}: cannot predict passes ({type(error).__name__}: {error})"


def _report_tle(state: PollState, problem: str | None, path: Path, settings) -> None:
    if problem == state.tle_problem:
        return
    if problem:
        log.warning(
            "no pass prediction: %s; polling every %d s, fast while new files appear",
            problem,
            settings.poll.slow_seconds,
        )
    elif state.tle_problem:
        log.info("passes predicted from %s again", path)


def _stamp(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%H:%M:%SZ")


class Poll:
    """One poll, from GINA's answer to ``asking`` (sent for it: :meth:`Asking.start`,
    whose poll state it carries on) to the next poll's time."""

    def __init__(
        self, settings, queues, options: Options, reason: str, started, now: float, asking: Asking
    ):
        self.settings, self.options, self.reason = settings, options, reason
        self.queues = [q for q in queues if q.enabled]
        self.satellites = enabled_satellites(self.queues)
        self.collector_started = started
        self.now = now
        self.began = time.monotonic()
        self.asking = asking
        self.state = asking.state
        self.outage_path = settings.state_dir / f"{PROGRAM}-outage.json"
        self.results: list[QueueResult] = []

    # -- the steps --------------------------------------------------------------------------

    def run(self) -> int:
        """Poll; exit status 0, or 1 when the listing or a queue failed."""
        state = self.state
        window = self.asking.window
        why = self._why(window)
        try:
            listing = self.asking.result()
        except (OSError, CatalogError) as error:
            return self._failed_listing(str(error), why)
        self._report_recovery()
        if listing.modified:
            self.results = self._run_queues(listing)
        self._remember(listing, window)
        passes = refresh_passes(self.settings, state, self.satellites, self.now)
        requests = max(1, len(listing.requests)) if listing.fallback else 1
        due, current = cadence_rules.next_poll(
            self.now, passes, state.arrivals, intervals_of(self.settings), requests
        )
        self._log_poll(why, listing, due)
        self._log_cadence(current, passes)
        state.next_poll_at, state.last_poll, state.last_ok = due, self.now, True
        state.cadence = {**asdict(current), "checked": self.now}
        self._digest(listing, current)
        self._save(listing, why)
        return 1 if any(r.status == "failed" for r in self.results) else 0

    def _why(self, window: listing_rules.Window) -> str:
        scheduled = self.state.cadence.get("reason") if self.reason == "due" else self.reason
        why = scheduled or self.reason
        if window.kind == "wide":
            why += f"; whole window ({window.reason})"
        return why

    def _run_queues(self, listing: Listing) -> list[QueueResult]:
        by_name = {p.name: p for p in listing.products}
        satellite_of = {q.name: q.satellite for q in self.queues if q.satellite in listing.listed}
        names = listing_rules.split(by_name, satellite_of)
        shares = [(q, [by_name[n] for n in names[q.name]]) for q in self.queues if q.name in names]
        return run_queues(shares, self.settings, self.options)

    def _remember(self, listing: Listing, window: listing_rules.Window) -> None:
        """Arrivals, validators, the wide listing's time."""
        state = self.state
        satellite_of = {q.name: q.satellite for q in self.queues}
        for result in self.results:
            if result.wanted:
                state.arrivals[satellite_of[result.queue]] = self.now
        clean = all(r.status == "ok" and not r.local_failures for r in self.results)
        for url, validator in listing.validators.items():
            if clean and validator is not None:
                state.validators[url] = validator.to_json()
            else:
                state.validators.pop(url, None)
        horizon = self.now - listing_rules.VALIDATOR_MAX_AGE
        state.validators = {u: v for u, v in state.validators.items() if v["stored"] > horizon}
        retries = [r.retry_due for r in self.results if r.retry_due]
        if state.retry_due and state.retry_due > self.now:
            retries.append(state.retry_due)
        state.retry_due = min(retries, default=None)
        if window.kind == "wide":
            state.last_wide = self.now
        if self.collector_started is not None:
            state.collector_started = self.collector_started

    # -- outages ----------------------------------------------------------------------------

    def _failed_listing(self, error: str, why: str) -> int:
        """One line per failed poll (an ERROR, mailed, at the start and per mail interval)."""
        interval = self.settings.mail_interval_minutes * 60.0
        outage, mail = failure_memory.outage_failed(
            failure_memory.load_outage(self.outage_path), error, self.now, interval
        )
        failure_memory.save_outage(outage, self.outage_path)
        retry = max(OUTAGE_RETRY, float(self.state.cadence.get("interval") or OUTAGE_RETRY))
        note = logs.mail_note(
            self.settings, PROGRAM, None if mail else self.settings.mail_interval_minutes
        )
        log.log(
            logging.ERROR if mail else logging.WARNING,
            "could not list GINA's products: %s; failing since %s; next try in %.0f s (%s)",
            error[:200],
            _stamp(outage.since),
            retry,
            note,
        )
        state = self.state
        state.last_ok, state.last_poll, state.next_poll_at = False, self.now, self.now + retry
        if self.collector_started is not None:
            state.collector_started = self.collector_started
        self.results = [QueueResult(q.name, "failed", error=error) for q in self.queues]
        self._save(Listing(), why)
        return 1

    def _report_recovery(self) -> None:
        outage = failure_memory.load_outage(self.outage_path)
        if outage is not None:
            log.info(
                "GINA answers again after %.0f minutes of failures",
                (self.now - outage.since) / 60,
            )
            failure_memory.save_outage(None, self.outage_path)

    # -- what it says -----------------------------------------------------------------------

    def _log_poll(self, why: str, listing: Listing, due: float) -> None:
        wanted = sum(r.wanted for r in self.results)
        failed = sum(r.failed for r in self.results)
        fetched = sum(r.fetched for r in self.results)
        mb = sum(r.bytes for r in self.results) / MB
        # An operator's run (--now) always says what it did; cron's idle polls say nothing.
        level = logging.INFO if (wanted or failed or self.reason == "operator") else logging.DEBUG
        if listing.fallback:
            why += "; one request per satellite"
        log.log(
            level,
            "poll (%s): %s, %.1f kB listed, %d entries; wanted %d, fetched %d (%.1f MB), "
            "failed %d in %.1f s; next in %.0f s",
            why,
            listing.statuses() or "-",
            listing.wire_bytes / 1000,
            listing.entries,
            wanted,
            fetched,
            mb,
            failed,
            time.monotonic() - self.began,
            max(0.0, due - self.now),
        )

    def _log_cadence(self, current: cadence_rules.Cadence, passes: list[Pass]) -> None:
        before = self.state.cadence
        if before and before.get("fast") == current.fast:
            return
        if current.fast:
            log.info(
                "polling every %.0f s: %s, until %s at least",
                current.interval,
                current.reason,
                _stamp(current.until),
            )
            return
        upcoming = [
            f"{s} {_stamp(p.rise)}"
            for s in self.satellites
            if (p := cadence_rules.next_pass(passes, s, self.now)) is not None
        ]
        log.info(
            "polling every %.0f s: quiet; next passes: %s",
            current.interval,
            ", ".join(upcoming) or "none predicted",
        )

    def _digest(self, listing: Listing, current: cadence_rules.Cadence) -> None:
        """Count this poll; once an hour one INFO line sums the polls up."""
        digest = self.state.digest or {"since": self.now}
        digest["polls"] = digest.get("polls", 0) + 1
        digest["requests"] = digest.get("requests", 0) + len(listing.requests)
        digest["not_modified"] = digest.get("not_modified", 0) + sum(
            r["status"] == 304 for r in listing.requests
        )
        digest["bytes"] = digest.get("bytes", 0) + listing.wire_bytes
        digest["fetched"] = digest.get("fetched", 0) + sum(r.fetched for r in self.results)
        if self.now - digest["since"] >= DIGEST_SECONDS:
            log.info(
                "last %.0f min: %d polls, %d requests (%d answered 304), %.0f kB of listings, "
                "%d files fetched; polling every %.0f s (%s)",
                (self.now - digest["since"]) / 60,
                digest["polls"],
                digest["requests"],
                digest["not_modified"],
                digest["bytes"] / 1000,
                digest["fetched"],
                current.interval,
                current.reason,
            )
            digest = {"since": self.now}
        self.state.digest = digest

    def _save(self, listing: Listing, why: str) -> None:
        """The state for the next run, and the run's summary for ``viirscollector status``."""
        seconds = time.monotonic() - self.began
        try:
            poll_state.save(self.state, self.settings.state_dir)
        except OSError as error:
            log.error("could not record the poll state in %s: %s", self.settings.state_dir, error)
        total = {
            key: sum(getattr(r, key) for r in self.results)
            for key in ("found", "wanted", "fetched", "failed", "bytes")
        }
        summary = {
            "finished": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "seconds": round(seconds, 3),
            **total,
            "why": why,
            "listing": listing.requests,
            "next_poll_at": self.state.next_poll_at,
            "queues": [asdict(r) for r in self.results],
        }
        try:
            failure_memory.write_atomically(
                self.settings.state_dir / LAST_RUN_FILE, json.dumps(summary, indent=1)
            )
        except OSError as error:
            log.warning(
                "could not record the run summary in %s: %s", self.settings.state_dir, error
            )
