"""``viirscollector reprocess [PATTERN] [--dry-run]``: make files in sdr/ flow through again.

The original script moved the matching files out of ``sdr/`` and back so that
trollstalker would see them arrive again; it also announced files that had meanwhile
disappeared. Here the file messages are published again directly, on trollstalker's
topic, exactly as trollstalker builds them (:func:`file_messages.file_message_data`),
with one extra data key, ``"reprocess": "reprocess-<UTC ISO time>"``: the broker's contract for
a deliberate reprocess (a task handed out before is queued again, once).

- PATTERN selects file names containing it (``*PATTERN*``, globs allowed, as the
  original's ``ls *PATTERN*``); without it, every file of the newest orbit.
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


def select(names: Iterable[str], pattern: str | None) -> list[SdrName]:
    """The SDR files to reprocess, geolocation first within each granule, oldest first."""
    names = [n for n in names if not n.startswith(".")]
    if pattern:
        chosen = _parsed(n for n in names if fnmatch.fnmatchcase(n, f"*{pattern}*"))
    else:
        every = _parsed(names)
        if not every:
            return []
        newest = max(every, key=lambda s: s.start)
        chosen = [s for s in every if (s.platform, s.orbit) == (newest.platform, newest.orbit)]
    return sorted(chosen, key=lambda s: (s.start, not s.is_geolocation, s.segment, s.name))


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
    files = select(names, args.pattern)
    what = f"matching {args.pattern!r}" if args.pattern else "of the newest orbit"
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
    log.info(
        "published %d file message(s) %s (orbits %s) as reprocess request %s",
        sent,
        what,
        ", ".join(f"{p} {o}" for p, o in orbits),
        request,
    )
    return 0 if sent else 1


if __name__ == "__main__":
    sys.exit(main())
