"""The collector's segment_gatherer: one product's granules, from file messages.

``viirscollector gatherer viirs_tir`` runs pytroll_collectors' SegmentGatherer with
one section of etc/segment_gatherer.ini (supervisord runs one per product) and adds
what the collector needs from it:

- it stops at once on SIGTERM or SIGINT (today's gatherer, on SIGTERM, waits up to
  ``timeliness`` for open granules, so supervisord would have to kill it);
- at start it replays the files that reached sdr/ in the last ``replay_minutes``,
  so a granule that was half-collected when the gatherer died still completes (the
  task broker hands a re-published granule out only once). SIGUSR1 replays again
  (``supervisorctl signal USR1 segment_gatherer-viirs_tir``);
- a ``reprocess`` key in any file message of a granule is carried into the granule
  message: the broker's sign that a repeat is deliberate;
- a file message that only repeats a granule already published opens no granule
  (repeat_rules.py says which), and a granule holds the files of one satellite's
  orbit: segment_gatherer puts every file starting within ``time_tolerance`` (30 s)
  into one slot, whatever its platform or orbit.

Discovery is the nameserver on localhost, like every program (see bus.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import signal
import threading
import time
from configparser import Error as ConfigParserError
from configparser import RawConfigParser

from avoviirscollector import (
    bus,  # first: sets posttroll's message version before posttroll is imported
)

# isort: split
from pytroll_collectors.segments import SegmentGatherer, UIDParser, ini_to_dict
from pytroll_collectors.utils import ensure_utc_aware

from avoviirscollector import identity, last_seen, liveness, logs
from avoviirscollector import settings as settings_module
from avoviirscollector.filenames import FilenameError
from avoviirscollector.pipeline.file_messages import FILE_TOPIC, file_message_data
from avoviirscollector.pipeline.recent_files import (
    content_problem,
    granule_files,
    granule_key,
    load_baseline,
    report_beyond_limit,
    scan,
    utc,
)
from avoviirscollector.pipeline.repeat_rules import PublishedGranules

log = logging.getLogger("gatherer")

#: The data key that marks a deliberate reprocess (see the task broker).
REPROCESS_KEY = "reprocess"
DEFAULT_REPLAY_MINUTES = 10.0
#: Seconds between the start and the replay: subscribers (the task broker) must have
#: connected to the new publisher before a replayed granule is published.
REPLAY_DELAY = 3.0


class ConfigError(Exception):
    """etc/segment_gatherer.ini is missing, or lacks the section or an option."""


def load_config(path: str | os.PathLike, section: str) -> tuple[dict, float]:
    """SegmentGatherer's configuration for one section, and its replay window in minutes."""
    parser = RawConfigParser()
    try:
        if not parser.read(path):
            raise ConfigError(f"{path}: cannot read the segment_gatherer configuration")
        if not parser.has_section(section):
            known = ", ".join(parser.sections()) or "none"
            raise ConfigError(f"{path}: no section [{section}] (sections: {known})")
        replay_minutes = parser.getfloat(section, "replay_minutes", fallback=DEFAULT_REPLAY_MINUTES)
        config = ini_to_dict(path, section)
    except (ValueError, ConfigParserError) as error:
        raise ConfigError(f"{path} [{section}]: {error}") from None
    # One discovery mode for every program, whatever the file says.
    config["posttroll"]["nameservers"] = [bus.NAMESERVER_HOST]
    return config, replay_minutes


def segments_of(config: dict) -> frozenset[str]:
    """The segments a product needs, from its ``:GITCO,:SVI05`` file lists."""
    found = set()
    for pattern in config["patterns"].values():
        for key in ("critical_files", "wanted_files", "all_files"):
            for item in (pattern.get(key) or "").split(","):
                found.add(item.rpartition(":")[2].strip())
    found.discard("")
    return frozenset(found)


class GranuleParser(UIDParser):
    """The file-name parser, with the end time on the start time's day.

    The name holds only the end's time of day, so trollsift dates it 1900-01-01 and
    segment_gatherer then adds one day at a time until it passes the start: about
    46,000 steps, 40 ms, twice per file message. Dating it here makes that loop
    run at most once.
    """

    def parse(self, metadata):
        """Parse the file name (the message's uid)."""
        fields = super().parse(metadata)
        start, end = fields.get("start_time"), fields.get("end_time")
        if start is not None and end is not None:
            fields["end_time"] = dt.datetime.combine(start.date(), end.time())
            if fields["end_time"] < start:
                fields["end_time"] += dt.timedelta(days=1)
        return fields


