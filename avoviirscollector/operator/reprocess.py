"""``viirscollector reprocess [PATTERN] [--dry-run]``: make files in sdr/ flow through again.

The original script moved the matching files out of ``sdr/`` and back so that
trollstalker would see them arrive again; it also announced files that had meanwhile
disappeared. Here the file messages are published again directly, on trollstalker's
topic, exactly as trollstalker builds them (:func:`file_messages.file_message_data`),
with one extra data key, ``"reprocess": "reprocess-<UTC ISO time>"``: the broker's contract for
a deliberate reprocess (a task handed out before is queued again, once).

- PATTERN selects file names containing it (``*PATTERN*``, globs allowed, as the
  original's ``ls *PATTERN*``); without it, every file of the newest orbit.
- ``--since`` / ``--until`` (UTC, e.g. 2026-12-01T08:50:00Z) select by the file's time in
  sdr/ (the older of its modification and change times): the commands the collector's
  own log lines name when it took files as processed (a first start on a full sdr/) or
  an outage outlasted the replay limit. With them and no PATTERN, every file in range.
- A message is built only for a file that exists at the moment it is sent.
- posttroll subscribers learn of a new publisher through the nameserver and connect
  a moment later (the "slow joiner"): the command waits ``--wait`` seconds (default
  3, more than posttroll's 2 s address-announcement interval) before sending, and
  half a second after, so nothing is dropped when the socket closes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import fnmatch
import logging
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from avoviirscollector.filenames import FilenameError, SdrName, parse

log = logging.getLogger("reprocess")

PUBLISHER_NAME = "reprocess"
SETTLE_SECONDS = 3.0
DRAIN_SECONDS = 0.5
MESSAGE_TYPE = "file"


def _parsed(names: Iterable[str]) -> list[SdrName]:
    result = []
    for name in names:
        try:
            result.append(parse(name))
        except FilenameError:
            log.warning("%s is not an SDR file name; skipped", name)
    return result


def describe_selection(args) -> str:
    """For log lines: which files were asked for."""
    parts = [f"matching {args.pattern!r}"] if args.pattern else []
    if args.since is not None:
        parts.append(f"since {dt.datetime.fromtimestamp(args.since, dt.UTC):%Y-%m-%dT%H:%M:%SZ}")
    if args.until is not None:
        parts.append(f"until {dt.datetime.fromtimestamp(args.until, dt.UTC):%Y-%m-%dT%H:%M:%SZ}")
    return " ".join(parts) or "of the newest orbit"


def select(names: Iterable[str], pattern: str | None, every: bool = False) -> list[SdrName]:
    """The SDR files to reprocess, geolocation first within each granule, oldest first.

    Without ``pattern``: every file when ``every``, else those of the newest orbit.
    """
    names = [n for n in names if not n.startswith(".")]
    if pattern or every:
        chosen = _parsed(n for n in names if fnmatch.fnmatchcase(n, f"*{pattern or ''}*"))
    else:
        every = _parsed(names)
        if not every:
            return []
        newest = max(every, key=lambda s: s.start)
        chosen = [s for s in every if (s.platform, s.orbit) == (newest.platform, newest.orbit)]
    return sorted(chosen, key=lambda s: (s.start, not s.is_geolocation, s.segment, s.name))


def parse_utc(text: str) -> float:
    """``2026-12-01T08:50:00Z`` (or without the Z, or a date alone) as epoch seconds, UTC."""
    try:
        moment = dt.datetime.fromisoformat(text.removesuffix("Z"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a UTC time like 2026-12-01T08:50:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def in_time_range(
    sdr_dir: Path, names: Iterable[str], since: float | None, until: float | None
) -> list[str]:
    """The names whose file time (the older of mtime and ctime) is in [since, until)."""
    from avoviirscollector.pipeline.recent_files import file_time

    chosen = []
    for name in names:
        try:
            moment = file_time(os.stat(sdr_dir / name))
        except OSError:
            continue
        if (since is None or moment >= since) and (until is None or moment < until):
            chosen.append(name)
    return chosen


def request_id(now: dt.datetime | None = None) -> str:
    """An id for one reprocess request: the UTC time it was made, behind a prefix.

    A bare ISO time would come out of posttroll's decoder as a datetime, not the text.
    """
    now = now or dt.datetime.now(dt.UTC)
    return now.strftime("reprocess-%Y-%m-%dT%H:%M:%S.%fZ")


def publish(sdr_dir: Path, files: list[SdrName], request: str, settle: float) -> int:
    """Publish a file message for each file that still exists; return how many were sent."""
    from avoviirscollector import bus
    from avoviirscollector.pipeline.file_messages import FILE_TOPIC, file_message_data

    sent = 0
    with bus.publish(PUBLISHER_NAME) as publisher:
        time.sleep(settle)  # subscribers connect after the nameserver relays our address
        for sdr in files:
            path = sdr_dir / sdr.name
            if not path.is_file():
                log.warning("%s no longer exists; no message for it", path)
                continue
            data = file_message_data(path)
            data["reprocess"] = request
            publisher.send(bus.message(FILE_TOPIC, MESSAGE_TYPE, data).encode())
            sent += 1
        time.sleep(DRAIN_SECONDS)  # PUB has no delivery event; let the queue drain
    return sent


def _nameserver_answers(timeout: float) -> bool:
    from avoviirscollector import bus  # noqa: I001 - bus sets the message version before posttroll loads
    from posttroll.ns import get_pub_address

    try:
        get_pub_address("", timeout=timeout, nameserver=bus.NAMESERVER_HOST)
    except Exception:  # posttroll raises TimeoutError or zmq errors, depending on version
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``viirscollector reprocess``."""
    parser = argparse.ArgumentParser(
        prog="viirscollector reprocess",
        description="Publish the file messages of files in sdr/ again (default: newest orbit).",
    )
    parser.add_argument("pattern", nargs="?", help="select names containing this (globs allowed)")
    parser.add_argument(
        "--since",
        type=parse_utc,
        metavar="UTC",
        help="only files whose time in sdr/ is at or after this (e.g. 2026-12-01T08:50:00Z)",
    )
    parser.add_argument(
        "--until",
        type=parse_utc,
        metavar="UTC",
        help="only files whose time in sdr/ is before this",
    )
    parser.add_argument("--dry-run", action="store_true", help="list the files, publish nothing")
    parser.add_argument("--wait", type=float, default=SETTLE_SECONDS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    from avoviirscollector import logs, settings

    config = settings.load_or_exit()
    logs.setup("reprocess", config)
    try:
        names = os.listdir(config.sdr_dir)
    except OSError as error:
        log.error("cannot list %s: %s", config.sdr_dir, error.strerror)
        return 1
    timed = args.since is not None or args.until is not None
    if timed:
        names = in_time_range(config.sdr_dir, names, args.since, args.until)
    files = select(names, args.pattern, every=timed)
    what = describe_selection(args)
    if not files:
        log.error("no SDR files %s in %s; nothing reprocessed", what, config.sdr_dir)
        return 1
    if args.dry_run:
        for sdr in files:
            print(config.sdr_dir / sdr.name)
        log.info("dry run: %d file(s) %s would be published again", len(files), what)
        return 0
    if not _nameserver_answers(timeout=3):
        log.error("the posttroll nameserver does not answer: is the collector running?")
        return 1
    request = request_id()
    sent = publish(config.sdr_dir, files, request, args.wait)
    orbits = sorted({(s.platform_name, s.orbit) for s in files})
    listed = ", ".join(f"{p} {o}" for p, o in orbits[:4])
    if len(orbits) > 4:
        listed = f"{len(orbits)} orbits: {listed}, ..."
    log.info(
        "published %d file message(s) %s (orbits %s) as reprocess request %s",
        sent,
        what,
        listed,
        request,
    )
    return 0 if sent else 1


if __name__ == "__main__":
    sys.exit(main())
