"""What makes a program unhealthy beyond its state: pure rules, no I/O (health.py reads).

A snapshot of supervisord's states misses two failures (issue 11):

- a program that keeps crashing but lives longer than ``startsecs`` each time reads
  RUNNING most of the time; supervisord's own log says ``exited: NAME (...; not
  expected)`` at every crash, so :func:`restarting` counts those lines in the last
  :data:`RESTART_WINDOW` seconds;
- a daemon whose worker thread died stays RUNNING; its heartbeat file
  (``avoviirscollector.liveness``) says so, or stops changing: :func:`heartbeat_problem`.
"""

from __future__ import annotations

import re
import time
from collections import Counter

#: Unexpected exits counted over this many seconds...
RESTART_WINDOW = 600.0
#: ...this many make a program "restarting" (one crash and a good restart is not a loop).
RESTART_LIMIT = 2
#: A heartbeat older than this is a hung process (daemons beat every 5 s).
HEARTBEAT_STALE = 30.0
#: A program this young may not have written its first heartbeat yet.
HEARTBEAT_GRACE = 20.0
#: Programs that do not beat: supercronic may be the Go binary, the replay listener is
#: supervisord's event listener (its protocol is its stdout).
WITHOUT_HEARTBEAT = frozenset({"supercronic", "replay_listener"})

_EXITED = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+ \w+ exited: (?P<name>\S+) "
    r"\((?P<how>[^;]*); not expected\)",
    re.MULTILINE,
)


def log_time(text: str) -> float:
    """supervisord's log time (local time, as it writes it) as a Unix time."""
    return time.mktime(time.strptime(text, "%Y-%m-%d %H:%M:%S"))


def unexpected_exits(log_text: str, since: float) -> Counter:
    """Unexpected exits per program in supervisord's log at or after ``since``."""
    exits: Counter = Counter()
    for match in _EXITED.finditer(log_text):
        if log_time(match["time"]) >= since:
            exits[match["name"]] += 1
    return exits


def restarting(log_text: str, now: float, window: float = RESTART_WINDOW) -> list[str]:
    """``NAME exited N times in the last M min`` for every program at or over the limit."""
    exits = unexpected_exits(log_text, now - window)
    return [
        f"{name} exited {count} times in the last {window / 60:g} min"
        for name, count in sorted(exits.items())
        if count >= RESTART_LIMIT
    ]


def heartbeat_problem(
    program: str, record: dict | None, pid: int, uptime: float, now: float
) -> str | None:
    """Why ``program`` (RUNNING as ``pid`` for ``uptime`` s) is not alive, or None if it is."""
    if program in WITHOUT_HEARTBEAT:
        return None
    current = record is not None and record.get("pid") == pid
    if not current:
        if uptime < HEARTBEAT_GRACE:
            return None
        return f"{program} writes no heartbeat"
    if record.get("dead"):
        return f"{program}: " + "; ".join(record["dead"])
    age = now - float(record.get("time", 0))
    if age > HEARTBEAT_STALE:
        return f"{program} has not beaten for {age:.0f} s (hung?)"
    return None
