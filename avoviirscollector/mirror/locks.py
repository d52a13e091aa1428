"""The flocks that keep two mirror_gina runs out of each other's way.

One for the poll (a manual run next to cron's) and one per queue (each queue's
temp directory and failure memory belong to one run at a time). A lock dies with
its process, so a killed run never leaves one behind.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path  # noqa: TC003 - the type of an argument


class QueueLock:
    """An exclusive, non-blocking flock; ``acquired`` False when another run holds it."""

    def __init__(self, path: Path):
        self.path = path
        self.acquired = False
        self._fd: int | None = None

    def __enter__(self) -> QueueLock:
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return self
        self.acquired = True
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"{os.getpid()}\n".encode())
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the flock
            self._fd = None


class PollLock(QueueLock):
    """One poll at a time (a manual run next to cron's); the queues keep their own locks."""
