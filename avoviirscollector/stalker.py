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
from collections import OrderedDict
from configparser import Error as ConfigParserError
from configparser import RawConfigParser
from dataclasses import dataclass
from pathlib import Path

from . import bus  # first: sets posttroll's message version before posttroll is imported

# isort: split
from pytroll_collectors import helper_functions, trollstalker

from . import logs
from . import settings as settings_module
from .file_messages import file_message_data
from .filenames import FilenameError
from .recent_files import recent_files

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


class Stalker(trollstalker.EventProcessor):
    """trollstalker's EventProcessor that refuses what must not be published."""

    def __init__(self, sdr_dir: str | os.PathLike, **processor_options):
        super().__init__(**processor_options)
        self.sdr_dir = os.path.realpath(sdr_dir)

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
            super().process(event)
        except Exception as error:  # the watcher thread must survive any one file
            log.error(
                "%s was not published: %s: %s; the next files are handled as usual "
                "(fix etc/trollstalker.ini if needed, then 'viirscollector reprocess')",
                path,
                type(error).__name__,
                error,
            )

    def create_message(self, info):
        """A file message in the wire version our clients read."""
        return bus.message(self.topic, "file", dict(info))

    def publish_path(self, path: str | os.PathLike) -> bool:
        """Publish a file found on disk (catch-up) with the same fields as an event."""
        try:
            data = file_message_data(path)
        except FilenameError as error:
            log.debug("not publishing %s: %s", path, error)
            return False
        self.pub.send(str(bus.message(self.topic, "file", data)))
        return True

    def catch_up(self, minutes: float) -> int:
        """Publish the files that arrived in sdr/ in the last ``minutes``."""
        count = sum(self.publish_path(path) for path in recent_files(self.sdr_dir, minutes))
        log.info(
            "catch-up: published %d file(s) that reached %s in the last %g minutes",
            count,
            self.sdr_dir,
            minutes,
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
    try:
        options = read_options(args.config)
    except ConfigError as error:
        log.error("%s", error)
        return 2
    Path(settings.sdr_dir).mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stalker = Stalker(settings.sdr_dir, **options.processor)
    return serve(stalker, options, stop)
