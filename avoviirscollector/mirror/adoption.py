"""Taking over the original collector's volume: its tmp/ leftovers, its logs, the quarantine.

``viirscollector run`` calls :func:`take_over` before supervisord starts (at every start:
the rules in :mod:`adoption_rules` match only the original's names, so after the first
start there is nothing left to match): the original's partial downloads and lock files
leave tmp/, and log files supervisord could not append to (another UID's) are moved
aside, so the collector logs to the names it always uses. verify-sdr calls
:func:`quarantine` for a file of sdr/ that is not GINA's or not HDF5.

Quarantine: the file is renamed (same file system, atomic, bytes untouched) into
``quarantine/``, its mtime set to the time of the quarantine so that the nightly
retention keeps it for VIIRS_RETENTION days from then, and a ``<name>.json`` beside it
records why, with the file's original mtime and size. Nothing of ours ever deletes a
quarantined file; only the retention does, like every other file of the volume.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import stat
import tempfile
import time
from pathlib import Path

from avoviirscollector.mirror.adoption_rules import (
    aside_name,
    is_our_log,
    original_leftover,
    our_log_names,
    quarantine_name,
)

log = logging.getLogger("adoption")


def _held_by_a_process(path: Path) -> bool:
    """True when some process holds a flock on the file (the original still running)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
    return False


def remove_original_leftovers(tmp_dir: Path) -> list[str]:
    """Delete the original's partial downloads and lock files directly in tmp/.

    Only regular files whose names :func:`original_leftover` recognises; nothing below
    tmp/'s subdirectories, no symbolic link, nothing else. A lock some process holds is
    kept (the original may still be running on this volume). Returns one line per
    action, for ``viirscollector run`` to print.
    """
    lines, removed, freed = [], 0, 0
    try:
        entries = list(os.scandir(tmp_dir))
    except FileNotFoundError:
        return lines
    for entry in entries:
        kind = original_leftover(entry.name)
        if kind is None:
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(info.st_mode):
            continue
        path = Path(entry.path)
        if kind.startswith("lock") and _held_by_a_process(path):
            lines.append(
                f"kept {path}: a process holds this lock; is the original collector still "
                "running on this volume? Stop it: two collectors must not share one volume"
            )
            continue
        try:
            path.unlink()
        except OSError as error:
            lines.append(f"could not remove {path} ({kind}): {error.strerror}")
            continue
        removed += 1
        freed += info.st_size
        lines.append(f"removed {path}: {kind}, {info.st_size} bytes")
    if removed:
        lines.append(
            f"removed {removed} leftover(s) of the original collector from {tmp_dir} "
            f"({freed / 1e6:.1f} MB); nothing else in it was touched"
        )
    return lines


def _writable(path: Path, directory: bool = False) -> bool:
    """Can we write it? Tried for real (os.access says yes to root, whatever the file)."""
    try:
        if directory:
            with tempfile.TemporaryFile(dir=path):
                pass
        else:
            with open(path, "ab"):  # appending nothing changes neither bytes nor mtime
                pass
    except PermissionError:
        return False
    return True


def move_aside_unwritable_logs(log_dir: Path, conf: Path, base_dir: Path) -> list[str]:
    """Move aside log files supervisord.conf names that we cannot append to; one line each.

    A log directory we cannot write in at all is itself moved aside (``log.original-<uid>``)
    and made again. Raises OSError when even that is impossible.
    """
    uid, lines = os.getuid(), []
    if log_dir.is_dir() and not _writable(log_dir, directory=True):
        owner = log_dir.stat().st_uid
        aside = log_dir.with_name(aside_name(log_dir.name, owner, set(os.listdir(base_dir))))
        os.rename(log_dir, aside)
        log_dir.mkdir()
        lines.append(
            f"{log_dir} belongs to uid {owner} and is not writable by uid {uid}: moved aside "
            f"to {aside}; this collector logs to a new {log_dir}"
        )
    ours = our_log_names(conf.read_text(), str(base_dir))
    for entry in sorted(os.scandir(log_dir), key=lambda e: e.name):
        if not is_our_log(entry.name, ours) or not entry.is_file(follow_symlinks=False):
            continue
        path = Path(entry.path)
        if _writable(path):
            continue
        owner = entry.stat(follow_symlinks=False).st_uid
        aside = log_dir / aside_name(entry.name, owner, set(os.listdir(log_dir)))
        os.rename(path, aside)
        lines.append(
            f"{path} belongs to uid {owner} and is not writable by uid {uid}: moved aside to "
            f"{aside.name} (kept as it is); this collector logs to {path.name}"
        )
    return lines


def take_over(tmp_dir: Path, log_dir: Path, conf: Path, base_dir: Path) -> list[str]:
    """What ``viirscollector run`` does for the original's volume; the lines to print."""
    return move_aside_unwritable_logs(log_dir, conf, base_dir) + remove_original_leftovers(tmp_dir)


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def quarantine(path: Path, quarantine_dir: Path, reason: dict) -> Path:
    """Move ``path`` into quarantine/ with a ``.json`` record of ``reason``; its new path.

    The record is written first, so a crash between the two leaves a record without a
    file (harmless), never a quarantined file without its reason.
    """
    quarantine_dir.mkdir(parents=True, exist_ok=True)
    info = os.stat(path)
    target = quarantine_dir / quarantine_name(path.name, set(os.listdir(quarantine_dir)))
    now = time.time()
    record = {
        "name": path.name,
        "from": str(path),
        "quarantined": dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "original_mtime": dt.datetime.fromtimestamp(info.st_mtime, dt.UTC).isoformat(),
        "size": info.st_size,
        "uid": info.st_uid,
        **reason,
    }
    sidecar = target.with_name(f"{target.name}.json")
    temporary = sidecar.with_name(f".{sidecar.name}.tmp")
    temporary.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(temporary, sidecar)
    os.rename(path, target)
    try:
        os.utime(target, (now, now))
    except PermissionError:  # another UID's file: the retention counts from its own mtime
        log.warning("%s: cannot set its time (owned by uid %d)", target, info.st_uid)
    _fsync_directory(quarantine_dir)
    _fsync_directory(path.parent)
    return target
