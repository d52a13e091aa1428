"""Make files durable while they download, so placing a finished one waits milliseconds.

The placer fsyncs every file before it renames it into sdr/ (a crash must never
leave a file there that is not on disk). Left to that moment, the fsync waits for
the last part of the file, and on a disk behind a virtual machine's write cache it
waits for a flush of everything written since the previous flush: measured here,
about 40 ms for the first file of each group of four that finish together
(docs/benchmarks.md, scenario 2), time in which the newest granule's file is on
disk but not yet in sdr/. Asking the kernel only to *start* writeback
(``posix_fadvise``) did not shorten it; ``fdatasync`` as the bytes arrive does:
the final fsync then has almost nothing left to do (2-3 ms).

The syncs run in one thread of their own (``fdatasync`` releases the GIL, so the
transfers go on) and are coalesced: a file already waiting for a sync is not
queued again, so a slow disk makes the syncs rarer, never the downloads slower.
A failed sync is ignored here: the placer's own fsync reports the error for the
file it belongs to.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Hashable


class Flusher:
    """``written(key, fd)`` after bytes were written to ``fd``; ``close()`` at the end.

    ``key`` names the file (the same key is queued at most once at a time); ``fd`` is
    duplicated, so the caller may close its own descriptor at any moment.
    """

    def __init__(self, sync: Callable[[int], None] = os.fdatasync):
        self._sync = sync
        self._pending: dict[Hashable, int] = {}  # insertion order: oldest first
        self._wake = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None
        self.synced = 0

    def written(self, key: Hashable, fd: int) -> None:
        """Sync this file soon, unless it is already waiting for a sync."""
        with self._wake:
            if self._closing or key in self._pending:
                return
            self._pending[key] = os.dup(fd)
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="flusher", daemon=True)
                self._thread.start()
            self._wake.notify()

    def close(self) -> None:
        """Stop syncing (what is still waiting is left to the placer's fsync)."""
        with self._wake:
            self._closing = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join()
        for fd in self._pending.values():
            os.close(fd)
        self._pending.clear()

    def _work(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._closing:
                    self._wake.wait()
                if self._closing:
                    return
                key = next(iter(self._pending))
                fd = self._pending.pop(key)
            try:
                self._sync(fd)
                self.synced += 1
            except OSError:
                pass  # the placer's fsync of this file reports it
            finally:
                os.close(fd)
