"""The rules of ``viirscollector verify-sdr``: which files, in which order, what a check means.

No I/O here: verify_sdr lists sdr/, asks GINA, reads the files and hands the facts to
these functions, so the rules are tested directly.

Decisions:
- Newest granule first. A bad file found early is still inside GINA's listing and the
  mirror's window (GINA_BACKFILL_DAYS), so the mirror fetches it again at its next run;
  the oldest files are the ones least likely to be processed again at all.
- A file GINA lists must have GINA's MD5 and open as HDF5: what the mirror demands of
  every file it places. A file GINA no longer lists can only be checked for HDF5 (h5py
  refuses a truncated HDF5 file too: its superblock's end-of-file lies beyond the
  file's size); one whose bytes are wrong but still HDF5 passes that check.
- A file whose size, mtime or inode differs from when the verification began is not the
  file that was planned (the mirror placed it again after a quarantine, the cleanup
  removed it): it is skipped, not judged.
- A name that is not an SDR file name is left alone (it was not the mirror's).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from enum import StrEnum

from avoviirscollector import filenames
from avoviirscollector.filenames import SATELLITE_PLATFORMS

MB = 1e6
_SATELLITES = {platform: satellite for satellite, platform in SATELLITE_PLATFORMS.items()}


class Result(StrEnum):
    """What the check of one file found."""

    OK = "ok"  # GINA's MD5, opens as HDF5
    HDF5_ONLY = "ok-hdf5-only"  # GINA no longer lists it; opens as HDF5
    BAD_MD5 = "bad-md5"  # GINA lists other bytes: quarantined
    NOT_HDF5 = "not-hdf5"  # does not open as HDF5: quarantined
    GONE = "gone"  # no longer in sdr/
    CHANGED = "changed"  # another file under that name now (placed again by the mirror)
    UNREADABLE = "unreadable"  # we may not read it (another UID's 0600 file): left alone


#: Results that move the file out of sdr/.
QUARANTINED = frozenset({Result.BAD_MD5, Result.NOT_HDF5})


@dataclass(frozen=True)
class Planned:
    """One file of sdr/ as it was when the verification began."""

    name: str
    size: int
    mtime_ns: int
    inode: int


def plan(entries: Iterable[Planned]) -> list[Planned]:
    """The SDR files to check, newest granule first (then by name, for a stable order)."""
    keyed = []
    for entry in entries:
        try:
            parsed = filenames.parse(entry.name)
        except filenames.FilenameError:
            continue
        keyed.append((-parsed.start.timestamp(), entry.name, entry))
    keyed.sort(key=lambda item: item[:2])
    return [entry for _, _, entry in keyed]


def still_planned(entry: Planned, size: int, mtime_ns: int, inode: int) -> bool:
    """True when the file under the name is still the one the plan holds."""
    return (entry.size, entry.mtime_ns, entry.inode) == (size, mtime_ns, inode)


def verdict(
    listed_md5: str | None, actual_md5: str | None, hdf5_problem: str | None
) -> tuple[Result, str]:
    """The result of one check and a reason for the log.

    ``listed_md5`` None: GINA does not list the file; ``actual_md5`` None: not hashed
    (not needed then); ``hdf5_problem`` None: h5py opened it.
    """
    if listed_md5 is not None and actual_md5 is not None and actual_md5 != listed_md5.lower():
        return Result.BAD_MD5, f"MD5 {actual_md5} differs from GINA's {listed_md5.lower()}"
    if hdf5_problem is not None:
        return Result.NOT_HDF5, hdf5_problem
    if listed_md5 is None:
        return Result.HDF5_ONLY, "GINA no longer lists it; opens as HDF5 (MD5 not checkable)"
    return Result.OK, "GINA's MD5, opens as HDF5"


def satellites(entries: Iterable[Planned]) -> list[str]:
    """GINA's satellite names (snpp, noaa20, noaa21) of the planned files, sorted."""
    found = set()
    for entry in entries:
        try:
            platform = filenames.parse(entry.name).platform
        except filenames.FilenameError:
            continue
        if platform in _SATELLITES:
            found.add(_SATELLITES[platform])
    return sorted(found)


def query_days(entries: Iterable[Planned], today: dt.date, minimum: int) -> int:
    """Days of GINA's listing that cover every planned file's date (gina_catalog.query's
    window ends tomorrow and starts ``days`` before that)."""
    dates = [filenames.parse(e.name).start.date() for e in entries if filenames.is_sdr_name(e.name)]
    if not dates:
        return minimum
    return max(minimum, (today - min(dates)).days + 1)


def pause(bytes_read: int, seconds: float, rate_mb: float) -> float:
    """Seconds to wait so that reading ``bytes_read`` took at least bytes / rate."""
    if rate_mb <= 0:
        return 0.0
    return max(0.0, bytes_read / (rate_mb * MB) - seconds)


@dataclass
class Progress:
    """Counts of one verification (over every run of it) and of this run."""

    files_total: int
    bytes_total: int
    files_done: int = 0
    bytes_done: int = 0
    quarantined: int = 0
    run_bytes: int = 0
    run_seconds: float = 0.0

    @property
    def rate_mb(self) -> float:
        """MB/s this run achieved (reading and checking)."""
        return self.run_bytes / MB / self.run_seconds if self.run_seconds > 0 else 0.0

    @property
    def eta_seconds(self) -> float | None:
        """Seconds left at this run's rate (None before a rate is known)."""
        if self.rate_mb <= 0:
            return None
        return max(0, self.bytes_total - self.bytes_done) / MB / self.rate_mb


def duration(seconds: float | None) -> str:
    """'1 h 21 min', '4 min 05 s', '12 s', or 'unknown'."""
    if seconds is None:
        return "unknown"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def progress_line(progress: Progress) -> str:
    """One log line: files, MB, MB/s, ETA, quarantined."""
    p = progress
    share = 100.0 * p.bytes_done / p.bytes_total if p.bytes_total else 100.0
    return (
        f"{p.files_done:,} of {p.files_total:,} files, {p.bytes_done / MB:,.1f} of "
        f"{p.bytes_total / MB:,.1f} MB ({share:.1f}%), {p.rate_mb:.1f} MB/s, "
        f"ETA {duration(p.eta_seconds)}, {p.quarantined} quarantined"
    )


def done_line(name: str, result: Result, detail: str) -> str:
    """One line of the progress journal (state/verify-sdr-done.jsonl)."""
    return json.dumps({"name": name, "result": result.value, "detail": detail}) + "\n"


def parse_done(text: str) -> dict[str, Result]:
    """The journal's results by name; a torn last line (a kill mid-write) is ignored."""
    results: dict[str, Result] = {}
    for line in text.splitlines():
        try:
            record = json.loads(line)
            results[record["name"]] = Result(record["result"])
        except (ValueError, KeyError, TypeError):
            continue
    return results


def plan_to_json(entries: list[Planned]) -> str:
    """The plan as stored in state/verify-sdr-plan.json."""
    return json.dumps([asdict(e) for e in entries])


def plan_from_json(text: str) -> list[Planned]:
    """The stored plan; ValueError when it is not one."""
    try:
        return [Planned(**item) for item in json.loads(text)]
    except (TypeError, KeyError) as error:
        raise ValueError(f"not a verification plan: {error}") from None
