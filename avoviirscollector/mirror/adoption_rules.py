"""Taking over the original collector's volume: which of its leftovers go, by name. No I/O.

The original (2019) mirror downloaded each file straight into ``tmp/<SDR file name>``
(tomputils' downloader; a restart left it there, partial) and held one lock file per
queue, ``tmp/<queue>.lock``: its queues were named ``viirs-<bands>-<satellite>``
(``viirs-moderate-snpp``) and later ``<satellite>_<bands>``. Only names of exactly
those forms, directly in tmp/, are the original's. None can be ours: our mirror works
in ``tmp/mirror_gina-<queue>/`` (``<name>.part``) and locks ``tmp/mirror_gina-<queue>.lock``;
supervisord keeps ``supervisor.sock`` and ``supervisord.pid``; nothing of ours puts an
SDR file name or a satellite-named lock directly in tmp/.
"""

from __future__ import annotations

import re

from avoviirscollector import filenames

#: GINA's satellite names, as the original's queue names carried them.
_SATELLITES = "snpp|noaa20|noaa21"
ORIGINAL_LOCK = re.compile(
    rf"^(?:viirs-[a-z]+-(?:{_SATELLITES})|(?:{_SATELLITES})_[A-Za-z0-9_-]+)\.lock$"
)
#: Our own names in tmp/, which no rule above may ever match (a test checks).
OUR_TMP_NAMES = ("mirror_gina-snpp-moderate.lock", "supervisor.sock", "supervisord.pid")


def original_leftover(name: str) -> str | None:
    """What a regular file directly in tmp/ is if the original left it, else None."""
    if filenames.is_sdr_name(name):
        return "partial download of the original collector"
    if ORIGINAL_LOCK.match(name):
        return "lock file of the original collector"
    return None


def quarantine_name(name: str, taken: set[str]) -> str:
    """The name a file gets in quarantine/: its own, or ``<name>.<n>`` when that is taken
    (the same name quarantined twice keeps both)."""
    if name not in taken and f"{name}.json" not in taken:
        return name
    number = 1
    while f"{name}.{number}" in taken:
        number += 1
    return f"{name}.{number}"
