"""The collector's trollstalker: one file message per SDR file that lands in sdr/.

It runs pytroll_collectors.trollstalker's own EventProcessor and WatchdogHandler,
configured from etc/trollstalker.ini, and closes the holes found in them:

- an exception while handling one event (e.g. KeyError for a platform without an
  alias) killed the watchdog thread while the process kept running, publishing
  nothing more and never restarted: here it is logged as an error and the next
  file is handled; if the watcher thread dies anyway, the process exits so that
  supervisord restarts it;
- a file moved *out* of sdr/ produced a message for a path that no longer exists,
  and dot-files matching the pattern were published: both are skipped;
- files that landed while trollstalker was down were never published: at start,
  the files of the last minutes are published again (duplicates are harmless).

Discovery is the nameserver on localhost, like every program (see bus.py).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
import time
from collections import OrderedDict
from configparser import Error as ConfigParserError
from configparser import RawConfigParser
from dataclasses import dataclass
from pathlib import Path

from avoviirscollector import (
    bus,  # first: sets posttroll's message version before posttroll is imported
)

# isort: split
from pytroll_collectors import helper_functions, trollstalker

from avoviirscollector import last_seen, liveness, logs
from avoviirscollector import settings as settings_module
from avoviirscollector.filenames import FilenameError
from avoviirscollector.pipeline.file_messages import file_message_data
from avoviirscollector.pipeline.recent_files import (
    WATERMARK_NAME,
    Baseline,
    arrival_time,
    content_problem,
    load_baseline,
    report_beyond_limit,
    scan,
    utc,
)

log = logging.getLogger("trollstalker")

SECTION = "viirs"
#: How often the main thread checks that the watcher is alive.
WATCH_INTERVAL = 1.0


class ConfigError(Exception):
    """etc/trollstalker.ini is missing, or lacks the section or an option."""


@dataclass(frozen=True)
class Options:
    """What etc/trollstalker.ini says."""

    processor: dict
    catchup_minutes: float
    catchup_delay: float


def read_options(path: str | os.PathLike, section: str = SECTION) -> Options:
    """Read the ini the way trollstalker does; discovery is always the local nameserver."""
    config = RawConfigParser()
    try:
        if not config.read(path):
            raise ConfigError(f"{path}: cannot read the trollstalker configuration")
        if not config.has_section(section):
            raise ConfigError(f"{path}: no section [{section}]")
        items = OrderedDict(config.items(section))
        processor = dict(
            topic=items["topic"],
            instrument=items.get("instruments", "viirs"),
            config_item=section,
            posttroll_port=int(items.get("posttroll_port", 0)),
            filepattern=items["filepattern"],
            aliases=helper_functions.parse_aliases(items),
            tbus_orbit=False,
            history_length=int(items.get("history", 0)),
            granule_length=0,
            custom_vars=trollstalker.parse_vars(items),
            nameservers=[bus.NAMESERVER_HOST],
        )
        return Options(
            processor=processor,
            catchup_minutes=float(items.get("catchup_minutes", 10)),
            catchup_delay=float(items.get("catchup_delay", 3)),
        )
    except KeyError as error:
        raise ConfigError(f"{path} [{section}]: option {error} is missing") from None
    except (ValueError, ConfigParserError) as error:
        raise ConfigError(f"{path} [{section}]: {error}") from None


def event_path(event) -> str:
    """The path an event is about: the destination of a move, else the source."""
    return getattr(event, "dest_path", "") or event.src_path


class Watermark:
    """The arrival time (ctime) of the newest file published, kept in state/ across restarts.

    The catch-up at start then publishes only what arrived after it (less a small
    margin), so a restart does not repeat ten minutes of messages. Arrival is the
    ctime, never the mtime: one file with an mtime a day ahead (a clock jump, ``cp -p``
    from a host with a wrong clock) would otherwise hide every file that lands later.
    """

    #: Seconds before the watermark still caught up: a kill -9 may lose the last write.
    MARGIN = 2.0

    def __init__(self, path: str | os.PathLike | None):
        self.path = Path(path) if path else None
        self.saved = self._read()
        self.newest = self.saved

    def _read(self) -> float | None:
        try:
            return float(self.path.read_text()) if self.path else None
        except (OSError, ValueError):
            return None

    def advance(self, arrived: float) -> None:
        """Note a file that arrived at ``arrived`` as published (never ahead of the clock)."""
        arrived = min(arrived, time.time())
        self.newest = arrived if self.newest is None else max(self.newest, arrived)

    def published(self, path: str | os.PathLike) -> None:
        """Note that ``path`` was published."""
        try:
            self.advance(arrival_time(os.stat(path)))
        except OSError:
            return

    def save(self) -> None:
        """Store the newest arrival time when it moved (atomically; cheap to call often)."""
        if self.path is None or self.newest is None or self.newest == self.saved:
            return
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        try:
            temporary.write_text(repr(self.newest))
            os.replace(temporary, self.path)
            self.saved = self.newest
        except OSError as error:
            log.warning("could not record the watermark in %s: %s", self.path, error)

    def catch_up_after(self) -> float | None:
        """Files that arrived after this were possibly never published."""
        return None if self.saved is None else self.saved - self.MARGIN


@dataclass(frozen=True)
class CatchUpPlan:
    """What a catch-up publishes, and what it tells the log."""

    after: float
    since: str
    baseline: Baseline | None
    #: no watermark of ours (a first start, or state lost): say what was taken as processed
    report_taken: bool


class Stalker(trollstalker.EventProcessor):
    """trollstalker's EventProcessor that refuses what must not be published."""

    def __init__(
        self,
        sdr_dir: str | os.PathLike,
        watermark: str | os.PathLike | None = None,
        *,
        state_dir: str | os.PathLike | None = None,
        limit_days: float = 2.0,
        **processor_options,
    ):
        super().__init__(**processor_options)
        self.sdr_dir = os.path.realpath(sdr_dir)
        self.watermark = Watermark(watermark)
        self.state_dir = Path(state_dir) if state_dir else None
        self.limit_days = limit_days
        # A first start's baseline dates from the start (or the watermark, if we had one):
        # what lands after it is published live, however quickly we are stopped again.
        saved = self.watermark.saved
        self.started = time.time() if saved is None else min(time.time(), saved)

    def refusal(self, path: str) -> str | None:
        """Why ``path`` must not be published, or None when it may be."""
        if not path:
            return "a move out of sdr/"
        if os.path.basename(path).startswith("."):
            return "a hidden file"
        if os.path.dirname(os.path.realpath(path)) != self.sdr_dir:
            return "not in sdr/"
        if not os.path.isfile(path):
            return "no longer there"
        return None

    def process(self, event):
        """Publish one event's file, never letting an exception reach watchdog's thread."""
        path = event_path(event)
        try:
            reason = self.refusal(path)
            if reason:
                log.debug("not publishing %s: %s", path or event.src_path, reason)
                return
            if self._bad_content(path):
                return
            super().process(event)
            self.watermark.published(path)
            log.info("published %s", os.path.basename(path))
        except Exception as error:  # the watcher thread must survive any one file
            log.error(
                "%s was not published: %s: %s; the next files are handled as usual "
                "(fix etc/trollstalker.ini if needed, then 'viirscollector reprocess')",
                path,
                type(error).__name__,
                error,
            )

    def _bad_content(self, path: str | os.PathLike, size: int | None = None) -> bool:
        """True (and one warning) for a file that cannot be an SDR file: empty, not HDF5."""
        problem = content_problem(path, size)
        if problem is None:
            return False
        log.warning(
            "not publishing %s: %s; the mirror places only verified files, so it was put "
            "there by hand (replace it with the real file to have it published)",
            os.path.basename(path),
            problem,
        )
        return True

    def create_message(self, info):
        """A file message in the wire version our clients read."""
        return bus.message(self.topic, "file", dict(info))

    def publish_path(self, path: str | os.PathLike, size: int | None = None) -> bool:
        """Publish a file found on disk (catch-up) with the same fields as an event."""
        try:
            data = file_message_data(path)
        except FilenameError as error:
            log.debug("not publishing %s: %s", path, error)
            return False
        if self._bad_content(path, size):
            return False
        self.pub.send(str(bus.message(self.topic, "file", data)))
        self.watermark.published(path)
        log.debug("caught up %s", data["uid"])
        return True

    def _plan(self, window: float, now: float) -> CatchUpPlan:
        """Where the catch-up starts: the watermark, else the first start's window."""
        baseline = None
        if self.state_dir is not None:
            baseline, _ = load_baseline(self.state_dir, window, self.started)
        after = self.watermark.catch_up_after()
        if after is not None:
            since = f"since {utc(after)} (the newest file published before trollstalker stopped)"
            return CatchUpPlan(after, since, baseline, False)
        if baseline is not None and baseline.created < now - 60:
            since = f"since {utc(baseline.cutoff)} (no watermark in state/: since the first start)"
            return CatchUpPlan(baseline.cutoff, since, baseline, True)
        start = now - window if baseline is None else baseline.cutoff
        since = f"in the last {window / 60:g} minutes" + (" (first start)" if baseline else "")
        return CatchUpPlan(start, since, baseline, baseline is not None)

    def catch_up(self, minutes: float) -> int:
        """Publish what arrived in sdr/ after the watermark (or, at the first start, in
        the last ``minutes``), never further back than the replay limit.

        Files published live since the start are published again on purpose: a gatherer
        may not have been connected yet when they were (posttroll's slow joiner);
        msg_publisher keeps the repeats off 29092 and the broker deduplicates granules.
        """
        now = time.time()
        window = minutes * 60
        plan = self._plan(window, now)
        files = scan(self.sdr_dir)
        baseline = plan.baseline
        if baseline is not None:
            files = [f for f in files if not baseline.taken(f)]
        after = plan.after
        limit = now - last_seen.replay_limit(self.limit_days, window, None)
        if after < limit:
            report_beyond_limit(log, "trollstalker", files, after, limit)
            after = limit
        count = sum(self.publish_path(f.path, f.size) for f in files if f.arrived >= after)
        log.info("catch-up: published %d file(s) that reached sdr/ %s", count, plan.since)
        if plan.report_taken:
            self.watermark.advance(baseline.created)
            self.watermark.save()
            taken = sum(1 for f in scan(self.sdr_dir) if baseline.taken(f))
            if taken == 0:
                log.info("first start: no older file in sdr/ to take as processed")
                return count
            log.info(
                "%s: took %d file(s) already in sdr/ as processed; to queue them: "
                "viirscollector reprocess --until %s",
                "first start" if baseline.created >= now - 60 else "no watermark in state/",
                taken,
                utc(baseline.cutoff),
            )
        return count


