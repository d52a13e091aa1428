"""The VIIRS SDR file name: one pattern, one place.

GINA names files the way CSPP writes them, e.g.
``SVI05_npp_d20191021_t2327561_e2329203_b41131_c20191021233910734917_cspp_dev.h5``.
The mirror orders downloads by it, trollstalker turns it into message fields, the
cleanup and reprocess commands select files by it; all of them use this module
(the ini files for trollstalker and segment_gatherer are checked against it by tests).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass

from trollsift import Parser

#: trollsift pattern of an SDR file name. trollstalker joins start_date and
#: start_time into one start_time; the date of end_time is start's (or the next day).
PATTERN = (
    "{segment:5s}_{platform_name:3s}_d{start_date:%Y%m%d}_t{start_time:%H%M%S%f}"
    "_e{end_time:%H%M%S%f}_b{orbit_number:5d}_c{proctime:%Y%m%d%H%M%S%f}_{source}.h5"
)

#: Short platform names in file names, and the names pytroll uses for them.
PLATFORM_ALIASES = {"npp": "Suomi-NPP", "j01": "NOAA-20", "j02": "NOAA-21"}
#: GINA's satellite names and the platform in the files they list.
SATELLITE_PLATFORMS = {"snpp": "npp", "noaa20": "j01", "noaa21": "j02"}
#: Geolocation segments: a granule's band files are useless without them.
GEOLOCATION_SEGMENTS = frozenset({"GMTCO", "GITCO"})

_PARSER = Parser(PATTERN)


class FilenameError(ValueError):
    """A name that is not a VIIRS SDR file name of the expected pattern."""


@dataclass(frozen=True, order=True)
class SdrName:
    """What a file name tells about its granule."""

    start: dt.datetime
    end: dt.datetime
    platform: str
    orbit: int
    segment: str
    created: dt.datetime
    source: str
    name: str

    @property
    def platform_name(self) -> str:
        """pytroll's platform name (Suomi-NPP, NOAA-20, NOAA-21), or the short one if unknown."""
        return PLATFORM_ALIASES.get(self.platform, self.platform)

    @property
    def is_geolocation(self) -> bool:
        """True for GMTCO/GITCO, which a granule needs before any band is usable."""
        return self.segment in GEOLOCATION_SEGMENTS

    @property
    def granule(self) -> tuple[str, int, dt.datetime]:
        """Files with the same granule key belong to one granule."""
        return (self.platform, self.orbit, self.start)


def parse(name: str) -> SdrName:
    """Parse a file name (a path is reduced to its base name); FilenameError if it is not one."""
    base = os.path.basename(name)
    if base.startswith("."):
        raise FilenameError(f"{base!r} is a hidden file, not an SDR file")
    try:
        fields = _PARSER.parse(base)
    except ValueError as error:
        raise FilenameError(f"{base!r} does not match the VIIRS SDR pattern {PATTERN}") from error
    day = fields["start_date"].date()
    start = dt.datetime.combine(day, fields["start_time"].time())
    end = dt.datetime.combine(day, fields["end_time"].time())
    if end < start:
        end += dt.timedelta(days=1)
    return SdrName(
        start=start,
        end=end,
        platform=fields["platform_name"],
        orbit=fields["orbit_number"],
        segment=fields["segment"],
        created=fields["proctime"],
        source=fields["source"],
        name=base,
    )


def is_sdr_name(name: str) -> bool:
    """True when ``name`` parses; for filters that only need a yes or no."""
    try:
        parse(name)
    except FilenameError:
        return False
    return True


def compose(
    segment: str,
    platform: str,
    start: dt.datetime,
    end: dt.datetime,
    orbit: int,
    created: dt.datetime,
    source: str = "cspp_dev",
) -> str:
    """Build a file name in the real pattern (the GINA stand-in and tests make files with it)."""
    tenths = lambda t: t.strftime("%H%M%S") + str(t.microsecond // 100000)  # noqa: E731
    return (
        f"{segment}_{platform}_d{start:%Y%m%d}_t{tenths(start)}_e{tenths(end)}"
        f"_b{orbit:05d}_c{created:%Y%m%d%H%M%S%f}_{source}.h5"
    )
