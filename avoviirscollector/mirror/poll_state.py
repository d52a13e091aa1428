"""mirror_gina's memory between runs (``state/mirror_gina-poll.json``) and the cheap gate.

cron starts mirror_gina every few seconds; almost every start finds nothing due and
must end at once, without asking GINA and without loading pycurl, h5py or
pyorbital. :func:`due` decides from this small file and one ``stat`` of
supervisord's pidfile (whose time says when the collector started), so such a run
costs a Python start-up and a JSON read.

The file keeps what the rules need across runs: when the next poll is due and why,
the last wide listing, the last arrivals per satellite, the validators per URL, the
query mode (one multi-satellite query, or one per satellite), the predicted passes
and the hourly digest. Written atomically; unreadable means "poll now" (one poll
more is the safe side).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path  # noqa: TC003 - used at run time in annotations' callers

from avoviirscollector.mirror import cadence_rules

STATE_FILE = "mirror_gina-poll.json"
#: The last poll's summary, for ``viirscollector status``.
LAST_RUN_FILE = "mirror_gina-last-run.json"
GRACE = cadence_rules.GRACE
#: The reason of a poll asked with ``--full``: the whole window, GINA's answer read whole
#: (no If-None-Match), so files that left sdr/ since the last listing are seen at once.
FULL_LISTING = "full listing (--full)"


@dataclass
class PollState:
    """What one poll leaves for the next (epoch seconds throughout)."""

    next_poll_at: float | None = None
    last_poll: float | None = None
    last_wide: float | None = None
    last_ok: bool = True
    collector_started: float | None = None
    arrivals: dict = field(default_factory=dict)
    mode: str = "multi"
    mode_since: float | None = None
    validators: dict = field(default_factory=dict)
    retry_due: float | None = None
    cadence: dict = field(default_factory=dict)
    passes: list = field(default_factory=list)
    passes_key: dict = field(default_factory=dict)
    tle_problem: str | None = None
    digest: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> PollState:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def load(state_dir: Path) -> PollState | None:
    """The state, None when there is none yet or it is unreadable."""
    try:
        return PollState.from_json((state_dir / STATE_FILE).read_text())
    except (OSError, ValueError, TypeError):
        return None


def save(state: PollState, state_dir: Path) -> None:
    """Store atomically (a crash leaves the old or the new file)."""
    path = state_dir / STATE_FILE
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "w") as stream:
        stream.write(state.to_json())
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(temporary, path)


def collector_started(pidfile: Path) -> float | None:
    """When supervisord (re)started the collector: its pidfile's time, None without one."""
    try:
        return pidfile.stat().st_mtime
    except OSError:
        return None


def due(state: PollState | None, now: float, started: float | None) -> str | None:
    """Why a poll is due now (cadence_rules.poll_due on this state), None when not."""
    if state is None:
        return cadence_rules.poll_due(None, None, started, now, have_state=False)
    return cadence_rules.poll_due(state.next_poll_at, state.collector_started, started, now)
