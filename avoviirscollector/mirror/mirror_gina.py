"""mirror_gina: fetch every new VIIRS SDR file from GINA into sdr/, never a bad one.

cron starts it every few seconds. Most starts find no poll due and end at once,
silently, without asking GINA: the decision (:mod:`poll_state`) reads one small
JSON file and the time of supervisord's pidfile, before pycurl, h5py or pyorbital
are imported, so such a start costs little more than Python's own start-up. A
start with a poll due sends its one listing request first (:class:`listing.Asking`)
and loads the fetching side while GINA answers; :class:`mirror_run.Poll` then
runs the fetches and sets the time of the next poll (fast around the satellites'
predicted passes over the antenna and while new files keep appearing, minutes
apart otherwise). ``--now`` polls whatever the schedule says (an operator's run).

Exit status: 0 when nothing was due, or the poll listed GINA's products and worked
through them (files that failed are logged, mailed and retried later after a
growing pause); 1 when the listing failed (GINA unreachable, HTTP error, an answer
that is not a JSON list) or a queue failed as a whole (e.g. a worker thread died);
2 for a bad environment variable or queue file.
"""

from __future__ import annotations

import atexit
import os
import sys
import time
from pathlib import Path
from typing import NoReturn

from avoviirscollector.mirror import poll_state

PROGRAM = "mirror_gina"
LAST_RUN_FILE = poll_state.LAST_RUN_FILE
#: Defaults of the transfer options (downloader.Options; not imported here: pycurl).
STALL_SECONDS, RETRY_PAUSE, DEADLINE_ALLOWANCE = 30, 1.0, 60.0


def _arguments(argv: list[str] | None):
    import argparse

    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description="Fetch new VIIRS SDR files from GINA into $VIIRS_BASE_DIR/sdr when a poll "
        "is due (cron starts it every few seconds).",
        epilog="Exit status: 0 nothing due, or the poll worked (failed files are mailed and "
        "retried later), 1 the listing or a queue failed, 2 bad configuration.",
    )
    parser.add_argument("--queues", type=Path, help="queue file (default: etc/gina_queues.yaml)")
    parser.add_argument(
        "--now",
        action="store_true",
        help="poll now, whatever the schedule, for the whole GINA_BACKFILL_DAYS window",
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help="poll now over the whole backfill window, without GINA's validators (after "
        "files left sdr/: verify-sdr's quarantine, or an operator's deletion)",
    )
    parser.add_argument(
        "--stall-seconds",
        type=int,
        default=STALL_SECONDS,
        help="give a transfer up after this many seconds below 1 kB/s (default %(default)s)",
    )
    parser.add_argument(
        "--retry-pause",
        type=float,
        default=RETRY_PAUSE,
        help="first pause before retrying a failed transfer, doubled each time "
        "(default %(default)s s)",
    )
    parser.add_argument(
        "--deadline-allowance",
        type=float,
        default=DEADLINE_ALLOWANCE,
        help="seconds a file gets on top of its size at GINA_FLOOR_RATE_KBPS before it is "
        "given up and retried later (default %(default)s)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mirror_gina`` console script and ``viirscollector mirror``.

    cron's start has no arguments: it decides from VIIRS_BASE_DIR's state first, with
    nothing imported but this module (settings are read and checked once a poll is due).
    """
    entered = time.time()  # the poll's time: before the imports, which take a while
    argv = sys.argv[1:] if argv is None else argv
    if not argv and _nothing_due(Path(os.environ.get("VIIRS_BASE_DIR") or "/viirs")):
        return 0  # nothing due: no line, no request
    import logging

    from avoviirscollector import logs
    from avoviirscollector import settings as settings_module

    log = logging.getLogger(PROGRAM)
    args = _arguments(argv)
    settings = settings_module.load_or_exit()
    started = poll_state.collector_started(settings.tmp_dir / "supervisord.pid")
    reason = "operator" if args.now else None
    if args.full:
        from avoviirscollector.mirror.poll_state import FULL_LISTING as reason
    if reason is None:
        reason = poll_state.due(poll_state.load(settings.state_dir), time.time(), started)
        if reason is None:
            return 0
    logs.setup(PROGRAM, settings)
    from avoviirscollector.mirror import listing, locks, queue_file
    from avoviirscollector.mirror.gina_catalog import QueueConfigError

    queue_file_path = args.queues or settings.config_dir / "etc" / "gina_queues.yaml"
    try:
        queues = queue_file.load_queues(queue_file_path)
    except QueueConfigError as error:
        log.error("cannot use the queue file: %s", error)
        return 2
    for directory in (settings.sdr_dir, settings.tmp_dir, settings.state_dir):
        directory.mkdir(parents=True, exist_ok=True)
    disabled = [q.name for q in queues if not q.enabled]
    if disabled:
        log.debug("disabled in %s: %s", queue_file_path, ", ".join(disabled))
    lock_path = settings.tmp_dir / f"{PROGRAM}-poll.lock"
    with locks.PollLock(lock_path) as lock:
        if not lock.acquired:
            log.info("skipped: another mirror_gina is polling (%s is locked)", lock_path)
            return 0
        asking = listing.Asking.start(settings, queues, reason, entered)
        # Loaded while GINA answers: the engine, the placer, the rules of the cadence.
        from avoviirscollector.mirror import mirror_run

        options = mirror_run.Options(
            connections=settings.gina_connections,
            low_speed_time=args.stall_seconds,
            backoff_base=args.retry_pause,
            floor_rate=settings.poll.floor_rate_kbps * 1000.0,
            deadline_allowance=args.deadline_allowance,
        )
        return mirror_run.Poll(settings, queues, options, reason, started, entered, asking).run()


def leave(status: int) -> NoReturn:
    """End the process now, once everything an exit must do is done.

    A poll that checked files has h5py (and numpy) loaded, and the interpreter's
    teardown of them costs about 0.1 s at every such exit (measured in
    docs/benchmarks.md), time in which the next poll cannot start. By now every file
    is closed and fsync'd and every thread joined; what remains is what ``atexit``
    holds (logging's flush and close, the last batch of error mail), run here first.
    """
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)


def _nothing_due(base_dir: Path) -> bool:
    """True when the state says no poll is due (the cheap path of every cron start)."""
    started = poll_state.collector_started(base_dir / "tmp" / "supervisord.pid")
    return poll_state.due(poll_state.load(base_dir / "state"), time.time(), started) is None


def __getattr__(name: str):
    """``list_products`` and ``QueueLock`` (verify-sdr uses them): fetched on first use so
    a run with nothing due never imports pycurl (mirror_run) or even the locks."""
    if name == "QueueLock":
        from avoviirscollector.mirror.locks import QueueLock

        return QueueLock
    if name in ("list_products", "QueueRun", "Placer"):
        from avoviirscollector.mirror import mirror_run

        return getattr(mirror_run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    sys.exit(main())
