"""What the synthetic SDR files show: a VIIRS swath over Alaska, with clouds, sun and volcanoes.

:mod:`synthetic_sdr` writes the CSPP layout; this module gives it plausible numbers, so
a quick-look made by a worker from the demo's files looks like a (coarse) VIIRS image:

- **Geometry.** Every granule lies on one track up the Aleutians and mainland Alaska
  (44° N to 75° N, centred near 160° W), 3,040 km wide like VIIRS. Where a granule lies
  follows from its start time (6 granules north, 6 back south), so the consecutive
  granules of :func:`synthetic_sdr.make_pass` join up, as real ones do.
- **Sun.** Solar zenith and azimuth are computed for each row's time (a low-precision
  solar ephemeris, good to a fraction of a degree): reflectances are what the sun gives,
  so a night granule's visible bands are dark, as they are in real data.
- **Scene.** Clouds are a smooth field of latitude and longitude (so they continue from
  one granule to the next); brightness temperatures are in kelvin (sea ~275 K, cloud tops
  down to ~225 K), reflectances unitless as in the files (satpy gives %). Every volcano of
  :data:`VOLCANOES` in the swath is a hot spot: I04 (3.7 µm) up to ~355 K. Shishaldin
  also has an ash plume, where M15 − M16 is negative (the split-window ash signal).

Everything is a function of (time, latitude, longitude) plus seeded noise: no I/O, and a
granule's arrays take well under a millisecond.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass

import numpy as np

#: Length of one VIIRS granule (about 86 s).
GRANULE_SECONDS = 85.35
#: Scans per synthetic granule (a real one has 48) and rows per scan (satpy checks them).
SCANS = 2
ROWS_PER_SCAN = {"M": 16, "I": 32}
#: Columns (a real granule has 3,200 M and 6,400 I columns).
COLUMNS = {"M": 80, "I": 160}
SWATH_KM = 3040.0
GROUND_SPEED_KM_S = 6.6
#: Granules the track goes north before it comes back south (a period of twice that).
PASS_GRANULES = 6
PASS_FIRST_LATITUDE = 44.0
KM_PER_DEGREE = 111.2
#: name -> (latitude, longitude): hot spots wherever the swath covers them.
VOLCANOES = {
    "Shishaldin": (54.756, -163.970),
    "Great Sitkin": (52.076, -176.130),
    "Spurr": (61.299, -152.251),
}
#: The volcano with an ash plume (bearing in degrees, length in km).
PLUME = ("Shishaldin", 110.0, 300.0)
HOT_SPOT_SIGMA_KM = 15.0
#: Central wavelengths (µm) for Planck radiances, solar irradiance (W m-2 µm-1) for the rest.
WAVELENGTH_UM = {"M15": 10.763, "M16": 12.013, "I04": 3.74, "I05": 11.45}
SOLAR_IRRADIANCE = {"M03": 1970.0, "M04": 1850.0, "M05": 1560.0, "I01": 1600.0}
#: Clear-sea and cloud reflectance, and the extra reflectance of ash, per band.
_ALBEDO = {
    "M03": (0.09, 0.70, 0.10),
    "M04": (0.06, 0.72, 0.13),
    "M05": (0.045, 0.73, 0.16),
    "I01": (0.045, 0.73, 0.16),
}
#: Brightness temperature of this band minus the 11 µm one, clear sky (K).
_THERMAL_OFFSET = {"M15": 0.0, "I05": 0.3, "M16": -1.8, "I04": 3.0}
#: Hot-spot amplitude (K) at the vent, per band.
_HOT_SPOT_K = {"I04": 85.0, "I05": 12.0, "M15": 5.0, "M16": 4.0}


@dataclass(frozen=True)
class Swath:
    """Geolocation of one granule at one resolution ("M" or "I"); arrays are rows x columns."""

    latitude: np.ndarray
    longitude: np.ndarray
    solar_zenith: np.ndarray
    solar_azimuth: np.ndarray
    satellite_zenith: np.ndarray
    satellite_azimuth: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.latitude.shape


def shape(resolution: str) -> tuple[int, int]:
    """(rows, columns) of a granule's arrays at ``resolution`` ("M" or "I")."""
    return SCANS * ROWS_PER_SCAN[resolution], COLUMNS[resolution]


def _epoch_seconds(when: dt.datetime) -> float:
    return (when - dt.datetime(2000, 1, 1)).total_seconds()


def track_latitude(start: dt.datetime, seconds) -> np.ndarray:
    """Sub-satellite latitude ``seconds`` after ``start``: north for a pass, then south.

    The synthetic orbit goes up from 44° N for :data:`PASS_GRANULES` granules and comes
    back down the same track (so those images are upside down, as descending passes
    are): a triangle in time, so consecutive granules always join, whenever they start.
    """
    period = 2 * PASS_GRANULES * GRANULE_SECONDS
    phase = (_epoch_seconds(start) + np.asarray(seconds, dtype=float)) % period
    travelled = np.minimum(phase, period - phase)  # seconds north of the first latitude
    return PASS_FIRST_LATITUDE + travelled * GROUND_SPEED_KM_S / KM_PER_DEGREE


