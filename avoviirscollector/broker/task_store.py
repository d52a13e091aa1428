"""The durable task queue: SQLite in WAL mode, so a crash at any moment loses nothing.

A granule counts as queued only once its transaction is committed; a hand-out is
committed before its reply leaves (task_broker.py batches requests so that one
fsync covers many hand-outs). Choosing the next task of the desired products
(task_rules.hand_out_key: fresh tasks in queue order, then stale ones newest
granule first) is an index seek per product, never a scan of the queue: the head
of the queue when it is fresh (the usual case); else the fresh tasks' range of the
start-time index (a few hours of data at most), else one seek on that index.

Exactly once: the granules of handed-out tasks are remembered for
:data:`HANDED_OUT_MEMORY`, so a granule published again (a restarted gatherer
replaying files from disk, a repeated message) does not become a second task,
unless it carries a new ``reprocess`` request id (an operator's deliberate
reprocess). A granule published again while still queued merges into its task.

Leases: a task handed out with a lease stays in the database, marked with a
lease id and a deadline; it is deleted when the worker acknowledges it, and goes
back to the head of the queue when the deadline passes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
import re
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from avoviirscollector import bus
from avoviirscollector.broker.task_rules import (
    START_FORMAT,
    Granule,
    dumps,
    files_stem,
    is_replay,
    joins,
    loads,
    merge_data,
    stale_cutoff,
    task_data_from,
    utc_naive,
)

DB_NAME = "task_queue.sqlite"
#: A dataset file's name in stored data (task_rules.dumps writes no spaces; names hold no ").
_UID = re.compile(r'"uid":"([^"\\]*)"')
SCHEMA_VERSION = 1
#: How long the granules of a handed-out task are remembered (seconds).
HANDED_OUT_MEMORY = 2 * 24 * 3600.0

_SCHEMA = """
CREATE TABLE tasks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    position INTEGER NOT NULL,
    product TEXT NOT NULL,
    subject TEXT NOT NULL,
    platform_name TEXT NOT NULL,
    orbit_number INTEGER NOT NULL,
    atype TEXT NOT NULL,
    data TEXT NOT NULL,       -- for merging: JSON that keeps datetimes (task_rules.dumps)
    reply TEXT NOT NULL,      -- the posttroll message a worker gets, encoded once
    start_time TEXT NOT NULL, -- for log lines
    files INTEGER NOT NULL,   -- for log lines
    queued_at REAL NOT NULL,
    lease_id TEXT,
    lease_expires REAL
);
-- the oldest waiting task of a product: one seek (covering for the state summary)
CREATE INDEX tasks_waiting ON tasks (product, position, queued_at) WHERE lease_expires IS NULL;
CREATE INDEX tasks_key ON tasks (subject, platform_name, orbit_number);
CREATE INDEX tasks_leased ON tasks (lease_expires) WHERE lease_expires IS NOT NULL;
CREATE UNIQUE INDEX tasks_lease_id ON tasks (lease_id) WHERE lease_id IS NOT NULL;
-- (tasks_by_start, for stale tasks, is created by _START_INDEX, also in older databases)
CREATE TABLE granules (
    granule_id TEXT PRIMARY KEY,
    task_id INTEGER,          -- the queued or leased task holding it, NULL once handed out
    reprocess TEXT,           -- the reprocess request id it came with
    handed_out_at REAL
) WITHOUT ROWID;
CREATE INDEX granules_task ON granules (task_id) WHERE task_id IS NOT NULL
-- (forgetting old hand-outs scans granules every 10 minutes: no index to keep up per hand-out)
"""

#: The waiting tasks of a product by granule start, newest first: the stale tasks' order
#: and the fresh tasks' range. A database of an earlier version gets it when opened
#: (an added index changes nothing else; an older broker ignores it).
_START_INDEX = (
    "CREATE INDEX IF NOT EXISTS tasks_by_start ON tasks (product, start_time DESC, position) "
    "WHERE lease_expires IS NULL"
)

_COLUMNS = (
    "id, position, product, subject, platform_name, orbit_number, atype, data, reply, "
    "start_time, files, queued_at, lease_id, lease_expires"
)


def encode(subject: str, atype: str, data: dict) -> str:
    """A task as the workers read it: posttroll message v1.01 with naive UTC datetimes."""
    return bus.message(subject, atype, data).encode()


@dataclass
class Task:
    """A task as stored: its reply encoded once, its data decoded only when asked for."""

    id: int
    position: int
    product: str
    subject: str
    platform_name: str
    orbit_number: int
    atype: str
    data_json: str
    encoded: str
    start_time: str
    files: int
    queued_at: float
    lease_id: str | None = None
    lease_expires: float | None = None
    #: the granules of a task removed from the queue, so it can be put back
    granule_ids: tuple[str, ...] = ()

    @cached_property
    def data(self) -> dict:
        """The task's data, datetimes as datetime objects."""
        return loads(self.data_json)

    def reply(self) -> bytes:
        """The bytes a worker receives; a leased task's data carries its ``task_id``."""
        if self.lease_id is None:
            return self.encoded.encode("utf-8")
        data = {**self.data, "task_id": self.lease_id}
        return encode(self.subject, self.atype, data).encode("utf-8")

    def describe(self) -> str:
        """For log lines: number, product, the files' stem (grep finds it), start, file count.

        The start is the time of day: the stem holds the date (``d20240301``), and every
        line must stay under 200 characters.
        """
        stem = files_stem(_UID.findall(self.data_json))  # no decoding of the whole data
        return f"task {self.id} ({self.product} {stem} {self.start_time[11:]}, {self.files} files)"


