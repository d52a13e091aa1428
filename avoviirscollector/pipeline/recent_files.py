"""The SDR files that reached sdr/ recently: what a restarted daemon must look at again.

trollstalker publishes a file once, when it lands. A daemon that was down at that
moment (trollstalker itself, or a gatherer holding a half-collected granule) would
never see it, so at start both look back over the last minutes of sdr/. A file's
arrival time is the later of its mtime and ctime: the mirror may keep GINA's
modification time, but the rename into sdr/ always updates the ctime.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from avoviirscollector.filenames import is_sdr_name


def arrival_time(stat: os.stat_result) -> float:
    """When the file reached sdr/ (epoch seconds), as far as the file system tells."""
    return max(stat.st_mtime, stat.st_ctime)


def recent_files(
    sdr_dir: str | os.PathLike,
    minutes: float,
    now: float | None = None,
    after: float | None = None,
) -> list[Path]:
    """SDR files (regular, not hidden) that arrived in the last ``minutes``, oldest first.

    ``after`` (epoch seconds) narrows the window to files that arrived later than that.
    """
    now = time.time() if now is None else now
    since = now - minutes * 60
    if after is not None:
        since = max(since, after)
    found = []
    try:
        entries = list(os.scandir(sdr_dir))
    except FileNotFoundError:
        return []
    for entry in entries:
        if not is_sdr_name(entry.name):  # also refuses dot-files
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            arrived = arrival_time(entry.stat(follow_symlinks=False))
        except FileNotFoundError:  # deleted while we looked
            continue
        if arrived >= since:
            found.append((arrived, entry.name, Path(entry.path)))
    return [path for _, _, path in sorted(found)]
