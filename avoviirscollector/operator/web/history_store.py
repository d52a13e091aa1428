"""The collector's history: SQLite under state/ (WAL), trimmed by age, bounded in size.

Written by the recorder alone (one connection, one transaction per batch), read by
the web server (its own read-only connections: WAL readers never wait for the
writer). Rows older than the history's days are deleted every few minutes; when
the live pages still exceed ``max_bytes``, the oldest rows go first until it fits.
Counters for /metrics are kept apart in ``totals``, never trimmed, so they only
ever grow, as Prometheus counters must.
Times are epoch seconds (UTC).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

from avoviirscollector.operator.web.history_rules import FileEvent, delay_bucket

DB_NAME = "history.sqlite"
SCHEMA_VERSION = 1
DEFAULT_MAX_BYTES = 256 * 1024 * 1024

_SCHEMA = """
CREATE TABLE files (
    name TEXT PRIMARY KEY, platform TEXT NOT NULL, segment TEXT NOT NULL,
    orbit INTEGER NOT NULL, start REAL NOT NULL, arrival REAL NOT NULL, bytes INTEGER
) WITHOUT ROWID;
-- covering: the page reads (arrival, platform, start, name) of every file of its window
CREATE INDEX files_arrival ON files (arrival, platform, start);
CREATE INDEX files_platform ON files (platform, arrival);
CREATE TABLE granules (
    product TEXT NOT NULL, platform TEXT NOT NULL, orbit INTEGER NOT NULL, start REAL NOT NULL,
    arrival REAL NOT NULL, PRIMARY KEY (product, platform, orbit, start)
) WITHOUT ROWID;
CREATE INDEX granules_arrival ON granules (arrival);
CREATE TABLE queue_samples (
    time REAL PRIMARY KEY, length INTEGER NOT NULL, per_product TEXT NOT NULL,
    oldest_age REAL, leased INTEGER
);
CREATE TABLE handouts (
    granule TEXT NOT NULL, product TEXT NOT NULL, time REAL NOT NULL, acknowledged INTEGER,
    PRIMARY KEY (granule, time)
) WITHOUT ROWID;
CREATE INDEX handouts_time ON handouts (time);
CREATE TABLE mirror_runs (
    finished REAL PRIMARY KEY, seconds REAL, found INTEGER, wanted INTEGER, fetched INTEGER,
    failed INTEGER, bytes INTEGER, queues INTEGER, listing_failed TEXT, listing_bytes INTEGER
);
CREATE TABLE restarts (time REAL NOT NULL, program TEXT NOT NULL);
CREATE INDEX restarts_time ON restarts (time);
CREATE TABLE program_starts (program TEXT PRIMARY KEY, start REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE disk (time REAL PRIMARY KEY, used INTEGER, free INTEGER, total INTEGER);
CREATE TABLE totals (
    name TEXT NOT NULL, labels TEXT NOT NULL, value REAL NOT NULL, PRIMARY KEY (name, labels)
) WITHOUT ROWID;
"""
#: Tables trimmed by age, and their time column.
_TIMED = {
    "files": "arrival",
    "granules": "arrival",
    "queue_samples": "time",
    "handouts": "time",
    "mirror_runs": "finished",
    "restarts": "time",
    "disk": "time",
}


def path_of(state_dir: Path) -> Path:
    """The history's file in state/."""
    return Path(state_dir) / DB_NAME


def labels(**values: str) -> str:
    """A totals row's labels, canonical (sorted JSON)."""
    return json.dumps(values, sort_keys=True)


class HistoryStore:
    """The recorder's connection: every write of one batch in one transaction."""

    def __init__(self, path: str | Path, max_bytes: int = DEFAULT_MAX_BYTES):
        self.path, self.max_bytes = Path(path), max_bytes
        self._db = sqlite3.connect(self.path, isolation_level=None, timeout=2)
        self._db.execute("PRAGMA journal_mode=WAL")
        # History, not the queue: a crash may lose the last second, never the file.
        self._db.execute("PRAGMA synchronous=NORMAL")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")  # before the first table
            self._db.executescript(
                f"BEGIN; {_SCHEMA}; PRAGMA user_version={SCHEMA_VERSION}; COMMIT;"
            )
        elif version != SCHEMA_VERSION:
            raise sqlite3.DatabaseError(f"history schema {version}, this recorder knows 1")

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def begin(self) -> None:
        """Start a batch."""
        self._db.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        """End a batch."""
        self._db.execute("COMMIT")

    def rollback(self) -> None:
        """Drop a batch (after an error)."""
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def _add_total(self, name: str, label_text: str, amount: float) -> None:
        self._db.execute(
            "INSERT INTO totals VALUES (?, ?, ?) ON CONFLICT (name, labels) "
            "DO UPDATE SET value = value + excluded.value",
            (name, label_text, amount),
        )

    # --- events ---------------------------------------------------------------------

    def add_file(self, event: FileEvent, size: int | None) -> bool:
        """A file that arrived; False when it was known (a replay or a reprocess)."""
        added = self._db.execute(
            "INSERT OR IGNORE INTO files VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                event.name,
                event.platform,
                event.segment,
                event.orbit,
                event.start,
                event.arrival,
                size,
            ),
        ).rowcount
        if added:
            satellite = labels(satellite=event.platform)
            self._add_total("files", satellite, 1)
            self._add_total("file_bytes", satellite, size or 0)
            bucket = labels(satellite=event.platform, le=delay_bucket(event.delay))
            self._add_total("delay_bucket", bucket, 1)
            self._add_total("delay_sum", satellite, event.delay)
        return bool(added)

    def add_granule(self, product: str, platform: str, orbit: int, start: float, arrival: float):
        """A granule message of a product (first one only)."""
        added = self._db.execute(
            "INSERT OR IGNORE INTO granules VALUES (?, ?, ?, ?, ?)",
            (product, platform, orbit, start, arrival),
        ).rowcount
        if added:
            self._add_total("granules", labels(product=product), 1)

    def add_queue_sample(self, when: float, state: dict) -> None:
        """The broker's queue state at ``when``."""
        per_product = state.get("tasks per product") or {}
        self._db.execute(
            "INSERT OR REPLACE INTO queue_samples VALUES (?, ?, ?, ?, ?)",
            (
                when,
                int(state.get("queue length") or 0),
                json.dumps(per_product, sort_keys=True),
                state.get("oldest task age"),
                state.get("tasks leased"),
            ),
        )

    def add_handout(self, granule: str, product: str, when: float, acknowledged: bool) -> None:
        """A granule handed out (taken without a lease, or acknowledged after one)."""
        added = self._db.execute(
            "INSERT OR IGNORE INTO handouts VALUES (?, ?, ?, ?)",
            (granule, product, when, int(acknowledged)),
        ).rowcount
        if added:
            self._add_total("granules_handed_out", labels(product=product), 1)
            if acknowledged:
                self._add_total("granules_acknowledged", labels(product=product), 1)

    def add_tasks_handed_out(self, product: str, count: int) -> None:
        """Tasks (one or more granules each) handed out."""
        self._add_total("tasks_handed_out", labels(product=product), count)

    def add_mirror_run(self, run: dict) -> bool:
        """One mirror run's summary; False when that run was recorded already."""
        added = self._db.execute(
            "INSERT OR IGNORE INTO mirror_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run["finished"],
                run["seconds"],
                run["found"],
                run["wanted"],
                run["fetched"],
                run["failed"],
                run["bytes"],
                run["queues"],
                json.dumps(run["listing_failed"]),
                run["listing_bytes"],
            ),
        ).rowcount
        if added:
            self._add_total("listing_requests", labels(result="ok"), run["listing_ok"])
            failed = run["listing_failures"]
            self._add_total("listing_requests", labels(result="failed"), failed)
            self._add_total("listing_bytes", labels(), run["listing_bytes"])
            self._add_total("mirror_failures", labels(reason="listing"), failed)
            self._add_total("mirror_failures", labels(reason="file"), run["failed"])
            self._add_total("mirror_bytes", labels(), run["bytes"])
            self._add_total("mirror_runs", labels(), 1)
        return bool(added)

    def program_started(self, program: str, start: float, when: float) -> bool:
        """A program's start time as supervisord says; True when that is a restart."""
        row = self._db.execute(
            "SELECT start FROM program_starts WHERE program = ?", (program,)
        ).fetchone()
        if row is not None and abs(row[0] - start) < 0.5:
            return False
        self._db.execute("INSERT OR REPLACE INTO program_starts VALUES (?, ?)", (program, start))
        if row is None:
            return False
        self._db.execute("INSERT INTO restarts VALUES (?, ?)", (when, program))
        self._add_total("restarts", labels(program=program), 1)
        return True

    def add_disk(self, when: float, used: int, free: int, total: int) -> None:
        """Disk use under the base directory."""
        self._db.execute(
            "INSERT OR REPLACE INTO disk VALUES (?, ?, ?, ?)", (when, used, free, total)
        )

    def last_handout(self) -> float:
        """When the newest recorded hand-out was (0 for none): where to read the broker on."""
        return self._db.execute("SELECT max(time) FROM handouts").fetchone()[0] or 0.0

    def last_mirror_run(self) -> float:
        """When the newest recorded mirror run finished (0 for none)."""
        return self._db.execute("SELECT max(finished) FROM mirror_runs").fetchone()[0] or 0.0

    # --- bounds ---------------------------------------------------------------------

    def trim(self, days: float, now: float | None = None) -> int:
        """Delete rows older than ``days``, then the oldest until the file fits; rows deleted."""
        now = time.time() if now is None else now
        deleted = self._delete_before(now - days * 86400)
        for _ in range(20):
            if self.live_bytes() <= self.max_bytes:
                break
            oldest = self._db.execute("SELECT min(arrival), max(arrival) FROM files").fetchone()
            if oldest[0] is None:
                break
            deleted += self._delete_before(oldest[0] + (oldest[1] - oldest[0]) * 0.1 + 1)
        self._db.execute("PRAGMA incremental_vacuum")
        return deleted

    def _delete_before(self, cutoff: float) -> int:
        deleted = 0
        self.begin()
        try:
            for table, column in _TIMED.items():
                deleted += self._db.execute(
                    f"DELETE FROM {table} WHERE {column} < ?", (cutoff,)
                ).rowcount
            self.commit()
        except BaseException:
            self.rollback()
            raise
        return deleted

    def live_bytes(self) -> int:
        """Bytes of the pages in use (the file may hold free pages until vacuumed)."""
        pages = self._db.execute("PRAGMA page_count").fetchone()[0]
        free = self._db.execute("PRAGMA freelist_count").fetchone()[0]
        size = self._db.execute("PRAGMA page_size").fetchone()[0]
        return (pages - free) * size

    def checkpoint(self) -> None:
        """Fold the WAL into the database file."""
        self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()