def _task_columns(granule: Granule, data: dict) -> tuple:
    """(data, reply, start_time, files) of a task holding ``data``."""
    start = data["start_time"].strftime(START_FORMAT)
    encoded = encode(granule.subject, granule.atype, data)
    return dumps(data), encoded, start, len(data["dataset"])


@dataclass(frozen=True)
class Added:
    """What became of a granule: 'queued', 'merged', 'replay' or 'with worker'."""

    outcome: str
    granule: Granule
    task: Task | None = None
    #: for a replay: when the granule was handed out (epoch seconds)
    handed_out_at: float | None = None
    #: for a merge: files the task did not have yet
    files_added: int = 0


class TaskStore:
    """The queue in one SQLite database; one instance per process, used by one thread."""

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Callable[[], float] = time.time,
        stale_hours: float | None = None,
    ):
        """``stale_hours``: VIIRS_STALE_TASK_HOURS (None or 0: the original order only)."""
        self.path = Path(path)
        self.clock = clock
        self.stale_hours = stale_hours
        self._cutoff_of: tuple[int, str] = (-1, "")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, timeout=10)
        self._depth = 0
        try:
            self._prepare()
        except BaseException:
            self._db.close()
            raise
        low, high = self._db.execute("SELECT min(position), max(position) FROM tasks").fetchone()
        self._head = 0 if low is None else low
        self._tail = 0 if high is None else high

    def _prepare(self) -> None:
        db = self._db
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise sqlite3.DatabaseError(f"cannot use WAL mode (got {mode})")
        db.execute("PRAGMA synchronous=NORMAL")  # FULL for granules: see transaction()
        check = [row[0] for row in db.execute("PRAGMA quick_check")]
        if check != ["ok"]:
            raise sqlite3.DatabaseError("integrity check failed: " + "; ".join(check[:3]))
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            with self.transaction():
                for statement in _SCHEMA.split(";"):  # no ";" in the comments
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        elif version != SCHEMA_VERSION:
            raise sqlite3.DatabaseError(f"schema version {version}, this broker knows 1")
        db.execute(_START_INDEX)

    def close(self) -> None:
        """Close the database (everything is committed already)."""
        self._db.close()

    # --- transactions ---------------------------------------------------------------

    @contextmanager
    def transaction(self, *, fsync: bool = True) -> Iterator[None]:
        """One transaction; a nested call is a savepoint of the outer one.

        Every commit survives a crash of the process (kill -9). With ``fsync`` (the
        default, used for granules) it also survives a power cut: a queued granule is
        never lost. The broker commits hand-outs without it: a power cut may then forget
        the last second of hand-outs (the monitor's checkpoint fsyncs every second), and
        those tasks are handed out again: a duplicate, never a loss. An fsync per batch
        of hand-outs would cost more than serving them.

        The broker wraps a batch of requests in one transaction and each request in a
        savepoint, so a failing request is undone alone and one commit covers them all.
        Deeper nesting joins the savepoint around it (a failure undoes all of it).
        """
        depth = self._depth
        self._depth += 1
        try:
            if depth > 1:
                yield
            elif depth == 1:
                with self._savepoint():
                    yield
            else:
                with self._outer(fsync):
                    yield
        finally:
            self._depth -= 1

    @contextmanager
    def _savepoint(self) -> Iterator[None]:
        self._db.execute("SAVEPOINT request")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK TO request")
            raise
        finally:
            self._db.execute("RELEASE request")

    @contextmanager
    def _outer(self, fsync: bool) -> Iterator[None]:
        if fsync:
            self._db.execute("PRAGMA synchronous=FULL")
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._db.execute("COMMIT")
            finally:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
        finally:
            if fsync:
                self._db.execute("PRAGMA synchronous=NORMAL")

    # --- granules in ----------------------------------------------------------------

    def add(self, granule: Granule) -> Added:
        """Queue a granule, merge it into its task, or recognise it as published again."""
        with self.transaction():
            return self._add(granule)

    def _add(self, granule: Granule) -> Added:
        known = self._db.execute(
            "SELECT task_id, reprocess, handed_out_at FROM granules WHERE granule_id = ?",
            (granule.granule_id,),
        ).fetchone()
        if known is not None:
            task_id, reprocess, handed_out_at = known
            if task_id is None and is_replay(granule, reprocess):
                return Added("replay", granule, handed_out_at=handed_out_at)
            task = self._task(task_id) if task_id is not None else None
            if task is not None and task.lease_expires is None:
                return self._merge(task, granule)
            if task is not None and granule.reprocess is None:
                return Added("with worker", granule, task)
        target = self._joinable(granule)
        if target is not None:
            return self._merge(target, granule)
        return self._insert(granule)

    def _joinable(self, granule: Granule) -> Task | None:
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM tasks WHERE subject = ? AND platform_name = ? "
            "AND orbit_number = ? AND lease_expires IS NULL ORDER BY position",
            granule.key,
        )
        for row in rows:
            task = Task(*row)
            if joins(task.data["start_time"], granule.start_time):
                return task
        return None

    def _merge(self, task: Task, granule: Granule) -> Added:
        data = merge_data(task.data, granule.data)
        columns = _task_columns(granule, data)
        self._db.execute(
            "UPDATE tasks SET data = ?, reply = ?, start_time = ?, files = ? WHERE id = ?",
            (*columns, task.id),
        )
        self._hold(granule, task.id)
        added = columns[3] - task.files
        task.data_json, task.encoded, task.start_time, task.files = columns
        task.__dict__.pop("data", None)  # the cached decoded data is stale
        return Added("merged", granule, task, files_added=added)

    def _insert(self, granule: Granule) -> Added:
        self._tail += 1
        columns = _task_columns(granule, task_data_from(granule))
        now = self.clock()
        cursor = self._db.execute(
            "INSERT INTO tasks (position, product, subject, platform_name, orbit_number, "
            "atype, data, reply, start_time, files, queued_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (self._tail, granule.product, *granule.key, granule.atype, *columns, now),
        )
        self._hold(granule, cursor.lastrowid)
        row_id = cursor.lastrowid
        task = Task(row_id, self._tail, granule.product, *granule.key, granule.atype, *columns, now)
        return Added("queued", granule, task)

    def _hold(self, granule: Granule, task_id: int) -> None:
        self._db.execute(
            "INSERT INTO granules (granule_id, task_id, reprocess, handed_out_at) "
            "VALUES (?, ?, ?, NULL) ON CONFLICT (granule_id) DO UPDATE SET "
            "task_id = excluded.task_id, handed_out_at = NULL, "
            "reprocess = coalesce(excluded.reprocess, granules.reprocess)",
            (granule.granule_id, task_id, granule.reprocess),
        )

    # --- tasks out ------------------------------------------------------------------

    def _task(self, task_id: int) -> Task | None:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM tasks WHERE id = ?", (task_id,))
        row = row.fetchone()
        return None if row is None else Task(*row)

    def next_task(self, products: Iterable[str]) -> Task | None:
        """The waiting task of any of ``products`` handed out next, left in the queue.

        task_rules.hand_out_key's order: the head of the queue if it is fresh, else the
        first fresh task in queue order, else the stale task of the newest granule.
        """
        products = tuple(products)
        if not products:
            return None
        row = self._db.execute(oldest_sql(len(products)), products).fetchone()
        if row is None:
            return None
        cutoff = self._cutoff()
        if cutoff is None or row[9] >= cutoff:  # start_time: the head is fresh (the usual case)
            return Task(*row)
        pairs = tuple(value for product in products for value in (product, cutoff))
        row = self._db.execute(fresh_sql(len(products)), pairs).fetchone()
        if row is None:
            row = self._db.execute(stale_sql(len(products)), pairs).fetchone()
        return Task(*row)

    def _cutoff(self) -> str | None:
        """Start times before this (stored text) are stale; None when nothing is."""
        if not self.stale_hours:
            return None
        second = int(self.clock())
        if self._cutoff_of[0] != second:  # computed once a second, not per request
            now = utc_naive(dt.datetime.fromtimestamp(second, dt.UTC))
            self._cutoff_of = (second, stale_cutoff(now, self.stale_hours).strftime(START_FORMAT))
        return self._cutoff_of[1]

    def take(self, products: Iterable[str], lease: float | None = None) -> Task | None:
        """Hand out the next wanted task: removed, or leased for ``lease`` seconds."""
        with self.transaction():
            task = self.next_task(products)
            if task is None:
                return None
            if lease is None:
                return self._remove(task)
            task.lease_id = f"{task.id}-{secrets.token_hex(6)}"
            task.lease_expires = self.clock() + lease
            self._db.execute(
                "UPDATE tasks SET lease_id = ?, lease_expires = ? WHERE id = ?",
                (task.lease_id, task.lease_expires, task.id),
            )
            return task

    def _remove(self, task: Task) -> Task:
        self._db.execute("DELETE FROM tasks WHERE id = ?", (task.id,))
        rows = self._db.execute(
            "UPDATE granules SET task_id = NULL, handed_out_at = ? WHERE task_id = ? "
            "RETURNING granule_id",
            (self.clock(), task.id),
        ).fetchall()
        task.granule_ids = tuple(row[0] for row in rows)
        return task

    def put_back(self, task: Task) -> None:
        """Return a handed-out task to the head of the queue (its reply could not be sent)."""
        with self.transaction():
            self._head -= 1
            if task.lease_id is not None:
                self._db.execute(
                    "UPDATE tasks SET lease_id = NULL, lease_expires = NULL, position = ? "
                    "WHERE id = ?",
                    (self._head, task.id),
                )
                return
            self._db.execute(
                f"INSERT INTO tasks ({_COLUMNS}) VALUES ({', '.join('?' * 14)})",
                (task.id, self._head, *dataclasses.astuple(task)[2:12], None, None),
            )
            self._db.executemany(
                "UPDATE granules SET task_id = ?, handed_out_at = NULL WHERE granule_id = ?",
                [(task.id, granule_id) for granule_id in task.granule_ids],
            )

    def ack(self, lease_id: str) -> Task | None:
        """Finish a leased task; None when no task holds that lease (expired or unknown)."""
        with self.transaction():
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM tasks WHERE lease_id = ?", (lease_id,)
            ).fetchone()
            if row is None:
                return None
            return self._remove(Task(*row))

    def expire_leases(self) -> list[Task]:
        """Put tasks whose lease ran out back at the head of the queue, in their order."""
        with self.transaction():
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM tasks WHERE lease_expires IS NOT NULL "
                "AND lease_expires <= ? ORDER BY position DESC",
                (self.clock(),),
            ).fetchall()
            returned = []
            for row in rows:
                self._head -= 1
                self._db.execute(
                    "UPDATE tasks SET lease_id = NULL, lease_expires = NULL, position = ? "
                    "WHERE id = ?",
                    (self._head, row[0]),
                )
                returned.append(Task(*row))
            return returned[::-1]

    def next_lease_expiry(self) -> float | None:
        """When the next lease runs out (epoch seconds), or None."""
        return self._db.execute(
            "SELECT min(lease_expires) FROM tasks WHERE lease_expires IS NOT NULL"
        ).fetchone()[0]

    def forget_handed_out(self, memory: float = HANDED_OUT_MEMORY) -> int:
        """Forget granules handed out longer than ``memory`` seconds ago; return how many."""
        with self.transaction():
            return self._db.execute(
                "DELETE FROM granules WHERE task_id IS NULL AND handed_out_at < ?",
                (self.clock() - memory,),
            ).rowcount

    # --- the monitors' view ---------------------------------------------------------

    def state(self) -> dict:
        """Queue length, products waiting, count per product, oldest task's age, leases."""
        return queue_state(self._db, self.clock())

    def checkpoint_elsewhere(self) -> None:
        """Leave WAL checkpoints to a :class:`QueueReader` in another thread.

        A checkpoint writes and fsyncs the database file; done by the serving thread
        it would hold up every reply for tens of milliseconds now and then.
        """
        self._db.execute("PRAGMA wal_autocheckpoint=0")

    def queued(self) -> list[Task]:
        """Every waiting task in queue order (for tests and the status command)."""
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM tasks WHERE lease_expires IS NULL ORDER BY position"
        )
        return [Task(*row) for row in rows]