class Gatherer(SegmentGatherer):
    """SegmentGatherer that stops at once, replays recent files and keeps ``reprocess``."""

    def __init__(
        self,
        config: dict,
        sdr_dir: str | os.PathLike,
        replay_minutes: float,
        replay_delay: float = REPLAY_DELAY,
        *,
        state_dir: str | os.PathLike | None = None,
        limit_days: float = 2.0,
    ):
        super().__init__(config)
        self.sdr_dir = sdr_dir
        self.replay_minutes = replay_minutes
        self.replay_delay = replay_delay
        self.state_dir = state_dir
        self.limit_days = limit_days
        self.product = config["posttroll"]["publish_topic"].rstrip("/").rpartition("/")[2]
        #: a first start's baseline dates from here: what lands later is gathered live
        self.started = time.time()
        self.segments = segments_of(config)
        self._stop_requested = False
        self._setting_up = False
        self.published = PublishedGranules()
        #: (platform_name, orbit_number) of the file being processed (see _find_time_slot)
        self._incoming: tuple | None = None

    def _create_patterns(self):
        patterns = super()._create_patterns()
        for name, pattern in patterns.items():
            if isinstance(pattern.parser, UIDParser):
                pattern.parser = GranuleParser(pattern._config, name)
        return patterns

    def _setup_signal_handling(self):
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self.request_stop)
        signal.signal(signal.SIGUSR1, self._replay_on_signal)

    def request_stop(self, signum=None, frame=None):
        """Stop now: open granules are rebuilt by the replay at the next start."""
        log.info("stopping on signal %s; open granules are replayed at the next start", signum)
        self._stop_requested = True
        self._loop = False
        if self._setting_up:  # possibly blocked in a nameserver lookup: leave now
            raise SystemExit(0)

    def _keep_running(self):
        return not self._stop_requested and super()._keep_running()

    def stop(self):
        """Leave at once, without posttroll's graceful listener stop.

        That stop sleeps a second and then joins a thread that polls once a second:
        about 2 s per gatherer, and supervisord stops its programs one after another.
        The listener thread is a daemon thread, so it ends with the process.
        """
        log.info("Stopping gatherer.")
        self._loop = False
        container = getattr(self, "_listener", None)
        if container is not None and getattr(container, "listener", None) is not None:
            container.listener.running = False
        if self._publisher is not None:
            self._publisher.stop()

    def _replay_on_signal(self, signum, frame):
        # Not in the handler itself: it may interrupt the main thread inside the queue's lock.
        threading.Thread(target=self.replay, name="replay", daemon=True).start()

    def _setup_listener(self):
        # The nameserver may start after us, or be slow to answer its first request.
        while not self._stop_requested:
            try:
                return super()._setup_listener()
            except TimeoutError as error:
                log.warning("nameserver on localhost not answering (%s); retrying in 1 s", error)
                time.sleep(1)

    def _setup_messaging(self):
        self._setting_up = True
        try:
            super()._setup_messaging()
        finally:
            self._setting_up = False
        timer = threading.Timer(self.replay_delay, self.replay)
        timer.daemon = True
        timer.start()

    def _replay_start(self, window: float, now: float):
        """(files of sdr/ not taken as processed, replay from, why, broker's record)."""
        baseline = record = None
        if self.state_dir is not None:
            record = last_seen.read(self.state_dir)
            made = self.started if record is None else min(self.started, record.created)
            baseline, _ = load_baseline(self.state_dir, window, made)
        files = scan(self.sdr_dir)
        if baseline is not None:
            files = [f for f in files if not baseline.taken(f)]
        if record is not None and self.product in record.held:
            why = f"what the broker had seen of {self.product}, less {last_seen.MARGIN:g} s"
            return files, record.replay_from(self.product, window), why, record
        if record is not None:
            why = f"the broker's first start, less {window / 60:g} minutes"
            return files, record.replay_from(self.product, window), why, record
        if baseline is not None:
            return files, baseline.cutoff, "the first start on this sdr/", record
        return files, now - window, f"the last {window / 60:g} minutes", record

    def _of_this_product(self, files: list) -> tuple[list, set]:
        """(the files of this product's segments, the granules that have all of them)."""
        mine = [f for f in files if f.path.name.partition("_")[0] in self.segments]
        found: dict[tuple, set] = {}
        for file in mine:
            found.setdefault(file.granule, set()).add(file.path.name.partition("_")[0])
        return mine, {granule for granule, got in found.items() if got >= self.segments}

    def replay(self) -> int:
        """Feed every granule of sdr/ the broker may not have had to the gatherer again.

        From what the broker recorded it had seen of this product (last_seen.py), so an
        outage of any length is covered, but never beyond the replay limit
        (GINA_BACKFILL_DAYS and the broker's memory; what lies beyond is an error
        naming the reprocess command). Whole granules, oldest arrival first.
        Thread-safe: the files go through the listener's queue like bus messages.
        """
        now = time.time()
        window = self.replay_minutes * 60
        files, after, why, record = self._replay_start(window, now)
        files, complete = self._of_this_product(files)
        limit = now - last_seen.replay_limit(self.limit_days, window, record)
        if after < limit:
            gone = [f for f in files if f.granule in complete]
            report_beyond_limit(log, f"{self.product} gatherer", gone, after, limit)
            after, why = limit, "the replay limit"
        # An incomplete granule only while it may still complete (its file may be coming).
        recent = now - window
        chosen = [
            f for f in granule_files(files, after) if f.granule in complete or f.arrived >= recent
        ]
        count, granules = 0, set()
        started = time.time()
        for file in chosen:
            try:
                data = file_message_data(file.path)
            except FilenameError:
                continue
            if content_problem(file.path, file.size):
                continue
            message = bus.message(FILE_TOPIC, "file", data)
            message.replayed = True
            message.replay_started = started
            self._listener.output_queue.put(message)
            count += 1
            granules.add(file.granule)
        log.info(
            "replay: %d file(s) of %d granule(s) that reached sdr/ since %s (%s)",
            count,
            len(granules),
            utc(after),
            why,
        )
        return count

    def process(self, msg):
        """Add a file to its granule; a ``reprocess`` key marks the whole granule.

        Files of other products are ignored here: segment_gatherer would open a
        granule for, say, an SVM15 arriving after a tir granule was published, and
        warn ten minutes later that required files were missing. So is a file that
        repeats a granule already published (repeat_rules.py).
        """
        if not identity.from_own_sdr(msg.data, self.sdr_dir):
            return  # another collector's file (shared posttroll ports)
        data = msg.data if isinstance(msg.data, dict) else {}
        segment, uid = data.get("segment"), data.get("uid")
        if segment is not None and self.segments and segment not in self.segments:
            log.debug("ignoring %s: not a file of this product", uid)
            return
        if self._repeats(msg, data):
            log.debug("ignoring %s: it repeats a %s granule published already", uid, self.product)
            return
        satellite = (data.get("platform_name"), data.get("orbit_number"))
        self._incoming = None if None in satellite else satellite
        try:
            super().process(msg)
            if REPROCESS_KEY in data:
                self._mark_reprocess(msg)
        finally:
            self._incoming = None
        level = logging.DEBUG if getattr(msg, "replayed", False) else logging.INFO
        log.log(level, "gathered %s into its %s granule", uid, self.product)

    def _repeats(self, msg, data: dict) -> bool:
        if REPROCESS_KEY in data or not isinstance(data.get("uid"), str):
            return False
        return self.published.repeats(
            granule_key(data["uid"]),
            data["uid"],
            time.time(),
            getattr(msg, "replay_started", None),
        )

    def _find_time_slot(self, time_obj):
        """The open slot of this file's granule: same start (within ``time_tolerance``),
        same satellite, same orbit. Upstream matches the start alone, so a granule of
        another satellite starting within 30 s would be gathered into this one's slot
        and neither would complete."""
        if self._incoming is None:
            return super()._find_time_slot(time_obj)
        for key, slot in self.slots.items():
            metadata = slot.output_metadata
            if (metadata.get("platform_name"), metadata.get("orbit_number")) != self._incoming:
                continue
            if abs((time_obj - metadata[self.time_name]).total_seconds()) < self._time_tolerance:
                return key
        return str(time_obj)

    def _publish(self, metadata):
        """Publish a granule, with one short line (segment_gatherer logs the whole message)."""
        super()._publish(metadata)
        names = [item.get("uid", "") for item in metadata.get("dataset", [])]
        key = granule_key(names[0]) if names else None
        if key is not None:
            self.published.published(key, names, time.time())
        stem = "_".join(key or ()) if names else "?"
        segments = ", ".join(name.partition("_")[0] for name in names)
        log.info("published the %s granule %s (%s)", self.product, stem, segments)

    def _mark_reprocess(self, msg):
        try:
            message = self.message_from_posttroll(msg)
        except TypeError:  # not a file of this product
            return
        slot = self.slots.get(self._find_time_slot(ensure_utc_aware(message.id_time)))
        if slot is not None:
            slot.output_metadata[REPROCESS_KEY] = msg.data[REPROCESS_KEY]


