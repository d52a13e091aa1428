"""What the history means: passes, gaps, complete granules, delay buckets. No I/O.

The recorder stores raw events (a file arrived, a granule was published, the queue
held N tasks); the page and the metrics read them through these rules, so what
"a pass", "a gap" or "a complete granule" is can be read and tested in one place.
Times are epoch seconds (UTC).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

#: Granules of one satellite whose starts are closer than this belong to one pass
#: (a granule lasts ~85 s; the next pass over Alaska is ~100 minutes later).
PASS_GAP = 15 * 60.0
#: A pause between two files of one satellite longer than this is listed as a gap:
#: longer than the usual ~100 min between passes, so it is worth a look.
GAP_THRESHOLD = 3 * 3600.0
#: Upper bounds (s) of the acquisition-delay histogram: minutes to hours, as GINA's
#: near-real-time files arrive 10-40 minutes after the granule starts.
DELAY_BUCKETS = (60, 300, 600, 900, 1200, 1800, 2700, 3600, 5400, 7200, 10800, 21600)
#: History kept when VIIRS_RETENTION is unset (the files are then never deleted,
#: but the history must still be bounded).
DEFAULT_HISTORY_DAYS = 14
#: Windows the page offers (hours), and the largest the API accepts.
WINDOWS = (6, 24, 72, 168)
MAX_WINDOW_HOURS = 24 * 31


class BadParameter(ValueError):
    """A query parameter the page cannot use; the message is the 400's reason."""


@dataclass(slots=True)
class FileEvent:
    """One file that reached sdr/."""

    name: str
    platform: str
    segment: str
    orbit: int
    start: float
    arrival: float

    @property
    def delay(self) -> float:
        """Acquisition delay: arrival minus the granule's start."""
        return self.arrival - self.start

    @property
    def granule(self) -> tuple[str, int, float]:
        """Files with the same key belong to one granule."""
        return (self.platform, self.orbit, self.start)


@dataclass
class Granule:
    """The files of one granule that arrived, and per product what is still missing."""

    platform: str
    orbit: int
    start: float
    segments: set[str] = field(default_factory=set)
    missing: dict[str, list[str]] = field(default_factory=dict)
    published: set[str] = field(default_factory=set)


@dataclass
class Pass:
    """Consecutive granules of one satellite."""

    platform: str
    granules: list[Granule]

    @property
    def start(self) -> float:
        """The first granule's start."""
        return self.granules[0].start

    @property
    def end(self) -> float:
        """The last granule's start."""
        return self.granules[-1].start


def history_days(retention_days: int | None) -> int:
    """Days of history kept: VIIRS_RETENTION's, else DEFAULT_HISTORY_DAYS."""
    return retention_days or DEFAULT_HISTORY_DAYS


def parse_hours(raw: str | None, default: int, limit: int = MAX_WINDOW_HOURS) -> int:
    """The ``hours`` query parameter: a whole number of hours from 1 to ``limit``."""
    if raw is None or raw == "":
        return default
    if not raw.isdigit():
        raise BadParameter(f"hours={raw!r}: expected a whole number of hours from 1 to {limit}")
    hours = int(raw)
    if not 1 <= hours <= limit:
        raise BadParameter(f"hours={raw!r}: expected a whole number of hours from 1 to {limit}")
    return hours


def missing_per_product(
    present: Iterable[str], products: Mapping[str, Iterable[str]]
) -> dict[str, list[str]]:
    """product -> the segments it needs that are not there (empty: complete)."""
    present = set(present)
    return {product: sorted(set(needed) - present) for product, needed in products.items()}


def granules_of(
    files: Iterable[FileEvent],
    products: Mapping[str, Iterable[str]],
    published: Iterable[tuple[str, str, int, float]] = (),
) -> list[Granule]:
    """Granules of ``files``, oldest first, each with what every product still lacks.

    ``published``: (product, platform, orbit, start) of granule messages seen.
    """
    found: dict[tuple, Granule] = {}
    for event in files:
        granule = found.get(event.granule)
        if granule is None:
            granule = found[event.granule] = Granule(event.platform, event.orbit, event.start)
        granule.segments.add(event.segment)
    for product, platform, orbit, start in published:
        granule = found.get((platform, orbit, start))
        if granule is not None:
            granule.published.add(product)
    for granule in found.values():
        granule.missing = missing_per_product(granule.segments, products)
    return sorted(found.values(), key=lambda g: (g.start, g.platform))


def passes_of(granules: Iterable[Granule], gap: float = PASS_GAP) -> list[Pass]:
    """Granules grouped into passes per satellite, newest pass first."""
    by_platform: dict[str, list[Granule]] = {}
    for granule in sorted(granules, key=lambda g: g.start):
        by_platform.setdefault(granule.platform, []).append(granule)
    found = []
    for platform, granules in by_platform.items():
        current: list[Granule] = []
        for granule in granules:
            if current and granule.start - current[-1].start > gap:
                found.append(Pass(platform, current))
                current = []
            current.append(granule)
        if current:
            found.append(Pass(platform, current))
    return sorted(found, key=lambda p: p.end, reverse=True)


def gaps(arrivals: Iterable[float], threshold: float = GAP_THRESHOLD) -> list[tuple[float, float]]:
    """(from, to) of every pause between consecutive arrivals longer than ``threshold``."""
    ordered = sorted(arrivals)
    return [(a, b) for a, b in zip(ordered, ordered[1:], strict=False) if b - a > threshold]


def longest_gap(arrivals: Iterable[float], until: float) -> float | None:
    """The longest pause between arrivals, counting the time since the last one."""
    ordered = sorted(arrivals)
    if not ordered:
        return None
    pauses = [b - a for a, b in zip(ordered, ordered[1:], strict=False)]
    pauses.append(max(until - ordered[-1], 0.0))
    return max(pauses)


def delay_bucket(delay: float) -> str:
    """The histogram bucket (its upper bound, as Prometheus writes it) of a delay."""
    for bound in DELAY_BUCKETS:
        if delay <= bound:
            return str(bound)
    return "+Inf"


def cumulative(counts: Mapping[str, float]) -> list[tuple[str, float]]:
    """Per-bucket counts (delay_bucket's keys) -> Prometheus' cumulative buckets, +Inf last."""
    total, out = 0.0, []
    for bound in [*map(str, DELAY_BUCKETS), "+Inf"]:
        total += counts.get(bound, 0)
        out.append((bound, total))
    return out


def median(values: Iterable[float]) -> float | None:
    """The median, None for no value."""
    ordered = sorted(values)
    if not ordered:
        return None
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def days_of_disk(used: float, per_day: float) -> float:
    """How many days ``used`` bytes hold at ``per_day`` bytes a day (inf for no volume)."""
    return math.inf if per_day <= 0 else used / per_day
