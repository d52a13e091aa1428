"""``viirscollector cleanup [--dry-run]``: delete what is older than VIIRS_RETENTION days.

The rules live in :mod:`avoviirscollector.jobs.retention`; this module scans, asks the
rules, and deletes. How it stays safe:

- It scans with ``os.scandir`` and ``lstat`` only: a symbolic link is an entry like
  any other (deleted when old, as a link), never followed, so nothing outside the
  base directory is ever seen, let alone deleted.
- Files in use: every ``/proc/<pid>/fd/<n>`` is stat'ed, and a file whose (device,
  inode) a process holds open is kept (supervisord's and the daemons' logs, the task
  database and its WAL, a lock held by a running mirror). Processes of other users
  cannot be inspected unless we run as root; in the container every daemon runs as
  the same user. Memory-mapped files that are not also open are not seen.
- Just before deleting a file it is lstat'ed again: one that changed since the scan
  (a new mtime, or now a different file) is left for the next night.
- A directory is removed with ``rmdir``, which refuses one that is not empty, so a
  file created in it after the scan is never lost.

VIIRS_RETENTION unset means "never delete": the command says so and does nothing.
(The original's cron line ``$VIIRS_RETENTION && find …`` ran the number as a command,
and a later version inverted the test: neither ever deleted anything.)
"""

from __future__ import annotations

import argparse
import logging
import os
import stat
import sys
import time
from pathlib import Path, PurePosixPath

from avoviirscollector.jobs import retention
from avoviirscollector.settings import LAYOUT

log = logging.getLogger("cleanup")


def _kind(mode: int) -> retention.Kind:
    if stat.S_ISLNK(mode):
        return retention.Kind.SYMLINK
    if stat.S_ISDIR(mode):
        return retention.Kind.DIR
    if stat.S_ISREG(mode):
        return retention.Kind.FILE
    return retention.Kind.OTHER


def open_files(proc: Path = Path("/proc")) -> set[tuple[int, int]]:
    """(device, inode) of every file some process we may inspect holds open."""
    found: set[tuple[int, int]] = set()
    try:
        pids = [p for p in os.listdir(proc) if p.isdigit()]
    except OSError:
        return found
    for pid in pids:
        fd_dir = proc / pid / "fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:  # gone, or another user's process
            continue
        for fd in fds:
            try:
                info = os.stat(fd_dir / fd)
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode):
                found.add((info.st_dev, info.st_ino))
    return found


def scan(base: Path, in_use: set[tuple[int, int]]) -> list[retention.Entry]:
    """Every entry below ``base``, without following any symbolic link.

    A directory that cannot be opened, or whose listing fails part way (EIO, ESTALE on
    a network volume), costs one warning: what was read of it and everything else is
    still cleaned; a nightly cleanup never ends on one bad directory.
    """
    entries: list[retention.Entry] = []
    pending = [base]
    while pending:
        directory = pending.pop()
        try:
            iterator = os.scandir(directory)
        except OSError as error:
            log.warning("cannot read %s (%s); nothing below it is cleaned up", directory, error)
            continue
        with iterator:
            for item in _listing(iterator, directory):
                entry = _entry(item, base, in_use)
                if entry is None:
                    continue
                entries.append(entry)
                if entry.kind is retention.Kind.DIR:
                    pending.append(Path(item.path))
    return entries


def _listing(iterator, directory: Path):
    """The entries of one directory, ending with a warning if reading it fails midway."""
    while True:
        try:
            yield next(iterator)
        except StopIteration:
            return
        except OSError as error:
            log.warning(
                "reading %s failed part way (%s); the rest of it waits for the next cleanup",
                directory,
                error,
            )
            return


def _entry(item: os.DirEntry, base: Path, in_use: set[tuple[int, int]]) -> retention.Entry | None:
    try:
        info = item.stat(follow_symlinks=False)
    except OSError:
        return None  # vanished since listing
    return retention.Entry(
        PurePosixPath(os.path.relpath(item.path, base)),
        _kind(info.st_mode),
        info.st_mtime,
        info.st_size,
        (info.st_dev, info.st_ino) in in_use,
    )


#: The directories that make a directory a collector's base (``viirscollector run`` creates
#: them with the rest of LAYOUT; a layout that grows later must not make cleanup refuse).
SIGNATURE = ("sdr", "tmp", "log", "state")


class NotABaseDirectory(Exception):
    """The directory to clean is not a collector's: cleaning it could delete anything."""


