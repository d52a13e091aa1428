"""Which collector is this? Two collectors on one host must never take each other's files.

Each task_broker adds its collector's identity to the queue state it publishes on 19191
(an added key: clients that read only "queue length" and "products waiting" keep working)::

    "collector": {"host": "viirs1", "base": "/viirs", "started": "2026-12-01T03:12:00Z",
                  "version": "2.0.0"}

``status`` and ``sniff queue`` say which collector answered and warn when its base
directory is not theirs. File and granule messages carry the files' paths, so a gatherer
or the broker refuses one whose files are on this host outside its own ``sdr/``
(:func:`from_own_sdr`),
and ``sniff sdr`` and ``task`` tell from the paths which collector a message came from.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from pathlib import Path

from avoviirscollector import __version__
from avoviirscollector.settings import Settings

KEY = "collector"
log = logging.getLogger("identity")
_refused: set[str] = set()


def of(settings: Settings, started: float | None = None) -> dict:
    """This collector's identity: host, base directory, start time, version."""
    moment = time.time() if started is None else started
    return {
        "host": socket.gethostname(),
        "base": str(Path(settings.base_dir).absolute()),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment)),
        "version": __version__,
    }


def describe(identity: dict) -> str:
    """``the collector on viirs1 for /viirs (started 2026-12-01T03:12:00Z, version 2.0.0)``."""
    return (
        f"the collector on {identity.get('host', '?')} for {identity.get('base', '?')} "
        f"(started {identity.get('started', '?')}, version {identity.get('version', '?')})"
    )


def foreign(identity: dict | None, base_dir: Path) -> bool:
    """True when the identity names another base directory than ``base_dir``."""
    if not isinstance(identity, dict) or not identity.get("base"):
        return False
    return os.path.realpath(identity["base"]) != os.path.realpath(base_dir)


def paths_of(data) -> list[str]:
    """The file paths a file or granule message carries (``uri``, and its dataset's)."""
    if not isinstance(data, dict):
        return []
    items = [data, *(d for d in data.get("dataset") or [] if isinstance(d, dict))]
    uris = [str(item["uri"]) for item in items if item.get("uri")]
    return [uri.removeprefix("file://") for uri in uris]


def outside(data, sdr_dir: Path) -> list[str]:
    """The paths of a message that are files on this host outside ``sdr_dir``.

    A collector on the same host shares the filesystem, so its files exist here; a path
    that exists nowhere (a test's, a file already deleted) cannot tell whose it is and is
    left to the checks that open files.
    """
    root = os.path.realpath(sdr_dir) + os.sep
    return [
        p for p in paths_of(data) if not os.path.realpath(p).startswith(root) and os.path.exists(p)
    ]


def from_own_sdr(data, sdr_dir: Path) -> bool:
    """False (and a warning, once per foreign directory) for a message with a file outside
    ``sdr_dir``: another collector's trollstalker registered with our nameserver."""
    strangers = outside(data, sdr_dir)
    if not strangers:
        return True
    where = os.path.dirname(strangers[0])
    if where not in _refused:
        _refused.add(where)
        log.warning(
            "refusing messages about files in %s (e.g. %s): not this collector's %s; another "
            "collector shares this host's posttroll ports",
            where,
            os.path.basename(strangers[0]),
            sdr_dir,
        )
    return False


def answered_by(identity: dict | None, base_dir: Path) -> str | None:
    """The line ``status`` and ``sniff queue`` print about the collector that answered."""
    if not isinstance(identity, dict):
        return None
    if foreign(identity, base_dir):
        return f"WARNING: answered by {describe(identity)}, not by the one of {base_dir}"
    return f"answered by {describe(identity)}"


def message_source(data, sdr_dir: Path) -> str | None:
    """Where a message's files are, and a warning when that is not this base's sdr/."""
    paths = paths_of(data)
    if not paths:
        return None
    where = os.path.dirname(paths[0])
    if os.path.realpath(where) == os.path.realpath(sdr_dir):
        return f"files in {where}"
    return f"WARNING: files in {where}, not in {sdr_dir}: another collector answered"