def main(argv: list[str] | None = None) -> int:
    """Run one section's gatherer until SIGTERM/SIGINT."""
    settings = settings_module.load_or_exit()
    parser = argparse.ArgumentParser(
        prog="viirscollector gatherer",
        description="Gather the files of one product into granule messages.",
    )
    parser.add_argument("section", help="section of the configuration, e.g. viirs_tir")
    parser.add_argument(
        "--config",
        default=str(settings.config_dir / "etc" / "segment_gatherer.ini"),
        help="segment_gatherer configuration (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    logs.setup(f"segment_gatherer-{args.section}", settings, daemon=True)
    liveness.start(settings.base_dir, f"segment_gatherer-{args.section}")
    try:
        config, replay_minutes = load_config(args.config, args.section)
    except ConfigError as error:
        log.error("%s", error)
        return 2
    # Our own short lines per file and granule instead of segment_gatherer's whole messages.
    logging.getLogger("segment_gatherer").setLevel(logging.WARNING)
    gatherer = Gatherer(
        config,
        settings.sdr_dir,
        replay_minutes,
        state_dir=settings.state_dir,
        limit_days=settings.backfill_days,
    )
    log.info("gathering %s into %s", args.section, config["posttroll"]["publish_topic"])
    try:
        gatherer.run()
    except Exception:
        log.exception("the %s gatherer failed; supervisord restarts it", args.section)
        gatherer.stop()
        return 1
    return 0
