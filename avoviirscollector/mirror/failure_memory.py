"""The mirror's memory of files that failed, so a bad file is not retried in a tight loop.

A file that failed (HTTP errors beyond the retries, wrong MD5, not HDF5) is tried
again by a later run, but only after a pause that doubles with each failure:
2 minutes after the first, then 4, 8, ... up to 6 hours. Success forgets it; so
does a week without news of it (GINA keeps files only for a few days).

The rules are pure functions of the memory and the clock; :func:`load` and
:func:`save` are the only I/O (one small JSON file per queue in ``state/``, written
atomically so a killed run leaves the old or the new file, never half of one).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

FIRST_PAUSE = 120.0
MAX_PAUSE = 6 * 3600.0
FORGET_AFTER = 7 * 86400.0


def pause(failures: int) -> float:
    """Seconds to wait after the ``failures``-th failure in a row before trying again."""
    if failures <= 0:
        return 0.0
    return min(FIRST_PAUSE * 2 ** (failures - 1), MAX_PAUSE)


@dataclass
class Failure:
    """How often a file failed in a row, when last, and why."""

    count: int
    last: float
    error: str

    @property
    def retry_at(self) -> float:
        """Epoch seconds from which the file may be tried again."""
        return self.last + pause(self.count)


class FailureMemory:
    """Failures by file name."""

    def __init__(self, failures: dict[str, Failure] | None = None):
        self.failures = dict(failures or {})

    def due(self, name: str, now: float) -> bool:
        """True when the file may be fetched now (never failed, or its pause is over)."""
        failure = self.failures.get(name)
        return failure is None or now >= failure.retry_at

    def failed(self, name: str, error: str, now: float) -> Failure:
        """Remember one more failure of ``name``."""
        old = self.failures.get(name)
        failure = Failure((old.count if old else 0) + 1, now, error)
        self.failures[name] = failure
        return failure

    def succeeded(self, name: str) -> None:
        """Forget a file that has now arrived."""
        self.failures.pop(name, None)

    def prune(self, now: float) -> None:
        """Forget failures older than FORGET_AFTER."""
        self.failures = {n: f for n, f in self.failures.items() if now - f.last < FORGET_AFTER}

    def to_json(self) -> str:
        """Stable JSON text of the memory."""
        return json.dumps({n: asdict(f) for n, f in sorted(self.failures.items())}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> FailureMemory:
        """Parse :meth:`to_json`'s text; ValueError when it is not that."""
        document = json.loads(text)
        if not isinstance(document, dict):
            raise ValueError("not a JSON object")
        try:
            return cls({name: Failure(**fields) for name, fields in document.items()})
        except TypeError as error:
            raise ValueError(f"unexpected entry: {error}") from None


def load(path: Path) -> tuple[FailureMemory, str | None]:
    """The memory at ``path`` (empty when missing); a problem text when it was unreadable."""
    try:
        return FailureMemory.from_json(path.read_text()), None
    except FileNotFoundError:
        return FailureMemory(), None
    except (OSError, ValueError) as error:
        return FailureMemory(), f"{path} unreadable ({error}); starting with an empty memory"


def write_atomically(path: Path, text: str) -> None:
    """Write a small file so a crash leaves the old or the new content, never half of it."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "w") as stream:
        stream.write(text)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(temporary, path)


def save(memory: FailureMemory, path: Path) -> None:
    """Store the memory atomically."""
    write_atomically(path, memory.to_json())


@dataclass
class Outage:
    """A queue whose products.json cannot be had: since when, and when it was last mailed.

    cron runs the mirror every 30 s; without this memory a GINA outage would mail the duty
    scientist 120 times an hour. The first failure is an ERROR (mailed), repeats are
    WARNINGs until the mail interval has passed, then one ERROR again as a reminder.
    """

    since: float
    mailed: float
    error: str
    #: Failed runs so far (``viirscollector status``: "GINA not answering since ..., N runs").
    runs: int = 1

    def should_mail(self, now: float, interval: float) -> bool:
        """True when this failure has not been mailed within ``interval`` seconds."""
        return now - self.mailed >= interval


def outage_failed(
    outage: Outage | None, error: str, now: float, interval: float
) -> tuple[Outage, bool]:
    """Record one more failed listing; return the outage and whether to mail (log an ERROR)."""
    if outage is None:
        return Outage(since=now, mailed=now, error=error), True
    runs = outage.runs + 1
    if outage.should_mail(now, interval):
        return Outage(since=outage.since, mailed=now, error=error, runs=runs), True
    return Outage(since=outage.since, mailed=outage.mailed, error=error, runs=runs), False


def load_outage(path: Path) -> Outage | None:
    """The outage recorded at ``path``; None when there is none (or it is unreadable)."""
    try:
        return Outage(**json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError):
        return None


def save_outage(outage: Outage | None, path: Path) -> None:
    """Store the outage atomically, or remove the record when the queue answers again."""
    if outage is None:
        path.unlink(missing_ok=True)
    else:
        write_atomically(path, json.dumps(asdict(outage)))
