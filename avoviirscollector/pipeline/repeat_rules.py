"""Which file messages repeat a granule the gatherer has already published.

The same file reaches a gatherer several times by design: trollstalker publishes it
live and again in its catch-up, the gatherer's start replay and a replay_listener
SIGUSR1 replay feed it once more (stalker.py and gatherer.py say why). While the
granule is still open these repeats are harmless. Once it is published and its slot
cleared, segment_gatherer opens a new slot for the repeat; that slot holds one file
of a granule, never completes, warns ten minutes later that the granule is missing
files, and meanwhile takes in every file starting within ``time_tolerance`` of it.
A repeat of a published granule is therefore dropped, with two exceptions:

- a file with a ``reprocess`` key: the operator asked for the granule again;
- a file of a replay that started after the granule was last published: the replay
  is there to publish it again (the broker may have missed it). Once the granule is
  published after the replay started, the replay's remaining files of it are repeats.

Pure rules on times given by the caller: no clock, no I/O.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

#: Seconds a published granule is remembered. The repeats come within seconds of the
#: live file (catch-up 3 s after a start, replays on restarts); an hour also covers a
#: trollstalker restarted alone, whose catch-up repeats the last files it published.
REMEMBER_SECONDS = 3600.0
#: Granules remembered at most (a product sees about 40 an hour from GINA).
REMEMBER_AT_MOST = 5000


@dataclass(frozen=True)
class Published:
    """When a granule was last published, and the files it was published with."""

    at: float
    files: frozenset[str]


class PublishedGranules:
    """The granules published in the last :data:`REMEMBER_SECONDS`, by granule key."""

    def __init__(self, seconds: float = REMEMBER_SECONDS, at_most: int = REMEMBER_AT_MOST):
        self.seconds, self.at_most = seconds, at_most
        self._granules: OrderedDict[tuple, Published] = OrderedDict()

    def published(self, key: tuple, files, at: float) -> None:
        """Note that the granule ``key`` was published with ``files`` (uids) at ``at``."""
        self._granules.pop(key, None)
        self._granules[key] = Published(at, frozenset(files))
        self._forget(at)

    def repeats(
        self, key: tuple | None, uid: str, now: float, replay_started: float | None = None
    ) -> bool:
        """True when the file ``uid`` of granule ``key`` only repeats a publication.

        ``replay_started``: when the replay that sent the file started (None for a
        file message from the bus).
        """
        self._forget(now)
        known = self._granules.get(key) if key is not None else None
        if known is None or uid not in known.files:
            return False
        return replay_started is None or known.at >= replay_started

    def __len__(self) -> int:
        return len(self._granules)

    def _forget(self, now: float) -> None:
        while self._granules:
            key, oldest = next(iter(self._granules.items()))
            if len(self._granules) <= self.at_most and oldest.at >= now - self.seconds:
                return
            del self._granules[key]
