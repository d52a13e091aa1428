"""When each satellite passes over the receiving antenna: pass prediction from two-line elements.

Data can only appear at GINA after a satellite passed over the antenna that received
it, so mirror_gina polls fast around predicted passes and rarely otherwise. The
elements are the file the collector already downloads hourly (``elements/noaa.txt``,
:mod:`avoviirscollector.jobs.tle`); the geometry is pyorbital's (pytroll's orbit
library, SGP4).

No I/O here: the caller reads the file and hands its text to :func:`read_elements`,
which raises :class:`TleProblem` with one line saying what is wrong (missing
satellite, bad checksum, elements too old to trust). pyorbital (numpy, scipy) takes
about a second to import, so it is imported only by :func:`predict`, which the
mirror calls when its cached passes run out or the file changed, never in a run
that merely finds nothing due.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from avoviirscollector.mirror.cadence_rules import Pass

#: Antennas by VIIRS_FACILITY: (longitude, latitude in degrees, altitude in km).
#: gilmore: NOAA's Fairbanks Command and Data Acquisition Station at Gilmore Creek, from
#:   the IGS site log of its GPS monument FAIR (64.97800 N, 147.49924 W, 319 m;
#:   https://files.igs.org/pub/station/oldlog/fair9907.log).
#: uafgina: the University of Alaska Fairbanks campus; USGS's College observatory
#:   (64.8742 N, 147.8597 W, 197 m; http://geomag.usgs.gov/monitoring/observatories/college/),
#:   about 2 km from the dishes on West Ridge: a pass over either starts within a second.
FACILITIES = {
    "gilmore": (-147.49924, 64.97800, 0.319),
    "uafgina": (-147.8597, 64.8742, 0.197),
}
#: NORAD catalog numbers of GINA's satellites (names in TLE files vary; numbers do not).
CATALOG_NUMBERS = {"snpp": 37849, "noaa20": 43013, "noaa21": 54234}
#: Passes lower than this (degrees) are not received.
MIN_ELEVATION = 5.0
#: Elements older than this (days) are not trusted: SGP4's along-track error grows to
#: minutes within a few weeks, and the hourly download keeps them a day old at most.
MAX_AGE_DAYS = 7.0
LINE_LENGTH = 69


class TleProblem(ValueError):
    """The elements cannot be used to predict passes (the message says why, in one line)."""


@dataclass(frozen=True)
class Elements:
    """One satellite's two-line elements."""

    satellite: str
    line1: str
    line2: str

    @property
    def epoch(self) -> dt.datetime:
        """The elements' epoch (UTC, naive), from columns 19-32 of line 1."""
        field = self.line1[18:32]
        year = int(field[:2])
        year += 2000 if year < 57 else 1900
        day = float(field[2:])
        return dt.datetime(year, 1, 1) + dt.timedelta(days=day - 1)


def _checksum(line: str) -> int:
    total = sum(int(c) if c.isdigit() else 1 if c == "-" else 0 for c in line[:68])
    return total % 10


def _valid(line: str, number: str) -> bool:
    return (
        len(line) == LINE_LENGTH
        and line.startswith(f"{number} ")
        and line[-1].isdigit()
        and int(line[-1]) == _checksum(line)
    )


def read_elements(
    text: str, satellites: Iterable[str], now: dt.datetime, max_age_days: float = MAX_AGE_DAYS
) -> dict[str, Elements]:
    """The elements of ``satellites`` in a TLE file's text; TleProblem when unusable."""
    lines = [line.rstrip() for line in text.splitlines()]
    found: dict[int, tuple[str, str]] = {}
    for first, second in zip(lines, lines[1:], strict=False):
        if first.startswith("1 ") and second.startswith("2 ") and first[2:7] == second[2:7]:
            if not (_valid(first, "1") and _valid(second, "2")):
                raise TleProblem(f"element set {first[2:7].strip()} has a bad checksum or length")
            found[int(first[2:7])] = (first, second)
    result = {}
    for satellite in satellites:
        number = CATALOG_NUMBERS[satellite]
        if number not in found:
            raise TleProblem(f"no elements for {satellite} (catalog number {number})")
        elements = Elements(satellite, *found[number])
        try:
            age = (now - elements.epoch).total_seconds() / 86400
        except ValueError:
            raise TleProblem(f"{satellite}: unreadable epoch {elements.line1[18:32]!r}") from None
        if age > max_age_days:
            raise TleProblem(
                f"{satellite}'s elements are {age:.1f} days old (epoch {elements.epoch:%Y-%m-%d}),"
                f" more than {max_age_days:g}"
            )
        if age < -1:
            raise TleProblem(f"{satellite}'s elements have an epoch in the future")
        result[satellite] = elements
    return result


def predict(
    elements: dict[str, Elements], facility: str, start: dt.datetime, hours: float
) -> list[Pass]:
    """Passes above MIN_ELEVATION over the facility's antenna (both for ``any``), by rise."""
    from pyorbital.orbital import Orbital  # a second to import: only when predicting

    sites = list(FACILITIES.values()) if facility == "any" else [FACILITIES[facility]]
    passes = []
    for satellite, element in elements.items():
        orbit = Orbital(satellite, line1=element.line1, line2=element.line2)
        for lon, lat, alt in sites:
            for rise, fall, top in orbit.get_next_passes(
                start, int(round(hours)), lon, lat, alt, horizon=MIN_ELEVATION
            ):
                elevation = float(orbit.get_observer_look(top, lon, lat, alt)[1])
                passes.append(Pass(satellite, _epoch(rise), _epoch(fall), round(elevation, 1)))
    return merge(passes)


def merge(passes: list[Pass]) -> list[Pass]:
    """One pass per satellite where the two antennas' passes overlap (``any``)."""
    merged: list[Pass] = []
    for item in sorted(passes, key=lambda p: (p.satellite, p.rise)):
        last = merged[-1] if merged else None
        if last and last.satellite == item.satellite and item.rise <= last.fall:
            merged[-1] = Pass(
                item.satellite,
                last.rise,
                max(last.fall, item.fall),
                max(last.max_elevation, item.max_elevation),
            )
        else:
            merged.append(item)
    return sorted(merged, key=lambda p: p.rise)


def _epoch(moment: dt.datetime) -> float:
    return moment.replace(tzinfo=dt.UTC).timestamp()