def granule_over(latitude: float, after: dt.datetime) -> dt.datetime:
    """Start of the first granule after ``after`` (northbound) centred on ``latitude``.

    For tests and demos that want a volcano in view.
    """
    period = 2 * PASS_GRANULES * GRANULE_SECONDS
    target = (latitude - PASS_FIRST_LATITUDE) * KM_PER_DEGREE / GROUND_SPEED_KM_S
    wait = (target - GRANULE_SECONDS / 2 - _epoch_seconds(after)) % period
    start = after + dt.timedelta(seconds=wait)
    return start.replace(microsecond=start.microsecond // 100000 * 100000)


def swath(start: dt.datetime, resolution: str) -> Swath:
    """The granule's pixel centres and sun/satellite angles (degrees, float32 as CSPP)."""
    rows, columns = shape(resolution)
    seconds = (np.arange(rows) + 0.5) / rows * GRANULE_SECONDS  # each row's time
    across = ((np.arange(columns) + 0.5) / columns - 0.5) * SWATH_KM  # km, east positive
    lat_row = track_latitude(start, seconds)
    lat = np.repeat(lat_row[:, None], columns, axis=1)
    centre = -160.0 - 0.3 * (lat_row - 55.0)  # the track drifts west as it goes north
    lon = centre[:, None] + across[None, :] / (KM_PER_DEGREE * np.cos(np.radians(lat)))
    lon = (lon + 180.0) % 360.0 - 180.0
    sun_zenith, sun_azimuth = solar_angles(start, seconds[:, None], lat, lon)
    sat_zenith = np.repeat((70.0 * np.abs(across) / (SWATH_KM / 2))[None, :], rows, axis=0)
    sat_azimuth = np.where(across > 0, -100.0, 80.0)  # towards the track, heading ~350°
    sat_azimuth = np.repeat(sat_azimuth[None, :], rows, axis=0)
    f32 = lambda a: np.asarray(a, dtype=np.float32)  # noqa: E731
    return Swath(f32(lat), f32(lon), f32(sun_zenith), f32(sun_azimuth), f32(sat_zenith),
                 f32(sat_azimuth))  # fmt: skip


def solar_angles(start: dt.datetime, seconds, lat, lon) -> tuple[np.ndarray, np.ndarray]:
    """Solar zenith and azimuth (degrees; azimuth clockwise from north, -180..180).

    The Astronomical Almanac's low-precision formulas: a fraction of a degree, plenty
    for telling day from night and for the sun's direction.
    """
    days = (_epoch_seconds(start) + np.asarray(seconds)) / 86400.0 - 0.5  # since J2000.0
    anomaly = np.radians(357.529 + 0.98560028 * days)
    mean_longitude = 280.459 + 0.98564736 * days
    ecliptic = np.radians(mean_longitude + 1.915 * np.sin(anomaly) + 0.020 * np.sin(2 * anomaly))
    obliquity = np.radians(23.439 - 0.00000036 * days)
    right_ascension = np.arctan2(np.cos(obliquity) * np.sin(ecliptic), np.cos(ecliptic))
    declination = np.arcsin(np.sin(obliquity) * np.sin(ecliptic))
    sidereal = np.radians((280.46061837 + 360.98564736629 * days) % 360.0)
    hour = sidereal + np.radians(lon) - right_ascension
    phi = np.radians(lat)
    cos_zenith = np.sin(phi) * np.sin(declination) + np.cos(phi) * np.cos(declination) * np.cos(
        hour
    )
    zenith = np.degrees(np.arccos(np.clip(cos_zenith, -1.0, 1.0)))
    azimuth = np.degrees(
        np.arctan2(-np.sin(hour), np.tan(declination) * np.cos(phi) - np.sin(phi) * np.cos(hour))
    )
    return zenith, azimuth


def cloudiness(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Cloud fraction 0..1, smooth in latitude and longitude (fronts a few degrees across).

    Longitude enters with whole multiples only, so clouds continue across 180°.
    """
    phi, lam = np.radians(lat), np.radians(lon)
    field = (
        np.sin(9.0 * phi + 4.0 * lam)
        + 0.8 * np.sin(5.0 * phi - 7.0 * lam + 1.3)
        + 0.5 * np.sin(17.0 * phi + 11.0 * lam + 0.4)
    )
    return np.clip((field - 0.2) / 1.6, 0.0, 1.0)


def _local_km(lat, lon, centre: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """East and north distances (km) of each pixel from ``centre``."""
    dlon = (lon - centre[1] + 180.0) % 360.0 - 180.0
    east = dlon * KM_PER_DEGREE * np.cos(np.radians(centre[0]))
    north = (lat - centre[0]) * KM_PER_DEGREE
    return east, north


def hot_spots(lat, lon) -> np.ndarray:
    """0..1 at each pixel: how close it is to a volcano's vent (a Gaussian of 15 km)."""
    heat = np.zeros(np.shape(lat))
    for vent in VOLCANOES.values():
        east, north = _local_km(lat, lon, vent)
        heat = np.maximum(heat, np.exp(-(east**2 + north**2) / (2 * HOT_SPOT_SIGMA_KM**2)))
    return heat


def ash(lat, lon) -> np.ndarray:
    """0..1 at each pixel: ash load of the plume drifting from :data:`PLUME`'s volcano."""
    name, bearing, length = PLUME
    east, north = _local_km(lat, lon, VOLCANOES[name])
    b = np.radians(bearing)
    along = east * np.sin(b) + north * np.cos(b)
    across = east * np.cos(b) - north * np.sin(b)
    width = 12.0 + 0.15 * np.clip(along, 0.0, None)
    plume = np.exp(-(across**2) / (2 * width**2)) * np.exp(-np.clip(along, 0.0, None) / length)
    return np.where((along > -5.0) & (along < length), plume, 0.0)


@dataclass(frozen=True)
class Scene:
    """The fields a band's values are made of, at one resolution."""

    swath: Swath
    cloud: np.ndarray
    heat: np.ndarray
    ash: np.ndarray


@functools.lru_cache(maxsize=4)
def scene(start: dt.datetime, resolution: str) -> Scene:
    """Geolocation and the cloud, hot-spot and ash fields of a granule (read-only arrays).

    Cached: the files of one granule (written one after the other) share them, which
    makes a file about twice as fast to write.
    """
    geo = swath(start, resolution)
    lat, lon = geo.latitude.astype(float), geo.longitude.astype(float)
    fields = Scene(geo, cloudiness(lat, lon), hot_spots(lat, lon), ash(lat, lon))
    for array in (*vars(geo).values(), fields.cloud, fields.heat, fields.ash):
        array.flags.writeable = False
    return fields


def brightness_temperature(band: str, fields: Scene, rng: np.random.Generator) -> np.ndarray:
    """Kelvin: sea surface cooling northward, cloud tops colder, ash colder still, hot vents."""
    lat = fields.swath.latitude.astype(float)
    surface = 281.0 - 0.45 * (lat - 45.0)
    cloud_top = 228.0 + 8.0 * np.cos(np.radians(lat))
    bt11 = surface + (cloud_top - surface) * fields.cloud - 9.0 * fields.ash
    bt = bt11 + _THERMAL_OFFSET.get(band, 0.0) * (1.0 - fields.cloud)
    if band == "M16":  # ash is more transparent at 12 µm: M15 - M16 turns negative
        bt = bt + 3.3 * fields.ash
    if band == "I04":  # 3.7 µm also sees sunlight reflected by clouds
        daylight = np.clip(np.cos(np.radians(fields.swath.solar_zenith)), 0.0, 1.0)
        bt = bt + 14.0 * daylight * fields.cloud
    bt = bt + _HOT_SPOT_K.get(band, 5.0) * fields.heat
    return bt + rng.normal(0.0, 0.25, bt.shape)


def reflectance(band: str, fields: Scene, rng: np.random.Generator) -> np.ndarray:
    """Unitless TOA reflectance as the SDR stores it (not divided by cos(solar zenith))."""
    sea, cloud, ash_extra = _ALBEDO.get(band, _ALBEDO["M05"])
    albedo = sea + (cloud - sea) * fields.cloud + ash_extra * fields.ash * (1.0 - fields.cloud)
    albedo = albedo * (1.0 + rng.normal(0.0, 0.02, albedo.shape))
    daylight = np.clip(np.cos(np.radians(fields.swath.solar_zenith)), 0.0, 1.0)
    return np.clip(albedo * daylight, 0.0, 1.2)


def planck_radiance(band: str, kelvin: np.ndarray) -> np.ndarray:
    """W m-2 sr-1 µm-1 at the band's central wavelength."""
    wavelength = WAVELENGTH_UM.get(band, 11.0)
    c1, c2 = 1.191042e8, 1.4387752e4  # W µm4 m-2 sr-1, µm K
    return c1 / (wavelength**5 * (np.exp(c2 / (wavelength * kelvin)) - 1.0))


def solar_radiance(band: str, reflectances: np.ndarray) -> np.ndarray:
    """W m-2 sr-1 µm-1 that gives ``reflectances`` (Earth-Sun distance taken as 1 AU)."""
    return reflectances * SOLAR_IRRADIANCE.get(band, 1560.0) / np.pi
