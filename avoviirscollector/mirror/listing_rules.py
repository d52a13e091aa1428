"""What one poll asks GINA for and what its answer allows: pure rules, no I/O.

- **Window.** The whole backfill window (``GINA_BACKFILL_DAYS``, as the original asked)
  at the first listing, after a collector start, after an outage and then every
  ``wide_interval`` seconds; otherwise only the dates new files can still appear
  on: today, and yesterday during the first :data:`YESTERDAY_HOURS` hours after
  00:00 UTC. A file the wide query would find is therefore seen at the latest
  ``wide_interval`` seconds later.
- **Validators.** GINA's ETag and Last-Modified, kept per URL, go back as
  If-None-Match / If-Modified-Since; a 304 means nothing new. They are not sent
  while a file that failed is due for its retry (the answer must then be read
  again), nor once older than :data:`VALIDATOR_MAX_AGE` (a file deleted from sdr/
  by hand comes back within the hour).
- **Fallback.** One query names every satellite (``satellites[]`` repeated). A
  server that answers it with only some of them (the names' platforms say which)
  is asked once per satellite instead: :func:`ignores_multi` decides from the
  per-satellite answers for the missing ones; the multi query is tried again after
  :data:`MULTI_RETRY_AFTER` seconds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from avoviirscollector.filenames import SATELLITE_PLATFORMS

YESTERDAY_HOURS = 6
VALIDATOR_MAX_AGE = 3600.0
MULTI_RETRY_AFTER = 6 * 3600.0


@dataclass(frozen=True)
class Window:
    """The dates of one listing: ``kind`` "wide" or "narrow", and why it is wide."""

    kind: str
    start: dt.date
    end: dt.date
    reason: str = ""


def choose_window(
    now: dt.datetime,
    backfill_days: int,
    last_wide: float | None,
    wide_interval: float,
    force_reason: str | None = None,
) -> Window:
    """The window of the poll at ``now`` (aware UTC); ``last_wide`` epoch s or None."""
    today = now.date()
    end = today + dt.timedelta(days=1)  # GINA's end_date, as the original sent it
    wide_start = end - dt.timedelta(days=backfill_days)
    if force_reason or last_wide is None or now.timestamp() - last_wide >= wide_interval:
        reason = force_reason or ("first listing" if last_wide is None else "backfill")
        return Window("wide", wide_start, end, reason)
    start = today - dt.timedelta(days=1) if now.hour < YESTERDAY_HOURS else today
    return Window("narrow", max(start, wide_start), end)


@dataclass(frozen=True)
class Validator:
    """What the server said identifies its answer to one URL, and when we stored it."""

    etag: str | None
    last_modified: str | None
    stored: float

    def to_json(self) -> dict:
        return {"etag": self.etag, "last_modified": self.last_modified, "stored": self.stored}

    @classmethod
    def from_json(cls, data: Mapping) -> Validator:
        return cls(data.get("etag"), data.get("last_modified"), float(data["stored"]))


def validator_from(headers: Mapping[str, str], now: float) -> Validator | None:
    """The validator of a 200 answer (lower-case header names), None when it has none."""
    etag, modified = headers.get("etag"), headers.get("last-modified")
    if not etag and not modified:
        return None
    return Validator(etag or None, modified or None, now)


def conditional_headers(
    validator: Validator | None, now: float, retry_due: float | None
) -> list[str]:
    """The If-None-Match / If-Modified-Since request headers to send, if any."""
    if validator is None or now - validator.stored > VALIDATOR_MAX_AGE:
        return []
    if retry_due is not None and now >= retry_due:
        return []
    headers = []
    if validator.etag:
        headers.append(f"If-None-Match: {validator.etag}")
    if validator.last_modified:
        headers.append(f"If-Modified-Since: {validator.last_modified}")
    return headers


def platform_of(name: str) -> str:
    """The platform field of an SDR file name (npp, j01, j02), '' when there is none."""
    parts = name.split("_", 2)
    return parts[1] if len(parts) > 2 else ""


def missing_satellites(asked: Sequence[str], names: Iterable[str]) -> list[str]:
    """The asked satellites of which an answer lists no file."""
    present = {platform_of(n) for n in names}
    return [s for s in asked if SATELLITE_PLATFORMS[s] not in present]


def ignores_multi(missing: Sequence[str], found_alone: Mapping[str, int]) -> bool:
    """True when a satellite missing from the multi answer has files when asked alone."""
    return any(found_alone.get(s, 0) > 0 for s in missing)


def use_multi(mode: str, mode_since: float | None, now: float) -> bool:
    """Ask with one multi-satellite query now? (per-satellite mode is retried after a while)."""
    if mode != "per-satellite":
        return True
    return mode_since is not None and now - mode_since >= MULTI_RETRY_AFTER


def split(names: Iterable[str], satellite_of_queue: Mapping[str, str]) -> dict[str, list[str]]:
    """Names per queue, by the platform in the name (queue -> its satellite)."""
    by_platform: dict[str, list[str]] = {}
    for name in names:
        by_platform.setdefault(platform_of(name), []).append(name)
    return {
        queue: by_platform.get(SATELLITE_PLATFORMS[satellite], [])
        for queue, satellite in satellite_of_queue.items()
    }
