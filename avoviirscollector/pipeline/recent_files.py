"""Which files of sdr/ a restarted daemon must look at again, and which it must leave alone.

trollstalker publishes a file once, when it lands. A daemon that was down at that
moment (trollstalker itself, a gatherer holding a half-collected granule, the broker
that never got the granule) would never see it, so the stalker's catch-up and the
gatherers' replays look at sdr/ again, from a point in time they know.

When a file reached sdr/ is its ctime: the rename into sdr/ sets it, and nothing but
the clock can move it. The mtime says nothing reliable (the mirror or ``cp -p`` may
keep another host's time, a day ahead or a year behind), so it never decides what is
caught up after a restart.

The first start on a sdr/ that is already full (the original collector's volume, or
our state lost) takes the files already there as processed: a :class:`Baseline` in
state/ records when that was, and the files it covered are never replayed by
themselves (``viirscollector reprocess`` queues them when wanted). Only there do the
files' own times count: the original's files were copied under our nose, so their
ctimes are recent, and what is "old" is what their mtimes (and ctimes) both say is old.

A file that is empty or has no HDF5 signature (dropped in by hand) is not an SDR
file's content: :func:`content_problem` says so in microseconds (h5py's open takes
milliseconds, see docs/benchmarks.md), and the pipeline skips it with one warning.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from avoviirscollector.filenames import is_sdr_name

log = logging.getLogger(__name__)

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
#: HDF5 puts its superblock at 0, 512, 1024, 2048, ... (a user block before it).
_SIGNATURE_OFFSETS = (0, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)
BASELINE_NAME = "sdr-baseline.json"
#: trollstalker's watermark in state/ (stalker.py): the arrival of the newest file it published.
WATERMARK_NAME = "trollstalker-watermark"


def arrival_time(stat: os.stat_result) -> float:
    """When the file reached sdr/ (epoch seconds): its ctime, whatever its mtime says."""
    return stat.st_ctime


def file_time(stat: os.stat_result) -> float:
    """The oldest time the file shows (mtime or ctime): what "old" means at a first start
    and for ``viirscollector reprocess --since/--until``."""
    return min(stat.st_mtime, stat.st_ctime)


def utc(epoch: float) -> str:
    """An epoch time for log lines and commands, e.g. 2026-12-01T08:50:12Z."""
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def content_problem(path: str | os.PathLike, size: int | None = None) -> str | None:
    """Why ``path`` cannot be an SDR file (empty, no HDF5 signature), or None if it may be."""
    try:
        if size is None:
            size = os.stat(path).st_size
        if size == 0:
            return "it is empty (0 bytes)"
        with open(path, "rb") as stream:
            for offset in _SIGNATURE_OFFSETS:
                if offset + len(HDF5_SIGNATURE) > size:
                    break
                stream.seek(offset)
                if stream.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
                    return None
    except OSError as error:
        return f"it cannot be read ({error.strerror})"
    return f"it is not HDF5 (no HDF5 signature in its first {min(size, 65536)} bytes)"


def granule_key(name: str) -> tuple[str, ...] | None:
    """platform, date, start, end and orbit from a name shaped like an SDR file's, cheaply.

    Parsing a name with trollsift costs about 120 us; sdr/ holds 21,000 files a week.
    The full parse is left to the files that are then published.
    """
    parts = name.split("_")
    if name.startswith(".") or not name.endswith(".h5") or len(parts) < 7:
        return None
    return tuple(parts[1:6])


@dataclass(frozen=True)
class SdrFile:
    """A file of sdr/ named like an SDR file, and its times."""

    path: Path
    granule: tuple[str, ...]
    arrived: float
    time: float
    size: int


def scan(sdr_dir: str | os.PathLike) -> list[SdrFile]:
    """The regular files of sdr/ named like SDR files (not hidden), oldest arrival first."""
    found = []
    try:
        entries = list(os.scandir(sdr_dir))
    except FileNotFoundError:
        return []
    for entry in entries:
        key = granule_key(entry.name)
        if key is None:
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            stat = entry.stat(follow_symlinks=False)
        except FileNotFoundError:  # deleted while we looked
            continue
        times = arrival_time(stat), file_time(stat)
        found.append(SdrFile(Path(entry.path), key, *times, stat.st_size))
    return sorted(found, key=lambda f: (f.arrived, f.path.name))


@dataclass(frozen=True)
class Baseline:
    """The first start on this sdr/: files there then and older than ``window`` are done."""

    created: float
    window: float

    def taken(self, file: SdrFile) -> bool:
        """True for a file the first start took as already processed."""
        return file.arrived <= self.created and file.time < self.created - self.window

    @property
    def cutoff(self) -> float:
        """Files older than this (by :func:`file_time`) were taken as processed."""
        return self.created - self.window


def load_baseline(
    state_dir: str | os.PathLike, window: float, now: float | None = None
) -> tuple[Baseline, bool]:
    """The baseline of this base directory, made now if there is none; (baseline, made now).

    The first program to start makes it (O_EXCL): the stalker and the gatherers start
    together and must agree on one.
    """
    path = Path(state_dir) / BASELINE_NAME
    for _ in range(3):
        try:
            raw = json.loads(path.read_text())
            return Baseline(float(raw["created"]), float(raw["window_seconds"])), False
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError) as error:
            log.warning("cannot read %s (%s); making a new one", path, error)
            path.unlink(missing_ok=True)
        made = time.time() if now is None else now
        try:  # a collector of ours ran here before the baseline existed: since its watermark
            made = min(made, float((Path(state_dir) / WATERMARK_NAME).read_text()))
        except (OSError, ValueError):
            pass
        baseline = Baseline(made, window)
        text = json.dumps({"created": baseline.created, "window_seconds": window})
        try:
            Path(state_dir).mkdir(parents=True, exist_ok=True)
            with open(path, "x") as stream:  # only the first program wins
                stream.write(text)
                stream.flush()
                os.fsync(stream.fileno())
            return baseline, True
        except FileExistsError:
            time.sleep(0.05)  # another program is writing it: read theirs
    return baseline, False


def granule_files(
    files: Iterable[SdrFile], after: float, baseline: Baseline | None = None
) -> list[SdrFile]:
    """Every file of each granule that has a file arrived at or after ``after``.

    Whole granules: a granule whose geolocation arrived before ``after`` and whose
    band arrived after it must be replayed complete. Files the first start took as
    processed are left out. Oldest arrival first.
    """
    files = [f for f in files if baseline is None or not baseline.taken(f)]
    wanted = {f.granule for f in files if f.arrived >= after}
    return [f for f in files if f.granule in wanted]


def recent_files(
    sdr_dir: str | os.PathLike,
    minutes: float,
    now: float | None = None,
    after: float | None = None,
) -> list[Path]:
    """SDR files that arrived in the last ``minutes`` (and after ``after``), oldest first."""
    now = time.time() if now is None else now
    since = now - minutes * 60
    if after is not None:
        since = max(since, after)
    return [f.path for f in scan(sdr_dir) if f.arrived >= since and is_sdr_name(f.path.name)]


def report_beyond_limit(
    log: logging.Logger, program: str, files: list[SdrFile], after: float, limit: float
) -> None:
    """An error (mailed) naming the files an outage longer than the replay limit left out."""
    left_out = [f for f in files if after <= f.arrived < limit]
    if not left_out:
        return
    since = min(f.time for f in left_out)
    until = max(f.time for f in left_out) + 1
    log.error(
        "%s: %d file(s) reached sdr/ between %s and %s, longer ago than the replay limit "
        "(GINA_BACKFILL_DAYS, the broker's memory): not replayed; to queue them: "
        "viirscollector reprocess --since %s --until %s",
        program,
        len(left_out),
        utc(left_out[0].arrived),
        utc(left_out[-1].arrived),
        utc(since),
        utc(until),
    )