def check_base(base: Path) -> Path:
    """The base directory, resolved (``/tmp/x/..`` is ``/tmp``), if it has the collector's
    layout; NotABaseDirectory otherwise. VIIRS_BASE_DIR is trusted with deletions only
    when ``viirscollector run`` has made it (sdr/ tmp/ log/ state/ at least)."""
    resolved = Path(os.path.realpath(base))
    shown = str(base) if resolved == base else f"{base} (that is {resolved})"
    if not resolved.is_dir():
        raise NotABaseDirectory(f"base directory {shown} does not exist")
    if resolved == Path("/"):
        raise NotABaseDirectory(f"refusing to clean {shown}: / is never a base directory")
    missing = [n for n in SIGNATURE if (resolved / n).is_symlink() or not (resolved / n).is_dir()]
    if missing:
        raise NotABaseDirectory(
            f"refusing to clean {shown}: it has no {'/, '.join(missing)}/, so it is not a "
            "collector's base directory (viirscollector run creates its layout)"
        )
    return resolved


def _unchanged(path: Path, entry: retention.Entry) -> bool:
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return info.st_mtime == entry.mtime and _kind(info.st_mode) is entry.kind


def execute(base: Path, plan: retention.Plan) -> tuple[int, int, int]:
    """Delete what the plan says; return (files deleted, bytes freed, directories removed)."""
    files = freed = dirs = 0
    for entry in plan.files:
        path = base / entry.path
        if not _unchanged(path, entry):
            log.info("%s changed since the scan; kept until the next cleanup", entry.path)
            continue
        try:
            os.unlink(path)
        except FileNotFoundError:
            continue
        except OSError as error:
            log.error("could not delete %s: %s", path, error)
            continue
        files += 1
        freed += entry.size
    for relative in plan.dirs:
        try:
            os.rmdir(base / relative)
            dirs += 1
        except OSError:
            pass  # not empty any more (a new file arrived), or gone: fine either way
    return files, freed, dirs


def _megabytes(count: int) -> str:
    return f"{count / 1e6:.1f} MB"


def _report_kept(plan: retention.Plan) -> None:
    for entry in plan.kept_in_use:
        log.info("kept %s: older than the retention but open in a running process", entry.path)


def cleanup(base: Path, days: int, dry_run: bool = False, now: float | None = None) -> int:
    """Scan, plan and delete (or list, for a dry run). Returns an exit status (2: refused)."""
    try:
        base = check_base(base)
    except NotABaseDirectory as refusal:
        log.error("%s; nothing cleaned up", refusal)
        return 2
    started = time.monotonic()
    now = time.time() if now is None else now
    entries = scan(base, open_files())
    plan = retention.plan(entries, now, days, protected=LAYOUT)
    _report_kept(plan)
    if dry_run:
        for entry in plan.files:
            print(f"would delete {base / entry.path}  ({entry.size} bytes)")
        for relative in plan.dirs:
            print(f"would remove empty directory {base / relative}")
        log.info(
            "dry run: %d file(s) (%s) and %d directory(ies) older than %d day(s) would go; "
            "%d kept as in use; %d entries scanned in %.1f s",
            len(plan.files),
            _megabytes(plan.bytes),
            len(plan.dirs),
            days,
            len(plan.kept_in_use),
            len(entries),
            time.monotonic() - started,
        )
        return 0
    files, freed, dirs = execute(base, plan)
    log.info(
        "deleted %d file(s) older than %d day(s), freed %s, removed %d empty director(ies); "
        "%d kept as in use; %d entries scanned in %.1f s",
        files,
        days,
        _megabytes(freed),
        dirs,
        len(plan.kept_in_use),
        len(entries),
        time.monotonic() - started,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``viirscollector cleanup``."""
    parser = argparse.ArgumentParser(
        prog="viirscollector cleanup",
        description="Delete every file under the base directory older than VIIRS_RETENTION days.",
    )
    parser.add_argument("--dry-run", action="store_true", help="list what would go, delete nothing")
    args = parser.parse_args(argv)
    from avoviirscollector import logs, settings

    config = settings.load_or_exit()
    logs.setup("cleanup", config)
    if config.retention_days is None:
        log.info("VIIRS_RETENTION is not set: keeping everything (set it to a number of days)")
        return 0
    return cleanup(config.base_dir, config.retention_days, dry_run=args.dry_run)


if __name__ == "__main__":
    sys.exit(main())
