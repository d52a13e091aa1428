"""How operator commands write ages, durations and sizes: short, the same everywhere."""

from __future__ import annotations

import datetime as dt


def duration(seconds: float) -> str:
    """``4.2 s``, ``12 min 03 s``, ``3 h 07 min``, ``2 d 05 h``; negative is shown as such."""
    if seconds < 0:
        return "-" + duration(-seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    if whole < 86400:
        return f"{whole // 3600} h {whole % 3600 // 60:02d} min"
    return f"{whole // 86400} d {whole % 86400 // 3600:02d} h"


def size(count: float) -> str:
    """Bytes in decimal units (GB as disks and the 36 GB/day figure use them)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(count) < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")


def utc_naive(moment: dt.datetime) -> dt.datetime:
    """Naive UTC, the way our messages carry times; aware times are converted."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return moment


def stamp(moment: dt.datetime) -> str:
    """``2024-05-01T12:03:10Z`` for the left edge of a line."""
    return utc_naive(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def now() -> dt.datetime:
    """The current time as naive UTC."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)
