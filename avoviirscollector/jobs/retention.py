"""What the nightly cleanup deletes: the retention rules, with no I/O.

Given what a scan of the base directory found (:class:`Entry`), the time now and the
number of days to keep, :func:`plan` decides:

- every regular file and every symbolic link (the link itself, never what it points
  to) whose modification time is more than ``days`` × 24 h before now is deleted,
  wherever it is below the base directory: data, logs, TLEs, temp files, anything;
- except a file that a running process holds open (``in_use``): supervisord's logs,
  the task database, a download in progress. It is kept and reported;
- sockets, FIFOs and devices are never deleted (supervisord's control socket keeps
  the mtime of its creation, however long ago that was, and cannot be seen as "open");
- a directory is removed when nothing is left in it, it is itself older than the
  cutoff (a directory just created for a download is left alone) and it is not one
  of the layout's top-level directories nor the base directory.

Paths are relative to the base directory; a path with ``..`` or an absolute path
is refused, so the plan can never name anything outside it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import PurePosixPath

DAY_SECONDS = 86400.0


class Kind(Enum):
    """What a directory entry is (from lstat: symlinks are never followed)."""

    FILE = "file"
    SYMLINK = "symlink"
    DIR = "dir"
    OTHER = "other"  # socket, FIFO, device


@dataclass(frozen=True)
class Entry:
    """One entry found below the base directory."""

    path: PurePosixPath
    kind: Kind
    mtime: float
    size: int = 0
    in_use: bool = False


@dataclass
class Plan:
    """What to delete, in the order to do it."""

    files: list[Entry] = field(default_factory=list)
    dirs: list[PurePosixPath] = field(default_factory=list)
    kept_in_use: list[Entry] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        """Bytes the deletions free (symlinks count as their own size only)."""
        return sum(entry.size for entry in self.files)


def _check(path: PurePosixPath) -> None:
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise ValueError(f"{path} is not a path below the base directory")


def _expired(entry: Entry, cutoff: float) -> bool:
    return entry.mtime < cutoff


def _files(entries: list[Entry], cutoff: float, result: Plan) -> set[PurePosixPath]:
    """Sort expired files into delete / kept-in-use; return directories that keep something."""
    keeps_something: set[PurePosixPath] = set()
    for entry in entries:
        _check(entry.path)
        if entry.kind is Kind.DIR:
            continue
        if entry.kind in (Kind.FILE, Kind.SYMLINK) and _expired(entry, cutoff):
            if not entry.in_use:
                result.files.append(entry)
                continue
            result.kept_in_use.append(entry)
        keeps_something.update(entry.path.parents)
    return keeps_something


def plan(entries: Iterable[Entry], now: float, days: int, protected: Iterable[str] = ()) -> Plan:
    """Decide what a cleanup with ``days`` of retention deletes at time ``now``.

    ``protected`` names top-level directories that stay even when empty (the layout).
    """
    if days < 1:
        raise ValueError("retention must be at least one day")
    cutoff = now - days * DAY_SECONDS
    entries = list(entries)
    result = Plan()
    keeps_something = _files(entries, cutoff, result)
    protected_dirs = {PurePosixPath(name) for name in protected}
    directories = [e for e in entries if e.kind is Kind.DIR]
    staying = {e.path for e in directories if not _expired(e, cutoff) or e.path in protected_dirs}
    for path in staying:
        keeps_something.update(path.parents)
    # Deepest first, so a directory is empty by the time its parent is tried.
    for entry in sorted(directories, key=lambda e: len(e.path.parts), reverse=True):
        if entry.path not in keeps_something and entry.path not in staying:
            result.dirs.append(entry.path)
    result.files.sort(key=lambda e: e.path)
    return result
