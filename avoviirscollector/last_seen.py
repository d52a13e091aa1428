"""What the task broker last saw, kept in state/ so that a replay knows where to start.

posttroll keeps nothing for a subscriber that is down or not yet connected: a granule
message published while the broker, the nameserver, trollstalker or a gatherer was
out is gone. The gatherers rebuild such granules from the files in sdr/ (a replay);
the question is how far back. A fixed window (the last 10 minutes) loses everything
of a longer outage. So the broker records, per product, the arrival time in sdr/ of
the newest granule it received (``seen``), and a replay covers every granule that
arrived after it, less :data:`MARGIN`, whatever the outage's length; the broker's
exactly-once memory turns what it had already into nothing.

Two subtleties make the record safe:

- After an outage, the first new granule may reach the broker *before* the replay
  runs (the replay waits for the connections to come back). Had the replay read
  ``seen`` then, it would start after the gap. So the record also holds ``held``:
  the value ``seen`` had :data:`HOLD` seconds before it was written. A replay starts
  from ``held``; every replay runs well within HOLD of the restart that asked for it
  (gatherer.py: 3 s after its start; replay_listener: at most 30 s after a restart).
- A replay never reaches further back than the broker remembers hand-outs
  (``memory_seconds``, written by the broker) nor than GINA_BACKFILL_DAYS: a granule
  older than that could become a second task. An outage longer than that is
  reported by the replay (logged and mailed) with the command that recovers it.

The file is JSON, written atomically (temporary file, rename) at most once a second
by the broker, when a value changed; a kill -9 loses at most the last second, which
only makes the next replay start a little earlier, and an unreadable record makes
the replays reach back to the first start (within the limit).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

RECORD_NAME = "broker-last-seen.json"
#: A replay starts from what the broker had seen this many seconds before the record.
HOLD = 300.0
#: Seconds before that still replayed: files of one granule arrive close together and
#: the gatherers publish granules about in the order their files arrived.
MARGIN = 60.0
#: Seconds between two writes of the record while granules arrive.
SAVE_INTERVAL = 1.0
#: What the broker remembers when its record does not say (task_store.HANDED_OUT_MEMORY).
DEFAULT_MEMORY = 2 * 24 * 3600.0

log = logging.getLogger(__name__)


def arrival_of(uris: Iterable[str]) -> float | None:
    """When the newest of these files reached sdr/ (its ctime: set by the rename, never
    by a copy that keeps times), or None when none of them is there any more."""
    newest = None
    for uri in uris:
        try:
            ctime = os.stat(uri).st_ctime
        except (OSError, TypeError, ValueError):
            continue
        newest = ctime if newest is None else max(newest, ctime)
    return newest


@dataclass
class Record:
    """The record as read by a replay."""

    created: float
    written: float
    memory_seconds: float
    #: product -> the arrival time the broker had seen HOLD seconds before ``written``
    held: dict[str, float] = field(default_factory=dict)
    #: product -> the newest arrival time the broker has seen
    seen: dict[str, float] = field(default_factory=dict)

    def replay_from(self, product: str, first_window: float) -> float:
        """Files of ``product`` that arrived after this may never have become a task.

        A product the broker had not seen by then: everything since the record was
        created, and the ``first_window`` seconds before (the first start's window).
        """
        held = self.held.get(product)
        if held is None:
            return self.created - first_window
        return held - MARGIN


def path_in(state_dir: str | os.PathLike) -> Path:
    """Where the record is."""
    return Path(state_dir) / RECORD_NAME


def read(state_dir: str | os.PathLike) -> Record | None:
    """The broker's record, or None when there is none (or it cannot be read)."""
    try:
        raw = json.loads(path_in(state_dir).read_text())
        products = raw.get("products", {})
        return Record(
            created=float(raw["created"]),
            written=float(raw["written"]),
            memory_seconds=float(raw.get("memory_seconds", DEFAULT_MEMORY)),
            held={p: float(v["held"]) for p, v in products.items() if v.get("held") is not None},
            seen={p: float(v["seen"]) for p, v in products.items() if v.get("seen") is not None},
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        log.warning("cannot read %s (%s); replays use their own window", path_in(state_dir), error)
        return None


def write_atomically(path: Path, text: str, *, fsync: bool = True) -> None:
    """Replace ``path`` by a file holding ``text``: complete or not at all after a crash
    of the process (and, with ``fsync``, of the machine)."""
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w") as stream:
        stream.write(text)
        if fsync:
            stream.flush()
            os.fsync(stream.fileno())
    os.replace(temporary, path)


class Recorder:
    """The broker's side: note each granule's arrival, write the record now and then."""

    def __init__(
        self,
        state_dir: str | os.PathLike,
        memory_seconds: float,
        *,
        clock: Callable[[], float] = time.time,
    ):
        self.path = path_in(state_dir)
        self.clock = clock
        self.memory_seconds = memory_seconds
        old = read(state_dir)
        now = clock()
        self.created = old.created if old else now
        #: product -> [(when seen changed, new value)], oldest first; -inf: before us
        self.history: dict[str, list[tuple[float, float]]] = {}
        if old is not None:  # down since old.written: seen did not move meanwhile
            for product in set(old.held) | set(old.seen):
                steps = []
                if product in old.held:
                    steps.append((-math.inf, old.held[product]))
                if product in old.seen:
                    steps.append((old.written, old.seen[product]))
                self.history[product] = steps
        #: the products part of the record last written (None: not written yet)
        self.written: dict | None = None
        self.save()

    def saw(self, product: str, uris: Iterable[str]) -> None:
        """A granule of ``product`` with these files reached the broker."""
        arrived = arrival_of(uris)
        if arrived is None:
            return
        arrived = min(arrived, self.clock())  # a clock that went back must not hide later files
        steps = self.history.setdefault(product, [])
        if steps and steps[-1][1] >= arrived:
            return
        steps.append((self.clock(), arrived))

    def _value_at(self, product: str, when: float) -> float | None:
        value = None
        for changed, seen in self.history.get(product, ()):
            if changed > when:
                break
            value = seen
        return value

    def _prune(self, product: str, horizon: float) -> None:
        steps = self.history[product]
        while len(steps) > 1 and steps[1][0] <= horizon:
            steps.pop(0)

    def snapshot(self) -> dict:
        """The record's content now."""
        now = self.clock()
        products = {}
        for product, steps in self.history.items():
            self._prune(product, now - HOLD)
            products[product] = {"seen": steps[-1][1], "held": self._value_at(product, now - HOLD)}
        return {
            "created": self.created,
            "written": now,
            "memory_seconds": self.memory_seconds,
            "products": products,
        }

    def save(self, *, force: bool = False) -> None:
        """Write the record when ``seen`` or ``held`` changed (cheap to call every second).

        No fsync: a record lost to a power cut makes the replays fall back to everything
        since the first start (within the limit), an earlier start, never a later one.
        """
        snapshot = self.snapshot()
        if snapshot["products"] == self.written and not force:
            return
        try:
            write_atomically(self.path, json.dumps(snapshot, sort_keys=True), fsync=False)
            self.written = snapshot["products"]
        except OSError as error:
            log.warning("could not write %s: %s; replays may start earlier", self.path, error)


def replay_limit(backfill_days: float, window: float, record: Record | None) -> float:
    """How far back (seconds) a replay or catch-up may reach.

    Not beyond GINA_BACKFILL_DAYS (older data is not wanted) nor beyond the broker's
    memory of hand-outs (an older granule could become a second task); never less
    than the program's own window.
    """
    memory = record.memory_seconds if record is not None else DEFAULT_MEMORY
    return max(window, min(backfill_days * 86400.0, memory))