class HistoryReader:
    """A read-only connection for the web server (one per thread: sqlite3's rule)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self.path.exists():
            self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=2)
        else:  # the recorder has not made it yet: an empty history, not an error
            self._db = sqlite3.connect(":memory:")
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def files(self, since: float) -> list[FileEvent]:
        """Files that arrived since ``since``, oldest first."""
        rows = self._db.execute(
            "SELECT name, platform, segment, orbit, start, arrival FROM files "
            "WHERE arrival >= ? ORDER BY arrival",
            (since,),
        )
        return [FileEvent(*row) for row in rows]

    def delay_rows(self, since: float) -> list[tuple[str, str, float, float]]:
        """(name, platform, granule start, arrival) of the files since ``since``, oldest first:
        plain tuples, as a week holds 21,000 of them."""
        return self._db.execute(
            "SELECT name, platform, start, arrival FROM files WHERE arrival >= ? ORDER BY arrival",
            (since,),
        ).fetchall()

    def last_files(self) -> dict[str, tuple[str, float, float]]:
        """platform -> (name, arrival, start) of its newest file, over the whole history."""
        rows = self._db.execute(
            "SELECT platform, name, max(arrival), start FROM files GROUP BY platform"
        )
        return {row[0]: (row[1], row[2], row[3]) for row in rows}

    def granules(self, since: float) -> list[tuple[str, str, int, float, float]]:
        """(product, platform, orbit, start, arrival) of granule messages since ``since``."""
        return self._db.execute(
            "SELECT product, platform, orbit, start, arrival FROM granules WHERE arrival >= ? "
            "ORDER BY arrival",
            (since,),
        ).fetchall()

    def queue_samples(self, since: float) -> list[tuple[float, int, str, float | None, int]]:
        """(time, length, per product as JSON text, oldest task age, leased) since ``since``.

        The JSON is left undecoded: a week holds 10,000 samples, the page draws 600.
        """
        return self._db.execute(
            "SELECT time, length, per_product, oldest_age, leased FROM queue_samples "
            "WHERE time >= ? ORDER BY time",
            (since,),
        ).fetchall()

    def handouts(self, since: float) -> dict[str, tuple[int, int, int]]:
        """product -> (tasks, granules, granules acknowledged) handed out since ``since``.

        A task's granules share one hand-out time (one transaction of the broker).
        """
        rows = self._db.execute(
            "SELECT product, count(DISTINCT time), count(*), sum(acknowledged) FROM handouts "
            "WHERE time >= ? GROUP BY product",
            (since,),
        )
        return {row[0]: (row[1], row[2], row[3] or 0) for row in rows}

    def mirror_runs(self, since: float, limit: int = 12) -> list[dict]:
        """The newest ``limit`` mirror runs finished since ``since``, newest first."""
        rows = self._db.execute(
            "SELECT finished, seconds, found, wanted, fetched, failed, bytes, queues, "
            "listing_failed, listing_bytes FROM mirror_runs WHERE finished >= ? "
            "ORDER BY finished DESC LIMIT ?",
            (since, limit),
        )
        keys = ("finished", "seconds", "found", "wanted", "fetched", "failed", "bytes", "queues",
                "listing_failed", "listing_bytes")  # fmt: skip
        runs = [dict(zip(keys, row, strict=True)) for row in rows]
        for run in runs:
            run["listing_failed"] = json.loads(run["listing_failed"] or "[]")
        return runs

    def gina_state(self) -> tuple[float | None, float | None, float | None]:
        """(last run, last run whose listing GINA answered, first failed run after that)."""
        last = self._db.execute("SELECT max(finished) FROM mirror_runs").fetchone()[0]
        answered = self._db.execute(
            "SELECT max(finished) FROM mirror_runs WHERE listing_failed = '[]'"
        ).fetchone()[0]
        failing = self._db.execute(
            "SELECT min(finished) FROM mirror_runs WHERE finished > ?", (answered or 0.0,)
        ).fetchone()[0]
        return last, answered, failing

    def restarts(self, since: float) -> dict[str, int]:
        """program -> restarts since ``since``."""
        rows = self._db.execute(
            "SELECT program, count(*) FROM restarts WHERE time >= ? GROUP BY program", (since,)
        )
        return dict(rows.fetchall())

    def disk(self) -> tuple[float, int, int, int] | None:
        """The newest disk sample: (time, used, free, total)."""
        return self._db.execute(
            "SELECT time, used, free, total FROM disk ORDER BY time DESC LIMIT 1"
        ).fetchone()

    def bytes_since(self, since: float) -> int:
        """Bytes of the files that arrived since ``since``."""
        return self._db.execute(
            "SELECT coalesce(sum(bytes), 0) FROM files WHERE arrival >= ?", (since,)
        ).fetchone()[0]

    def totals(self) -> list[tuple[str, dict, float]]:
        """Every counter: (name, labels, value)."""
        rows = self._db.execute("SELECT name, labels, value FROM totals ORDER BY name, labels")
        return [(name, json.loads(text), value) for name, text, value in rows]


def read_broker_handouts(
    broker_db: Path, after: float, limit: int = 10000
) -> list[tuple[str, float]]:
    """(granule id, handed out at) from the broker's queue, read-only, after ``after``."""
    db = sqlite3.connect(f"file:{broker_db}?mode=ro", uri=True, timeout=1)
    try:
        return db.execute(
            "SELECT granule_id, handed_out_at FROM granules WHERE handed_out_at > ? "
            "ORDER BY handed_out_at LIMIT ?",
            (after, limit),
        ).fetchall()
    finally:
        db.close()


def read_broker_leased(broker_db: Path) -> list[str]:
    """Granule ids of the tasks leased now (awaiting an ack), read-only."""
    db = sqlite3.connect(f"file:{broker_db}?mode=ro", uri=True, timeout=1)
    try:
        rows = db.execute(
            "SELECT g.granule_id FROM granules g JOIN tasks t ON g.task_id = t.id "
            "WHERE t.lease_id IS NOT NULL"
        )
        return [row[0] for row in rows]
    finally:
        db.close()


def product_of_granule(granule_id: str) -> str:
    """The product of a broker granule id (``/AVO/viirs/granule/tir|NOAA-20|...``)."""
    return granule_id.split("|", 1)[0].rsplit("/", 1)[-1]


def tasks_of(handouts: Iterable[tuple[str, float]]) -> dict[str, int]:
    """product -> tasks among hand-outs: a task's granules share one hand-out time."""
    seen = {(product_of_granule(granule), when) for granule, when in handouts}
    counts: dict[str, int] = {}
    for product, _ in seen:
        counts[product] = counts.get(product, 0) + 1
    return counts
