"""Taking over the original collector's volume: which of its leftovers go, by name. No I/O.

Logs: supervisord cannot start when a log file it must append to is not writable (one
the original wrote as another UID). Only the names supervisord.conf makes it write, and
their rotated backups, matter; such a file is moved aside to ``<name>.original-<uid>``
and never written. Other files in log/ are left as they are.

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

import configparser
import posixpath
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


_LOG_KEYS = ("logfile", "stdout_logfile", "stderr_logfile")


def our_log_names(conf_text: str, base_dir: str) -> set[str]:
    """The file names supervisord.conf makes supervisord write in ``<base_dir>/log``."""
    parser = configparser.RawConfigParser(inline_comment_prefixes=(";",), strict=False)
    parser.read_string(conf_text)
    log_dir = posixpath.join(base_dir, "log")
    names = set()
    for section in parser.sections():
        for key in _LOG_KEYS:
            value = parser.get(section, key, fallback="").strip()
            path = value.replace("%(ENV_VIIRS_BASE_DIR)s", base_dir)
            if posixpath.dirname(path) == log_dir:
                names.add(posixpath.basename(path))
    return names


def is_our_log(name: str, ours: set[str]) -> bool:
    """True for one of our log names or a rotated backup of one (``<name>.<n>``)."""
    stem, _, number = name.rpartition(".")
    return name in ours or (stem in ours and number.isdigit())


def aside_name(name: str, uid: int, taken: set[str]) -> str:
    """``<name>.original-<uid>`` (numbered when taken): where a log we cannot write goes."""
    candidate, number = f"{name}.original-{uid}", 1
    while candidate in taken:
        candidate, number = f"{name}.original-{uid}.{number}", number + 1
    return candidate