class Handler(trollstalker.WatchdogHandler):
    """trollstalker's handler without its debugging print on every closed file."""

    def on_closed(self, event):
        """A file written in place in sdr/ was closed."""
        self.processor.process(event)


def watch(stalker: Stalker):
    """Start a watchdog observer on sdr/ (full move events, as trollstalker does)."""
    from watchdog.observers import Observer

    observer = Observer(generate_full_events=True)
    observer.schedule(Handler(stalker), stalker.sdr_dir, recursive=False)
    observer.start()
    return observer


def _catch_up_later(stalker: Stalker, options: Options, stop: threading.Event):
    """Let subscribers connect to the new publisher, then catch up."""
    if options.catchup_minutes <= 0 or stop.wait(options.catchup_delay):
        return
    try:
        stalker.catch_up(options.catchup_minutes)
    except Exception:
        log.exception(
            "catch-up failed; files that landed while trollstalker was down "
            "may need 'viirscollector reprocess'"
        )


def serve(stalker: Stalker, options: Options, stop: threading.Event) -> int:
    """Watch sdr/ until ``stop`` is set; 1 if the watcher died (supervisord restarts us)."""
    observer = watch(stalker)
    log.info("watching %s, publishing on %s", stalker.sdr_dir, stalker.topic)
    threading.Thread(
        target=_catch_up_later, args=(stalker, options, stop), name="catch-up", daemon=True
    ).start()
    status = 0
    try:
        while not stop.wait(WATCH_INTERVAL):
            stalker.watermark.save()
            if not observer.is_alive() or not all(e.is_alive() for e in observer.emitters):
                log.critical(
                    "the watcher of %s died; exiting so that supervisord restarts trollstalker",
                    stalker.sdr_dir,
                )
                status = 1
                break
    finally:
        stop.set()
        observer.stop()
        observer.join(timeout=5)
        stalker.watermark.save()
        stalker.stop()
    return status


def main(argv: list[str] | None = None) -> int:
    """Run the collector's trollstalker until SIGTERM/SIGINT."""
    settings = settings_module.load_or_exit()
    parser = argparse.ArgumentParser(
        prog="viirscollector stalker",
        description="Publish a message for every SDR file that lands in $VIIRS_BASE_DIR/sdr.",
    )
    parser.add_argument(
        "--config",
        default=str(settings.config_dir / "etc" / "trollstalker.ini"),
        help="trollstalker configuration (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    logs.setup("trollstalker", settings, daemon=True)
    liveness.start(settings.base_dir, "trollstalker")
    try:
        options = read_options(args.config)
    except ConfigError as error:
        log.error("%s", error)
        return 2
    Path(settings.sdr_dir).mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    watermark = settings.state_dir / WATERMARK_NAME
    # Our own short line per file instead of trollstalker's whole message.
    logging.getLogger("pytroll_collectors.trollstalker").setLevel(logging.WARNING)
    stalker = Stalker(
        settings.sdr_dir,
        watermark,
        state_dir=settings.state_dir,
        limit_days=settings.backfill_days,
        **options.processor,
    )
    return serve(stalker, options, stop)
