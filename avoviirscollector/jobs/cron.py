"""``viirscollector cron CRONTAB``: run the crontab with supercronic, or with a small runner.

The container ships supercronic, and this command simply becomes it. supercronic
cannot be installed from the package registries our development and CI machines
reach, so where it is missing the same crontab runs here instead of leaving a FATAL
supervisord program behind. The runner keeps the supercronic semantics that matter
to the collector:

- the crontab is read with supercronic's rules (:mod:`avoviirscollector.jobs.crontab_rules`);
- a job never overlaps itself: a run that outlasts its next slot makes the runner
  skip to the first slot after it ends, with a warning (supercronic does the same);
- jobs inherit the environment (plus the crontab's ``NAME=value`` lines) and run
  with ``SHELL -c COMMAND`` in their own process group;
- a job's output goes straight to our stdout/stderr, i.e. the program's log;
- SIGTERM or SIGINT: start nothing more, wait for running jobs, exit 0;
- like ``supercronic -quiet`` (which the container runs), a job's start and success
  are DEBUG lines: the mirror's job starts every few seconds and its runs log what
  they did themselves; failures stay warnings and errors.

Schedules are evaluated in UTC, which is what supercronic does in the container
(no ``TZ`` is set there).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from avoviirscollector.jobs import crontab_rules

log = logging.getLogger("cron")

#: Exit statuses that mean the command itself is broken, not that the job failed.
_BROKEN_COMMAND = {126: "is not executable", 127: "was not found"}


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class JobRunner(threading.Thread):
    """Runs one job at its times, never two runs at once."""

    def __init__(self, job: crontab_rules.Job, tab: crontab_rules.Crontab, stop: threading.Event):
        super().__init__(name=f"job-line-{job.line_number}", daemon=True)
        self.job, self.tab, self.stop = job, tab, stop
        self.runs = 0

    def run(self) -> None:
        """Wait for each slot, run, repeat until stopped."""
        due = self.job.next_run(_utcnow())
        while True:
            delay = (due - _utcnow()).total_seconds()
            if delay < 0:
                frequent = (self.job.next_run(due) - due).total_seconds() < 60
                log.log(
                    logging.DEBUG if frequent else logging.WARNING,
                    "job %r (line %d) ran past its slot %s; next run at the first slot after now",
                    self.job.command,
                    self.job.line_number,
                    due.isoformat(),
                )
                due = self.job.next_run(_utcnow())
                continue
            if self.stop.wait(delay):
                return
            self._run_once()
            due = self.job.next_run(due)

    def _run_once(self) -> None:
        self.runs += 1
        env = {**os.environ, **self.tab.environment}
        started = time.monotonic()
        log.debug("job %r (line %d) starting", self.job.command, self.job.line_number)
        try:
            status = subprocess.call(
                [self.tab.shell, "-c", self.job.command], env=env, start_new_session=True
            )
        except OSError as error:
            log.error("job %r could not start: %s", self.job.command, error)
            return
        seconds = time.monotonic() - started
        if status == 0:
            log.debug("job %r succeeded in %.1f s", self.job.command, seconds)
        elif status in _BROKEN_COMMAND or status < 0:
            what = _BROKEN_COMMAND.get(status, f"was killed by signal {-status}")
            log.error("job %r %s (status %d)", self.job.command, what, status)
        else:
            # The job logs (and mails) its own errors; this line is for the timeline.
            log.warning("job %r failed with status %d in %.1f s", self.job.command, status, seconds)


def run_crontab(tab: crontab_rules.Crontab, stop: threading.Event) -> list[JobRunner]:
    """Start one thread per job; they end when ``stop`` is set and their job is done."""
    runners = [JobRunner(job, tab, stop) for job in tab.jobs]
    for runner in runners:
        runner.start()
    return runners


def _serve(tab: crontab_rules.Crontab, path: Path) -> int:
    stop = threading.Event()

    def on_signal(number, _frame):
        log.info(
            "received %s: starting no more jobs, waiting for running ones",
            signal.Signals(number).name,
        )
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    runners = run_crontab(tab, stop)
    log.info("running %d job(s) from %s, times in UTC", len(runners), path)
    while not stop.wait(1.0):
        pass
    for runner in runners:
        runner.join()
    log.info("all jobs finished; exiting")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Exec supercronic when installed, else run the crontab here."""
    parser = argparse.ArgumentParser(
        prog="viirscollector cron", description=__doc__.split("\n")[0].replace("``", "")
    )
    parser.add_argument("crontab", type=Path, help="the crontab file (supercronic syntax)")
    parser.add_argument(
        "--no-supercronic",
        action="store_true",
        help="use the built-in runner even if supercronic is installed",
    )
    args = parser.parse_args(argv)
    try:
        text = args.crontab.read_text()
        tab = crontab_rules.parse(text)
    except (OSError, crontab_rules.CrontabError) as error:
        print(f"viirscollector cron: {args.crontab}: {error}", file=sys.stderr)
        return 2
    supercronic = None if args.no_supercronic else shutil.which("supercronic")
    if supercronic:
        sys.stdout.flush()
        os.execv(supercronic, [supercronic, "-quiet", "-passthrough-logs", str(args.crontab)])
    from avoviirscollector import logs, settings

    logs.setup("cron", settings.load_or_exit(), daemon=True)
    log.info("supercronic is not installed: running %s with the built-in runner", args.crontab)
    return _serve(tab, args.crontab)