def queue_state(db: sqlite3.Connection, now: float) -> dict:
    """What monitors see on the state port: two original keys and a few more."""
    rows = db.execute(
        "SELECT product, count(*), min(queued_at) FROM tasks "
        "WHERE lease_expires IS NULL GROUP BY product ORDER BY product"
    ).fetchall()
    leased = db.execute("SELECT count(*) FROM tasks WHERE lease_expires IS NOT NULL").fetchone()
    oldest = min((row[2] for row in rows), default=None)
    return {
        "queue length": sum(row[1] for row in rows),
        "products waiting": [row[0] for row in rows],
        "tasks per product": {row[0]: row[1] for row in rows},
        "oldest task age": None if oldest is None else round(now - oldest, 1),
        "tasks leased": leased[0],
    }


class QueueReader:
    """A second connection to the queue, for another thread: the committed state, checkpoints."""

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time):
        self.clock = clock
        self._db = sqlite3.connect(Path(path), isolation_level=None, timeout=10)
        self._db.execute("PRAGMA synchronous=FULL")

    def state(self) -> dict:
        """The state of the queue as last committed."""
        return queue_state(self._db, self.clock())

    def checkpoint(self) -> None:
        """Copy committed pages from the WAL into the database without blocking the writer."""
        self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()

    def close(self) -> None:
        """Close the connection."""
        self._db.close()


