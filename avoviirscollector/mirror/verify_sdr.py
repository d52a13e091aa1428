"""``viirscollector verify-sdr``: check the files of sdr/ the mirror did not place itself.

The original collector placed files with a plain copy; one interrupted by a restart
left a truncated file under the final name, which our mirror would never fetch again
(the name exists). So, once, every file found in sdr/ is checked as the mirror checks
a download: GINA's MD5 (from products.json, any facility, over the days the files
cover) and an HDF5 open. A file GINA no longer lists gets the HDF5 check only. A file
that fails is moved to ``quarantine/`` (never deleted, see :mod:`adoption`); its name
is gone from sdr/, so the mirror fetches it again when it is inside GINA_BACKFILL_DAYS:
at the end of the run verify-sdr asks for that poll (``mirror_gina --full``) instead of
waiting for the mirror's schedule.

When it runs: the crontab runs ``verify-sdr --scheduled`` every minute. That does
nothing (reads one small file) unless a verification is due: none was ever recorded
in state/ (the first start on a volume, or state/ lost), or one is unfinished. So the
first start begins within a minute, in the background of a pipeline that is already
running, under the cron runner's rules (never two runs at once, output in
supercronic.log, stopped with the collector). ``viirscollector verify-sdr`` on demand
continues an unfinished verification or begins a new one over every file in sdr/.

Bounded: reading is paced to VIIRS_VERIFY_RATE_MB (``--rate``) and a run stops after
VIIRS_VERIFY_MINUTES (``--minutes``), on SIGTERM, or when the scheduler that started
it is gone. Resumable: the plan (the files and their size, mtime and inode at the
start) and a journal line per checked file are kept in state/; the next run continues
with the first file not in the journal. A kill loses at most the file being read.

Exit status: 0 done or stopped with the progress saved (also when files were
quarantined: that is the job), 1 GINA could not be asked (nothing checked: without the
MD5s only half a check is possible) or another verify-sdr holds the lock (on demand),
2 bad configuration.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from avoviirscollector import settings as settings_module
from avoviirscollector.mirror import verify_sdr_rules as rules
from avoviirscollector.mirror.verify_sdr_rules import MB, Planned, Progress, Result

PROGRAM = "verify-sdr"
log = logging.getLogger(PROGRAM)
RECORD_NAME = "verify-sdr.json"
PLAN_NAME = "verify-sdr-plan.json"
JOURNAL_NAME = "verify-sdr-done.jsonl"
LOCK_NAME = "verify-sdr.lock"
#: Seconds between progress lines.
PROGRESS_SECONDS = 10.0
#: The finished record is touched this often, so the nightly retention never deletes it
#: (which would make the next run take the volume for a new one and check it all again).
TOUCH_SECONDS = 12 * 3600


class Stop(Exception):
    """The run must end now (time budget, SIGTERM, scheduler gone); progress is kept."""


@dataclass(frozen=True)
class Paths:
    """Where one installation keeps its verification."""

    record: Path
    plan: Path
    journal: Path
    lock: Path

    @classmethod
    def of(cls, settings: settings_module.Settings) -> Paths:
        """The files under state/."""
        state = settings.state_dir
        return cls(state / RECORD_NAME, state / PLAN_NAME, state / JOURNAL_NAME, state / LOCK_NAME)


def _utc(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _write_atomically(path: Path, text: str) -> None:
    from avoviirscollector.mirror.failure_memory import write_atomically

    write_atomically(path, text)


def load_record(path: Path) -> dict | None:
    """The verification record, or None when there is none (a first start)."""
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        log.warning("%s is unreadable (%s): starting a new verification", path, error)
        return None
    return record if isinstance(record, dict) else None


def snapshot(sdr_dir: Path) -> list[Planned]:
    """The SDR files in sdr/ now, newest granule first."""
    entries = []
    for entry in os.scandir(sdr_dir):
        try:
            info = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if entry.is_file(follow_symlinks=False):
            entries.append(Planned(entry.name, info.st_size, info.st_mtime_ns, info.st_ino))
    return rules.plan(entries)


def begin(settings: settings_module.Settings, paths: Paths, reason: str) -> list[Planned]:
    """Start a new verification of every SDR file in sdr/ now; its plan."""
    planned = snapshot(settings.sdr_dir)
    record = {
        "started": _utc(time.time()),
        "reason": reason,
        "files": len(planned),
        "bytes": sum(e.size for e in planned),
        "finished": None,
    }
    _write_atomically(paths.plan, rules.plan_to_json(planned))
    _write_atomically(paths.journal, "")
    _write_atomically(paths.record, json.dumps(record, indent=1))
    size = record["bytes"] / MB
    log.info(
        "verification begins (%s): %d file(s) of %s, %.1f MB, each checked against GINA's MD5 "
        "and for HDF5 (HDF5 only where GINA no longer lists it), newest first; at most %d MB/s "
        "and %d minute(s) per run, about %s in all at that rate",
        reason,
        len(planned),
        settings.sdr_dir,
        size,
        settings.verify_rate_mb,
        settings.verify_minutes,
        rules.duration(size / settings.verify_rate_mb),
    )
    return planned


def load_plan(settings: settings_module.Settings, paths: Paths) -> list[Planned]:
    """The plan of the unfinished verification, or a new one if it is lost."""
    try:
        return rules.plan_from_json(paths.plan.read_text())
    except (OSError, ValueError) as error:
        log.warning("the verification's plan is unusable (%s): beginning again", error)
        return begin(settings, paths, "plan lost")


class Pacer:
    """Called after each MB read: waits for the rate limit, raises Stop when the run ends."""

    def __init__(self, rate_mb: float, minutes: float, stop: threading.Event, parent: int | None):
        self.rate_mb, self.stop, self.parent = rate_mb, stop, parent
        self.started = time.monotonic()
        self.deadline = self.started + minutes * 60
        self.minutes = minutes
        self.bytes = 0

    def check(self) -> None:
        """Raise Stop when the run must end."""
        if self.stop.is_set():
            raise Stop("stopped by a signal")
        if time.monotonic() >= self.deadline:
            raise Stop(f"this run's {self.minutes:g} minute(s) are used")
        if self.parent is not None and os.getppid() != self.parent:
            raise Stop("the scheduler that started this run is gone")

    def after_read(self, count: int) -> None:
        """Account for ``count`` bytes read; sleep as long as the rate limit asks."""
        self.bytes += count
        self.check()
        wait = rules.pause(self.bytes, time.monotonic() - self.started, self.rate_mb)
        if wait > 0:
            self.stop.wait(min(wait, max(0.0, self.deadline - time.monotonic())))
            self.check()


def gina_md5s(settings: settings_module.Settings, pending: list[Planned]) -> dict[str, str]:
    """GINA's MD5 of every file it lists on the days of ``pending``, any facility.

    Uses the mirror's own query and parsing; raises OSError or CatalogError.
    """
    from avoviirscollector.mirror import mirror_gina
    from avoviirscollector.mirror.gina_catalog import Queue

    today = dt.datetime.now(dt.UTC).date()
    days = rules.query_days(pending, today, settings.backfill_days)
    md5s: dict[str, str] = {}
    for satellite in rules.satellites(pending):
        queue = Queue(f"verify-{satellite}", satellite, ("GMTCO",))
        products, problems = mirror_gina.list_products(
            queue, settings, backfill_days=days, facility="any"
        )
        for problem in problems:
            log.warning("skipped an entry of GINA's products.json: %s", problem)
        md5s.update((p.name, p.md5) for p in products)
    return md5s


def check(path: Path, entry: Planned, listed_md5: str | None, pacer: Pacer) -> tuple[Result, str]:
    """Check one file (MD5 when GINA lists it, then HDF5)."""
    from avoviirscollector import verify

    try:
        info = os.stat(path)
    except FileNotFoundError:
        return Result.GONE, "no longer in sdr/"
    if not rules.still_planned(entry, info.st_size, info.st_mtime_ns, info.st_ino):
        return Result.CHANGED, "another file under this name since the verification began"
    actual = None
    try:
        if listed_md5 is not None:
            actual = verify.md5sum(path, after_read=pacer.after_read)
            if actual != listed_md5:
                return rules.verdict(listed_md5, actual, None)
        try:
            verify.check_hdf5(path)
            problem = None
        except verify.VerifyError as error:
            problem = str(error)
    except PermissionError as error:
        return Result.UNREADABLE, f"cannot read it ({error.strerror}): left alone"
    return rules.verdict(listed_md5, actual, problem)


class Run:
    """One run of a verification: the files not yet in the journal, until done or stopped."""

    def __init__(self, settings, paths: Paths, planned: list[Planned], pacer: Pacer):
        self.settings, self.paths, self.pacer = settings, paths, pacer
        self.planned = planned
        try:
            done = rules.parse_done(paths.journal.read_text())
        except FileNotFoundError:
            done = {}
        self.pending = [e for e in planned if e.name not in done]
        sizes = {e.name: e.size for e in planned}
        self.progress = Progress(
            files_total=len(planned),
            bytes_total=sum(sizes.values()),
            files_done=len(planned) - len(self.pending),
            bytes_done=sum(sizes.get(name, 0) for name in done),
            quarantined=sum(result in rules.QUARANTINED for result in done.values()),
        )
        self.results: dict[Result, int] = {}
        self.refetch: list[str] = []  # quarantined files GINA lists: the mirror fetches them
        self.started = time.monotonic()

    def run(self, md5s: dict[str, str]) -> bool:
        """Check pending files; True when the verification is complete."""
        # Rate, ETA and pacing count from here: GINA's listing took its own time before.
        self.started = self.pacer.started = time.monotonic()
        listed = sum(e.name in md5s for e in self.pending)
        log.info(
            "checking %d file(s) (%s); GINA lists %d of them, %d not listed any more "
            "(HDF5 check only)",
            len(self.pending),
            "continuing the verification" if self.progress.files_done else "from the start",
            listed,
            len(self.pending) - listed,
        )
        last_line = time.monotonic()
        with open(self.paths.journal, "a") as journal:
            for entry in self.pending:
                try:
                    self.pacer.check()
                    self._one(entry, md5s.get(entry.name), journal)
                except Stop as stop:
                    self._stopped(str(stop))
                    return False
                if time.monotonic() - last_line >= PROGRESS_SECONDS:
                    last_line = time.monotonic()
                    log.info("progress: %s", rules.progress_line(self._update()))
        return True

    def _update(self) -> Progress:
        self.progress.run_seconds = time.monotonic() - self.started
        return self.progress

    def _one(self, entry: Planned, listed_md5: str | None, journal) -> None:
        path = self.settings.sdr_dir / entry.name
        result, detail = check(path, entry, listed_md5, self.pacer)
        if result in rules.QUARANTINED:
            detail = self._quarantine(path, entry, result, detail, listed_md5)
        elif result in (Result.UNREADABLE, Result.CHANGED):
            log.warning("%s: %s", entry.name, detail)
        journal.write(rules.done_line(entry.name, result, detail))
        journal.flush()
        os.fsync(journal.fileno())
        self.results[result] = self.results.get(result, 0) + 1
        self.progress.files_done += 1
        self.progress.bytes_done += entry.size
        self.progress.run_bytes += entry.size

    def _quarantine(self, path, entry, result, detail, listed_md5) -> str:
        from avoviirscollector.mirror.adoption import quarantine

        reason = {"result": result.value, "reason": detail, "gina_md5": listed_md5}
        target = quarantine(path, self.settings.quarantine_dir, reason)
        self.progress.quarantined += 1
        if listed_md5 is None:
            next_step = "GINA no longer lists it, so it is not fetched again"
        else:
            self.refetch.append(entry.name)
            next_step = (
                "the mirror fetches it again from GINA at the poll this run asks for at its "
                "end, if it is inside "
                f"GINA_BACKFILL_DAYS={self.settings.backfill_days} (else run "
                "`GINA_BACKFILL_DAYS=<days> mirror_gina` once)"
            )
        log.warning("quarantined %s: %s; moved to %s; %s", entry.name, detail, target, next_step)
        return f"{detail}; quarantined as {target.name}"

    def _stopped(self, reason: str) -> None:
        progress = self._update()
        log.info(
            "run stopped: %s; %s; the next run continues with the %d file(s) left",
            reason,
            rules.progress_line(progress),
            progress.files_total - progress.files_done,
        )


def finish(paths: Paths, run: Run) -> None:
    """Record the verification as finished, drop its plan and journal, log the summary."""
    journal = rules.parse_done(paths.journal.read_text())
    counts: dict[str, int] = {}
    for result in journal.values():
        counts[result.value] = counts.get(result.value, 0) + 1
    record = load_record(paths.record) or {}
    record.update(finished=_utc(time.time()), results=counts)
    _write_atomically(paths.record, json.dumps(record, indent=1))
    for path in (paths.plan, paths.journal):
        path.unlink(missing_ok=True)
    progress = run._update()
    log.info(
        "verification finished: %d file(s), %.1f MB checked since %s; results %s; "
        "this run %.1f MB in %.1f s (%.1f MB/s); quarantined files are in %s",
        progress.files_total,
        progress.bytes_total / MB,
        record.get("started", "?"),
        ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none",
        progress.run_bytes / MB,
        progress.run_seconds,
        progress.rate_mb,
        run.settings.quarantine_dir,
    )


def _keep_fresh(path: Path) -> None:
    """Touch the finished record now and then, so the retention never deletes it."""
    try:
        if time.time() - path.stat().st_mtime > TOUCH_SECONDS:
            os.utime(path)
    except OSError:
        pass


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=f"viirscollector {PROGRAM}",
        description="Check the files of sdr/ against GINA's MD5s and for HDF5; move bad ones "
        "to quarantine/ (the mirror fetches them again). Resumable, paced, time-boxed.",
        epilog="Exit status: 0 done or stopped with progress saved, 1 GINA not reachable or "
        "another verify-sdr running, 2 bad configuration.",
    )
    parser.add_argument(
        "--scheduled",
        action="store_true",
        help="what the crontab runs: only when a verification is due (none recorded yet: "
        "the first start; or one unfinished)",
    )
    parser.add_argument(
        "--restart", action="store_true", help="drop an unfinished verification and begin anew"
    )
    parser.add_argument("--rate", type=float, help="MB/s at most (default VIIRS_VERIFY_RATE_MB)")
    parser.add_argument(
        "--minutes", type=float, help="minutes this run may take (default VIIRS_VERIFY_MINUTES)"
    )
    return parser.parse_args(argv)


def _due(args, record: dict | None) -> str | None:
    """Why a verification begins now ('' to continue the unfinished one), or None."""
    unfinished = record is not None and not record.get("finished")
    if args.restart:
        return "on demand, from the start"
    if unfinished:
        return ""
    if record is None:
        return (
            "first start: no verification recorded in state/ (a volume taken over from the "
            "original collector, or state/ lost)"
        )
    return None if args.scheduled else "on demand"


def verify_sdr(settings: settings_module.Settings, args, stop: threading.Event) -> int:
    """Run (a part of) the verification under its lock; an exit status."""
    paths = Paths.of(settings)
    from avoviirscollector import logs
    from avoviirscollector.mirror.gina_catalog import CatalogError
    from avoviirscollector.mirror.mirror_gina import QueueLock

    settings.state_dir.mkdir(parents=True, exist_ok=True)
    with QueueLock(paths.lock) as lock:
        if not lock.acquired:
            if args.scheduled:
                return 0
            log.error("another verify-sdr is running (%s is locked); try later", paths.lock)
            return 1
        record = load_record(paths.record)
        reason = _due(args, record)
        if reason is None:
            _keep_fresh(paths.record)
            return 0
        planned = begin(settings, paths, reason) if reason else load_plan(settings, paths)
        rate = args.rate or settings.verify_rate_mb
        pacer = Pacer(rate, args.minutes or settings.verify_minutes, stop, _parent(args))
        run = Run(settings, paths, planned, pacer)
        try:
            md5s = gina_md5s(settings, run.pending) if run.pending else {}
        except (OSError, CatalogError) as error:
            log.warning(
                "could not ask GINA for the MD5s (%s); nothing checked, the next run tries again",
                logs.redact(str(error)),
            )
            return 1
        if run.run(md5s):
            finish(paths, run)
        if run.refetch:
            ask_mirror_to_poll(len(run.refetch))
    return 0


def ask_mirror_to_poll(count: int) -> None:
    """Run ``mirror_gina --full`` once, so quarantined files come back without waiting for
    the mirror's next scheduled poll (minutes away between passes) and its next listing
    without validators (GINA answers 304 to an unchanged listing, which would hide files
    that left sdr/). Its queue locks make this safe next to a scheduled poll."""
    import subprocess

    log.info("asking the mirror to poll now: %d quarantined file(s) GINA lists", count)
    command = [sys.executable, "-m", "avoviirscollector.cli", "mirror", "--full"]
    try:
        status = subprocess.run(command, timeout=900, check=False).returncode
    except (OSError, subprocess.TimeoutExpired) as error:
        log.warning(
            "the mirror's poll did not finish (%s); its next scheduled poll fetches them", error
        )
        return
    if status:
        log.warning("the mirror's poll ended with status %d (see its lines above)", status)


def _parent(args) -> int | None:
    return os.getppid() if args.scheduled else None


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``viirscollector verify-sdr``."""
    args = _arguments(argv)
    settings = settings_module.load_or_exit()
    record = Paths.of(settings).record
    if args.scheduled and _due(args, load_record(record)) is None:
        _keep_fresh(record)  # the every-minute no-op: no logging set up, no pycurl, no GINA
        return 0
    from avoviirscollector import logs

    logs.setup(PROGRAM, settings)
    stop = threading.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: stop.set())
    if not settings.sdr_dir.is_dir():
        if not args.scheduled:
            log.error("%s does not exist: nothing to verify", settings.sdr_dir)
            return 1
        return 0
    return verify_sdr(settings, args, stop)


if __name__ == "__main__":
    sys.exit(main())
