"""How often mirror_gina asks GINA: fast when data can come, rarely otherwise. Pure rules.

GINA is a free public service; a client that asks every few seconds all day looks
abusive. Data only appears after a satellite passed over the antenna, and while it
comes, a granule follows every 85 s. So:

- **fast** (``fast`` seconds, 10 by default) from a predicted pass's rise until its
  data stopped arriving: some of the satellite's files arrived since the rise, none
  for ``hold`` seconds, and the satellite has set; or at the latest ``latency``
  seconds after it set (a pass the antenna missed ends there);
- **fast** too while new files keep appearing (the last arrival less than ``hold``
  seconds ago), whatever the predictions say, so missing, stale or wrong elements
  never cost more than one slow interval on the first granule of a pass;
- **slow** (``slow`` seconds, minutes) otherwise, waking early for the next pass.

When one poll needs several requests (the one-request-per-satellite fallback), the
fast interval stretches by that factor, so the requests per hour stay bounded.
Times are epoch seconds; nothing here reads a clock or a file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Pass:
    """A predicted pass of a satellite over the antenna: rise and set (epoch s), top elevation."""

    satellite: str
    rise: float
    fall: float
    max_elevation: float


@dataclass(frozen=True)
class Intervals:
    """The cadence settings, in seconds."""

    fast: float = 10.0
    slow: float = 120.0
    hold: float = 180.0
    latency: float = 1800.0


@dataclass(frozen=True)
class Cadence:
    """The interval to the next poll and why: ``reason`` is "pass <sat>", "arrivals" or "quiet"."""

    interval: float
    fast: bool
    reason: str
    until: float | None = None


def delivery_window(item: Pass, intervals: Intervals) -> tuple[float, float]:
    """From the pass's rise to ``latency`` after it set: when its data can appear at GINA."""
    return item.rise, item.fall + intervals.latency


def pass_active(item: Pass, now: float, last_arrival: float | None, intervals: Intervals) -> bool:
    """True while the pass's data can still come and has not visibly stopped coming."""
    start, end = delivery_window(item, intervals)
    if not start <= now < end:
        return False
    stopped = (
        last_arrival is not None
        and last_arrival >= item.rise
        and now >= item.fall
        and now - last_arrival >= intervals.hold
    )
    return not stopped


def cadence(
    now: float,
    passes: Sequence[Pass],
    arrivals: Mapping[str, float],
    intervals: Intervals,
    requests_per_poll: int = 1,
) -> Cadence:
    """The cadence at ``now``: fast for arrivals or an active pass, else slow."""
    fast = min(intervals.fast * max(1, requests_per_poll), intervals.slow)
    last = max(arrivals.values(), default=None)
    if last is not None and now - last < intervals.hold:
        return Cadence(fast, True, "arrivals", last + intervals.hold)
    active = [p for p in passes if pass_active(p, now, arrivals.get(p.satellite), intervals)]
    if active:
        first = min(active, key=lambda p: p.rise)
        return Cadence(fast, True, f"pass {first.satellite}", delivery_window(first, intervals)[1])
    return Cadence(intervals.slow, False, "quiet")


def next_poll(
    now: float,
    passes: Sequence[Pass],
    arrivals: Mapping[str, float],
    intervals: Intervals,
    requests_per_poll: int = 1,
) -> tuple[float, Cadence]:
    """When to poll after a poll at ``now``, and the cadence that says so.

    A slow interval ends early at the start of the next pass's delivery window.
    """
    current = cadence(now, passes, arrivals, intervals, requests_per_poll)
    due = now + current.interval
    if not current.fast:
        starts = [delivery_window(p, intervals)[0] for p in passes]
        upcoming = [s for s in starts if now < s < due]
        if upcoming:
            due = min(upcoming)
    return due, current


def next_pass(passes: Sequence[Pass], satellite: str, now: float) -> Pass | None:
    """The satellite's pass in progress or next to come."""
    ahead = [p for p in passes if p.satellite == satellite and p.fall > now]
    return min(ahead, key=lambda p: p.rise, default=None)


#: A cron start up to this many seconds before its poll is due polls: a poll's time is
#: taken when its process starts, a slot or two of seconds after cron's slot on a busy
#: machine; without the grace a 10 s cadence would become 15 s on cron's 5 s grid. Less
#: than cron's 5 s period, so polls still fall on slots at least 10 s apart.
GRACE = 2.0


def poll_due(
    next_poll_at: float | None,
    started_seen: float | None,
    started: float | None,
    now: float,
    have_state: bool = True,
) -> str | None:
    """Why a cron start polls now ("first run", "collector start", "due"), None when not.

    ``started``: when the collector (supervisord) started now; ``started_seen``: the
    start the last poll saw. A newer start means the first poll after a start.
    """
    if not have_state:
        return "first run"
    if started is not None and (started_seen is None or started > started_seen + 0.5):
        return "collector start"
    if next_poll_at is None or now >= next_poll_at - GRACE:
        return "due"
    return None
