"""Is GINA answering? What ``status`` leads with and ``health`` adds to its line.

mirror_gina records an outage in ``state/mirror_gina-outage.json`` (one listing serves
every queue; older versions kept one ``mirror_gina-<queue>-outage.json`` per queue): since
when, how many runs failed, the last error. It removes the record when GINA answers.
Reading those small files is all this module does, so the container's HEALTHCHECK can
afford it every 30 s.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass
from pathlib import Path

#: mirror_gina's outage records (mirror_run's outage_path; a test runs the mirror to agree).
OUTAGE_GLOB = "mirror_gina*-outage.json"


@dataclass(frozen=True)
class FeedOutage:
    """GINA's products.json could not be had: since the earliest failure of any queue."""

    since: float
    runs: int
    error: str
    queues: tuple[str, ...]


def read_outage(state_dir: Path) -> FeedOutage | None:
    """The current outage from the mirror's records; None when every queue answers."""
    found = []
    for path in sorted(Path(state_dir).glob(OUTAGE_GLOB)):
        try:
            record = json.loads(path.read_text())
            found.append((float(record["since"]), int(record.get("runs", 1)),
                          str(record.get("error", "")), path.name))  # fmt: skip
        except (OSError, ValueError, KeyError, TypeError):
            continue  # being replaced, or unreadable: the next look will tell
    if not found:
        return None
    names = (name.removeprefix("mirror_gina").removesuffix("outage.json").strip("-")
             for *_, name in found)  # fmt: skip
    queues = tuple(name for name in names if name)
    first = min(found)
    return FeedOutage(first[0], max(runs for _, runs, _, _ in found), first[2], queues)


def clock(moment: float, now: float | None = None) -> str:
    """``03:12Z`` today (UTC), ``2026-11-30 03:12Z`` before that."""
    when = dt.datetime.fromtimestamp(moment, dt.UTC)
    today = dt.datetime.fromtimestamp(time.time() if now is None else now, dt.UTC).date()
    return when.strftime("%H:%MZ" if when.date() == today else "%Y-%m-%d %H:%MZ")


def describe(outage: FeedOutage, now: float | None = None) -> str:
    """``GINA not answering since 03:12Z, 9 runs (queues snpp-imagery, ...): HTTP 503``."""
    runs = f"{outage.runs} run{'s' if outage.runs != 1 else ''}"
    label = "queue" if len(outage.queues) == 1 else "queues"
    queues = f" ({label} {', '.join(outage.queues)})" if outage.queues else ""
    return f"GINA not answering since {clock(outage.since, now)}, {runs}{queues}: {outage.error}"