@functools.cache
def oldest_sql(count: int) -> str:
    """One statement: an index seek per product for its first waiting task, the first of those.

    Never a scan of the queue, however many tasks of other products wait before it.
    """
    seek = (
        "SELECT * FROM (SELECT position, id FROM tasks WHERE lease_expires IS NULL "
        "AND product = ? ORDER BY position LIMIT 1)"
    )
    heads = " UNION ALL ".join([seek] * count)
    return (
        f"SELECT {_COLUMNS} FROM tasks WHERE id = "
        f"(SELECT id FROM ({heads}) ORDER BY position LIMIT 1)"
    )


@functools.cache
def fresh_sql(count: int) -> str:
    """The first fresh task in queue order: per product, the range of starts >= the cutoff.

    Parameters: (product, cutoff) per product. Asked only when the head is stale; the
    range holds the tasks of the last VIIRS_STALE_TASK_HOURS, never the backlog.
    """
    # min() reads the range once and keeps the id of its row (SQLite's bare column): no
    # sorter per product, which measured 2-8x slower now and then.
    seek = (
        "SELECT id, min(position) AS position FROM tasks INDEXED BY tasks_by_start "
        "WHERE lease_expires IS NULL AND product = ? AND start_time >= ?"
    )
    heads = " UNION ALL ".join([seek] * count)
    return (
        f"SELECT {_COLUMNS} FROM tasks WHERE id = "
        f"(SELECT id FROM ({heads}) WHERE id IS NOT NULL ORDER BY position LIMIT 1)"
    )


