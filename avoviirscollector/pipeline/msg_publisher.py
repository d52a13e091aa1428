"""msg_publisher: every posttroll message of the collector, on one well-known port.

Clients outside the container cannot use our nameserver, so they read port 29092
(``VIIRS_MESSAGE_PORT``): a ZMQ PUB socket carrying each message as one UTF-8
frame. Those clients run posttroll 1.5 (2019), which refuses message version v1.2,
so every message is re-encoded as v1.01 with naive UTC datetimes. posttroll's own
address announcements and heartbeats stay inside.

Each file, and each granule, is published on 29092 once. The recovery after an
outage repeats messages on purpose (trollstalker's catch-up, the gatherers' replays:
a subscriber inside may have missed them); those repeats stay inside. A
:class:`SentMemory` in state/ (SQLite) remembers what went out, across restarts, for
the replay limit; a message already sent is dropped. An operator's ``viirscollector
reprocess`` carries a ``reprocess`` request id in its data and always passes. A file
is "the same" by name and inode: a file that was quarantined and fetched again is a
new file and is published again.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import signal
import sqlite3
import sys
import threading
import time
from pathlib import Path

from avoviirscollector import (
    bus,  # first: sets posttroll's message version before posttroll is imported
)

# isort: split
import zmq

from avoviirscollector import liveness, logs
from avoviirscollector import settings as settings_module

log = logging.getLogger("msg_publisher")

#: Seconds between checks of the stop flag while no message arrives.
RECV_TIMEOUT = 1.0
SENT_DB = "msg_publisher-sent.sqlite"
#: Seconds between two clean-ups of the memory of sent messages.
FORGET_INTERVAL = 3600.0


def once_key(message: bus.Message) -> str | None:
    """What makes a message "the same file or granule again", or None: always published.

    A file: its name and inode. A granule: its subject and its files' names. An
    operator's reprocess (a ``reprocess`` key) and every other message: None.
    """
    data = message.data if isinstance(message.data, dict) else {}
    if "reprocess" in data:
        return None
    if message.type == "file" and isinstance(data.get("uid"), str):
        try:
            inode = os.stat(data.get("uri", "")).st_ino
        except (OSError, TypeError, ValueError):
            inode = 0
        return f"file|{data['uid']}|{inode}"
    dataset = data.get("dataset")
    if message.type == "dataset" and isinstance(dataset, list) and dataset:
        uids = sorted(str(item.get("uid")) for item in dataset if isinstance(item, dict))
        return f"{message.subject}|{','.join(uids)}"
    return None


class SentMemory:
    """What msg_publisher sent, in SQLite (WAL): a kill -9 forgets nothing committed."""

    def __init__(self, path: str | os.PathLike, memory_seconds: float, clock=time.time):
        self.clock = clock
        self.memory = memory_seconds
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS sent (key TEXT PRIMARY KEY, at REAL)")
        self._db.execute("CREATE INDEX IF NOT EXISTS sent_at ON sent (at)")
        self.forgot_at = 0.0

    def first_time(self, key: str) -> bool:
        """True (and remembered) if ``key`` was not sent within the memory."""
        cursor = self._db.execute(
            "INSERT INTO sent (key, at) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
            (key, self.clock()),
        )
        if cursor.rowcount:
            return True
        (at,) = self._db.execute("SELECT at FROM sent WHERE key = ?", (key,)).fetchone()
        if at < self.clock() - self.memory:  # forgotten, not yet cleaned up
            self._db.execute("UPDATE sent SET at = ? WHERE key = ?", (self.clock(), key))
            return True
        return False

    def forget_old(self) -> int:
        """Forget what was sent longer ago than the memory (at most once an hour)."""
        if self.clock() - self.forgot_at < FORGET_INTERVAL:
            return 0
        self.forgot_at = self.clock()
        cutoff = self.clock() - self.memory
        return self._db.execute("DELETE FROM sent WHERE at < ?", (cutoff,)).rowcount

    def close(self) -> None:
        """Close the database."""
        self._db.close()


def is_chatter(message: bus.Message) -> bool:
    """posttroll's own traffic: address announcements and heartbeats."""
    return message.type == "beat" or message.subject.startswith(("/address", "/heartbeat"))


def naive_utc(value):
    """Datetimes as naive UTC, recursively: what posttroll 1.5 reads."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value
    if isinstance(value, dict):
        return {key: naive_utc(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [naive_utc(item) for item in value]
    return value


def legacy_encoding(message: bus.Message) -> bytes:
    """The message as posttroll 1.5 and today's posttroll both decode it."""
    copy = bus.Message(
        message.subject,
        message.type,
        naive_utc(message.data),
        version=bus.MESSAGE_VERSION,
    )
    copy.sender = message.sender
    copy.time = naive_utc(message.time)
    return copy.encode().encode("utf-8")


def forward(
    subscriber, socket: zmq.Socket, stop: threading.Event, sent: SentMemory | None = None
) -> int:
    """Republish what ``subscriber`` receives until ``stop`` is set; return the count."""
    count = 0
    for message in subscriber.recv(timeout=RECV_TIMEOUT):
        if stop.is_set():
            break
        if message is None or is_chatter(message):
            if sent is not None:
                sent.forget_old()
            continue
        if sent is not None and not _first_time(sent, message):
            log.debug("%s %s sent before: kept inside", message.subject, message.type)
            continue
        try:
            socket.send(legacy_encoding(message))
        except (ValueError, TypeError) as error:
            log.error("could not republish %s: %s; dropped", message.subject, error)
            continue
        count += 1
        log.debug("republished %s %s", message.subject, message.type)
    return count


def _first_time(sent: SentMemory, message: bus.Message) -> bool:
    key = once_key(message)
    if key is None:
        return True
    try:
        return sent.first_time(key)
    except sqlite3.Error as error:  # a repeat is better than a message lost
        log.warning("cannot look up %s in the memory of sent messages: %s", key, error)
        return True


def main(argv: list[str] | None = None) -> int:
    """Subscribe to everything through the nameserver; publish on the message port."""
    parser = argparse.ArgumentParser(
        prog="msg_publisher",
        description="Republish every posttroll message on tcp://*:$VIIRS_MESSAGE_PORT (v1.01).",
    )
    parser.parse_args(argv)
    settings = settings_module.load_or_exit()
    logs.setup("msg_publisher", settings, daemon=True)
    liveness.start(settings.base_dir, "msg_publisher")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    context = zmq.Context.instance()
    socket = context.socket(zmq.PUB)
    socket.setsockopt(zmq.LINGER, 0)
    try:
        socket.bind(f"tcp://{settings.listen_address}:{settings.message_port}")
    except zmq.ZMQError as error:
        log.error("cannot listen on port %d: %s; exiting", settings.message_port, error)
        socket.close()
        return 1
    # What a replay may repeat: the replay limit (last_seen.replay_limit) at most.
    memory = max(settings.backfill_days, 2) * 86400.0
    sent = SentMemory(settings.state_dir / SENT_DB, memory)
    log.info(
        "republishing every message on tcp://%s:%d, each file and granule once",
        settings.listen_address,
        settings.message_port,
    )
    try:
        count = 0
        while not stop.is_set():
            try:
                with bus.subscribe("") as subscriber:
                    count += forward(subscriber, socket, stop, sent)
            except TimeoutError as error:  # the nameserver starts after us, or is slow
                log.warning("nameserver on localhost not answering (%s); retrying in 1 s", error)
                stop.wait(1)
        log.info("stopping after %d message(s)", count)
    finally:
        socket.close()
        sent.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
