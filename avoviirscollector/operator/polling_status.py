"""The mirror's polling for ``viirscollector status``: cadence, next poll, next pass per satellite.

Read from ``state/mirror_gina-poll.json`` (what the last poll decided), so the status
screen needs neither pycurl nor pyorbital. Two lines, e.g.::

    polling:  every 10 s (pass noaa20 until 13:41Z); next poll in 6.0 s
    passes:   snpp 14:02Z (max 38°), noaa20 now (until 13:11Z, max 69°), noaa21 15:20Z (max 12°)
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from avoviirscollector.operator import display

#: mirror_gina's poll state (avoviirscollector/mirror/poll_state.py STATE_FILE; a test checks).
POLL_STATE = "mirror_gina-poll.json"


def _clock(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%H:%MZ")


def render(state: dict, now: float) -> list[str]:
    """The two lines for a poll state (pure)."""
    cadence = state.get("cadence") or {}
    interval, reason = cadence.get("interval"), cadence.get("reason") or "?"
    until = f" until {_clock(cadence['until'])}" if cadence.get("until") else ""
    due = state.get("next_poll_at")
    when = "-" if due is None else ("due" if due <= now else f"in {display.duration(due - now)}")
    every = f"every {interval:.0f} s" if interval else "not yet scheduled"
    first = f"polling:  {every} ({reason}{until}); next poll {when}"
    if not state.get("last_ok", True):
        first += "; the last listing failed"
    passes, upcoming = state.get("passes") or [], []
    satellites = (state.get("passes_key") or {}).get("satellites") or sorted(
        {p["satellite"] for p in passes}
    )
    for satellite in satellites:
        ahead = sorted((p for p in passes if p["satellite"] == satellite and p["fall"] > now),
                       key=lambda p: p["rise"])  # fmt: skip
        if not ahead:
            upcoming.append(f"{satellite} none predicted")
            continue
        p = ahead[0]
        top = f"max {p['max_elevation']:.0f}°"
        if p["rise"] <= now:
            upcoming.append(f"{satellite} now (until {_clock(p['fall'])}, {top})")
        else:
            upcoming.append(f"{satellite} {_clock(p['rise'])} ({top})")
    second = "passes:   " + (", ".join(upcoming) or "none predicted")
    if state.get("tle_problem"):
        second = f"passes:   none predicted: {state['tle_problem']}"
    return [first, second]


def lines(state_dir: Path, now: float) -> list[str]:
    """The polling lines; none before the first poll (the mirror line says so)."""
    try:
        state = json.loads((state_dir / POLL_STATE).read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as error:
        return [f"polling:  cannot read {state_dir / POLL_STATE}: {error}"]
    if not isinstance(state, dict):
        return [f"polling:  {state_dir / POLL_STATE} is not a JSON object"]
    return render(state, now)