@functools.cache
def stale_sql(count: int) -> str:
    """The stale task of the newest granule (ties in queue order): one seek per product.

    Parameters: (product, cutoff) per product.
    """
    seek = (
        "SELECT * FROM (SELECT start_time, position, id FROM tasks INDEXED BY tasks_by_start "
        "WHERE lease_expires IS NULL AND product = ? AND start_time < ? "
        "ORDER BY start_time DESC, position LIMIT 1)"
    )
    heads = " UNION ALL ".join([seek] * count)
    return (
        f"SELECT {_COLUMNS} FROM tasks WHERE id = "
        f"(SELECT id FROM ({heads}) ORDER BY start_time DESC, position LIMIT 1)"
    )


def move_aside(path: Path, now: float | None = None) -> Path:
    """Rename a database and its WAL files to ``<name>.corrupt-<UTC time>``; return the new name."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        source = path.with_name(path.name + suffix)
        if source.exists():
            source.rename(aside.with_name(aside.name + suffix))
    return aside


def open_store(path: str | Path, log: logging.Logger, **options) -> TaskStore:
    """Open the queue; a corrupt or unreadable database is moved aside and the queue starts empty.

    Crash-looping on a broken file would stop every worker; an empty queue keeps new
    granules flowing while an operator looks at the file kept aside.
    """
    path = Path(path)
    try:
        return TaskStore(path, **options)
    except sqlite3.DatabaseError as error:
        aside = move_aside(path)
        log.error(
            "task queue %s is unreadable (%s): moved it to %s and started with an empty "
            "queue; its tasks are not served (inspect it with sqlite3)",
            path,
            error,
            aside,
        )
        return TaskStore(path, **options)
