"""Synthetic VIIRS SDR files that satpy's ``viirs_sdr`` reader loads, for the GINA stand-in,
the demo, tests and benchmarks.

A real SDR file is a few to a few hundred MB of HDF5 in the CSPP layout. We write that
layout, the parts a reader uses, with small arrays (a granule of 2 scans: 32 x 80 M-band
and 64 x 160 I-band pixels, instead of 48 scans of 768 x 3,200 and 1,536 x 6,400):

- root attributes ``Platform_Short_Name`` (NPP, J01, J02), ``N_GEO_Ref`` (band files: the
  geolocation file satpy looks for beside it), creation date and time;
- ``Data_Products/<G>`` with ``Instrument_Short_Name``; ``<G>_Aggr`` with the
  ``Aggregate{Beginning,Ending}{Date,Time,OrbitNumber}`` and ``AggregateNumberGranules``
  attributes; ``<G>_Gran_0`` with the granule's times, orbit and ``N_Number_Of_Scans``;
- ``All_Data/<G>_All``: for a band, ``BrightnessTemperature`` (M15, M16, I04, I05) or
  ``Reflectance`` (M03, M04, M05, I01) and ``Radiance``, uint16 with their ``...Factors``
  (scale, offset) as CSPP stores them; for GMTCO/GITCO, ``Latitude``, ``Longitude`` and the
  solar and satellite zenith and azimuth angles (float32).

The values come from :mod:`synthetic_scene`: a swath over Alaska, kelvin and reflectances
a quick-look can show, a hot spot at volcanoes. ``size`` pads a file with random
(incompressible) bytes to exactly that many bytes, so transfers, MD5 sums and HDF5
checks behave as with real data; a file is never smaller than its layout (about 5 kB
for an M band up to about 250 kB for GITCO, see :func:`layout_size`). Files are written
under a hidden temporary name and renamed, so a directory scanner (the stand-in,
trollstalker) never sees a half-written file. The content is seeded by the file name:
the same arguments give the same bytes (and MD5) every time.

Public API: :data:`MODERATE_SEGMENTS`, :data:`IMAGERY_SEGMENTS`, :data:`ALL_SEGMENTS`,
:data:`GRANULE_SECONDS`, :data:`DEFAULT_SIZE`, :func:`make_sdr_file`, :func:`make_pass`,
:func:`layout_size`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from avoviirscollector import filenames
from avoviirscollector.standins import synthetic_scene
from avoviirscollector.standins.synthetic_scene import GRANULE_SECONDS

__all__ = [
    "ALL_SEGMENTS",
    "DEFAULT_SIZE",
    "GRANULE_SECONDS",
    "IMAGERY_SEGMENTS",
    "MODERATE_SEGMENTS",
    "layout_size",
    "make_pass",
    "make_sdr_file",
]

#: Segments of the moderate-band and imagery-band mirror queues (geolocation first).
MODERATE_SEGMENTS = ("GMTCO", "SVM03", "SVM04", "SVM05", "SVM15", "SVM16")
IMAGERY_SEGMENTS = ("GITCO", "SVI01", "SVI04", "SVI05")
ALL_SEGMENTS = MODERATE_SEGMENTS + IMAGERY_SEGMENTS
#: Default file size: small enough for fast tests, big enough to be split into ranges.
DEFAULT_SIZE = 256 * 1024
#: Orbit numbers at a recent epoch, so names look plausible.
_ORBITS = {"npp": 70000, "j01": 35000, "j02": 9000}
#: File names carry these in lower case; the root attribute in upper case (satpy maps
#: NPP, J01, J02 to Suomi-NPP, NOAA-20, NOAA-21).
_PLATFORM_SHORT = {"npp": "NPP", "j01": "J01", "j02": "J02"}
#: Bands whose SDR holds brightness temperatures; all other bands hold reflectances.
_THERMAL = {f"M{n:02d}" for n in range(12, 17)} | {"I04", "I05"}
_GEOLOCATION = {"GMTCO": ("VIIRS-MOD-GEO-TC", "M"), "GITCO": ("VIIRS-IMG-GEO-TC", "I")}
_BAND_SEGMENT = re.compile(r"^SV([MI])(\d\d)$")
#: Geolocation datasets: CSPP's name and the swath attribute that fills it.
_GEO_DATASETS = {
    "Latitude": "latitude",
    "Longitude": "longitude",
    "SolarZenithAngle": "solar_zenith",
    "SolarAzimuthAngle": "solar_azimuth",
    "SatelliteZenithAngle": "satellite_zenith",
    "SatelliteAzimuthAngle": "satellite_azimuth",
}
#: uint16 scaling (scale, offset) of the stored quantities; 65528 and above are fill values.
_FACTORS = {
    "BrightnessTemperature": (0.0035, 150.0),
    "Reflectance": (2.0e-5, 0.0),
    "Radiance": (0.0005, 0.0),
}
_UINT16_VALID_MAX = 65527
_CHUNK = 8 * 1024 * 1024
#: Room kept for the padding dataset's own header when sizing it (the rest is topped up).
_PADDING_HEADER = 4096


@dataclass(frozen=True)
class Segment:
    """What a segment name means in the CSPP layout."""

    name: str
    group: str  # Data_Products/<group>, All_Data/<group>_All
    resolution: str  # "M" or "I"
    band: str | None  # "M15", "I05"; None for geolocation

    @property
    def quantity(self) -> str | None:
        """The calibrated dataset a band file holds (besides Radiance)."""
        if self.band is None:
            return None
        return "BrightnessTemperature" if self.band in _THERMAL else "Reflectance"

    @property
    def geolocation(self) -> str:
        """The terrain-corrected geolocation segment of this resolution (N_GEO_Ref)."""
        return "GMTCO" if self.resolution == "M" else "GITCO"


def segment_info(segment: str) -> Segment:
    """Segment of a name like ``SVM15`` or ``GITCO``; ValueError for anything else."""
    if segment in _GEOLOCATION:
        group, resolution = _GEOLOCATION[segment]
        return Segment(segment, group, resolution, None)
    match = _BAND_SEGMENT.match(segment)
    if not match:
        raise ValueError(
            f"{segment!r} is not a VIIRS SDR segment this stand-in writes "
            "(GMTCO, GITCO, SVM01-SVM16, SVI01-SVI05)"
        )
    kind, number = match.group(1), int(match.group(2))
    return Segment(segment, f"VIIRS-{kind}{number}-SDR", kind, f"{kind}{number:02d}")


# ----------------------------------------------------------------- attributes as CSPP stores them


def _text(value: str) -> np.ndarray:
    """A string attribute as CSPP writes it: fixed-length bytes in a 1 x 1 array."""
    return np.array([[value.encode("ascii")]], dtype=f"S{max(len(value), 1)}")


def _number(value, dtype) -> np.ndarray:
    return np.array([[value]], dtype=dtype)


def _date(when: dt.datetime) -> np.ndarray:
    return _text(when.strftime("%Y%m%d"))


def _time(when: dt.datetime) -> np.ndarray:
    return _text(when.strftime("%H%M%S.%fZ"))


def _set(obj, attributes: dict[str, np.ndarray]) -> None:
    """Attributes through h5py's low-level API: ``obj.attrs[key] = value`` creates each
    under a temporary name and renames it, which made attributes a third of a file's time."""
    for key, value in attributes.items():
        space = h5py.h5s.create_simple(value.shape)
        h5py.h5a.create(obj.id, key.encode(), h5py.h5t.py_create(value.dtype), space).write(value)


@dataclass(frozen=True)
class Granule:
    """The identity of the file being written."""

    segment: Segment
    platform: str
    start: dt.datetime
    end: dt.datetime
    orbit: int
    created: dt.datetime

    @property
    def granule_id(self) -> str:
        """N_Granule_ID-like: platform and tenths of seconds since 1958 (IET-ish)."""
        tenths = int((self.start - dt.datetime(1958, 1, 1)).total_seconds() * 10)
        return f"{_PLATFORM_SHORT.get(self.platform, self.platform.upper())}{tenths:012d}"


def _write_metadata(h5: h5py.File, granule: Granule, data: h5py.Group, geo_ref: str | None):
    segment = granule.segment
    _set(h5, {
        "Distributor": _text("cspp"),
        "Mission_Name": _text("S-NPP/JPSS"),
        "N_Dataset_Source": _text("synthetic"),
        "N_HDF_Creation_Date": _date(granule.created),
        "N_HDF_Creation_Time": _time(granule.created),
        "Platform_Short_Name": _text(_PLATFORM_SHORT.get(granule.platform,
                                                         granule.platform.upper())),
    })  # fmt: skip
    if geo_ref is not None:
        _set(h5, {"N_GEO_Ref": _text(geo_ref)})
    product = h5.create_group(f"Data_Products/{segment.group}")
    _set(product, {
        "Instrument_Short_Name": _text("VIIRS"),
        "N_Collection_Short_Name": _text(segment.group),
        "N_Dataset_Type_Tag": _text("GEO" if segment.band is None else "SDR"),
        "N_Processing_Domain": _text("ops"),
    })  # fmt: skip
    references = [data[name].ref for name in data]
    aggregate = product.create_dataset(
        f"{segment.group}_Aggr", data=references[:1], dtype=h5py.ref_dtype
    )
    orbit = _number(granule.orbit, np.uint64)
    _set(aggregate, {
        "AggregateBeginningDate": _date(granule.start),
        "AggregateBeginningGranuleID": _text(granule.granule_id),
        "AggregateBeginningOrbitNumber": orbit,
        "AggregateBeginningTime": _time(granule.start),
        "AggregateEndingDate": _date(granule.end),
        "AggregateEndingGranuleID": _text(granule.granule_id),
        "AggregateEndingOrbitNumber": orbit,
        "AggregateEndingTime": _time(granule.end),
        "AggregateNumberGranules": _number(1, np.uint64),
    })  # fmt: skip
    gran = product.create_dataset(f"{segment.group}_Gran_0", data=references, dtype=h5py.ref_dtype)
    _set(gran, {
        "Beginning_Date": _date(granule.start),
        "Beginning_Time": _time(granule.start),
        "Ending_Date": _date(granule.end),
        "Ending_Time": _time(granule.end),
        "N_Beginning_Orbit_Number": orbit,
        "N_Granule_ID": _text(granule.granule_id),
        "N_Number_Of_Scans": _number(synthetic_scene.SCANS, np.int32),
    })  # fmt: skip


# ----------------------------------------------------------------- the arrays


def _scaled(values: np.ndarray, quantity: str) -> tuple[np.ndarray, np.ndarray]:
    """uint16 counts and their float32 (scale, offset), as CSPP stores calibrated bands."""
    scale, offset = _FACTORS[quantity]
    counts = np.clip(np.rint((values - offset) / scale), 0, _UINT16_VALID_MAX)
    return counts.astype(np.uint16), np.array([scale, offset], dtype=np.float32)


def _write_band(data: h5py.Group, segment: Segment, fields, rng: np.random.Generator) -> None:
    band = segment.band
    if segment.quantity == "BrightnessTemperature":
        values = synthetic_scene.brightness_temperature(band, fields, rng)
        radiance = synthetic_scene.planck_radiance(band, values)
    else:
        values = synthetic_scene.reflectance(band, fields, rng)
        radiance = synthetic_scene.solar_radiance(band, values)
    for name, array in ((segment.quantity, values), ("Radiance", radiance)):
        counts, factors = _scaled(array, name)
        data.create_dataset(name, data=counts)
        data.create_dataset(f"{name}Factors", data=factors)


def _write_geolocation(data: h5py.Group, swath) -> None:
    for name, attribute in _GEO_DATASETS.items():
        data.create_dataset(name, data=getattr(swath, attribute))


def _write_layout(h5: h5py.File, granule: Granule, rng: np.random.Generator) -> h5py.Group:
    segment = granule.segment
    data = h5.create_group(f"All_Data/{segment.group}_All")
    fields = synthetic_scene.scene(granule.start, segment.resolution)
    if segment.band is None:
        _write_geolocation(data, fields.swath)
        geo_ref = None
    else:
        _write_band(data, segment, fields, rng)
        geo_ref = filenames.compose(
            segment.geolocation, granule.platform, granule.start, granule.end, granule.orbit,
            granule.created,
        )  # fmt: skip
    _write_metadata(h5, granule, data, geo_ref)
    return data


def _pad(group: h5py.Group, nbytes: int, seed: int):
    """Incompressible bytes written in chunks, so memory stays small for 1 GB files."""
    if nbytes <= 0:
        return
    padding = group.create_dataset("Synthetic_Padding", shape=(nbytes,), dtype=np.uint8)
    rng = np.random.default_rng(seed)
    for offset in range(0, nbytes, _CHUNK):
        count = min(_CHUNK, nbytes - offset)
        padding[offset : offset + count] = np.frombuffer(rng.bytes(count), dtype=np.uint8)


def make_sdr_file(
    directory: str | os.PathLike,
    segment: str,
    platform: str,
    start: dt.datetime,
    *,
    orbit: int | None = None,
    size: int = DEFAULT_SIZE,
    created: dt.datetime | None = None,
) -> Path:
    """Write one SDR file of ``size`` bytes (or of its layout's size, when that is bigger).

    The name comes from :func:`filenames.compose`; the content is seeded by the name,
    so the same arguments give the same bytes (and MD5) every time.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    orbit = _ORBITS.get(platform, 1000) if orbit is None else orbit
    end = start + dt.timedelta(seconds=GRANULE_SECONDS)
    created = created or start + dt.timedelta(minutes=10)
    granule = Granule(segment_info(segment), platform, start, end, orbit, created)
    name = filenames.compose(segment, platform, start, end, orbit, created)
    seed = int.from_bytes(hashlib.md5(name.encode()).digest()[:8], "little")
    final = directory / name
    temporary = directory / f".{name}.writing"
    with h5py.File(temporary, "w", track_order=True) as h5:
        group = _write_layout(h5, granule, np.random.default_rng(seed))
        h5.flush()
        _pad(group, size - h5.id.get_filesize() - _PADDING_HEADER, seed)
    actual = temporary.stat().st_size
    if actual < size:  # HDF5 ignores bytes after its end of file: make the size exact
        with open(temporary, "ab") as stream:
            stream.write(b"\0" * (size - actual))
    os.replace(temporary, final)
    return final


def layout_size(segment: str) -> int:
    """Bytes of a file of ``segment`` without padding: the smallest ``size`` that is exact."""
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        start = dt.datetime(2024, 1, 1)
        return make_sdr_file(scratch, segment, "npp", start, size=0).stat().st_size


def make_pass(
    directory: str | os.PathLike,
    platform: str = "npp",
    start: dt.datetime | None = None,
    *,
    granules: int = 3,
    segments: tuple[str, ...] = ALL_SEGMENTS,
    size: int = DEFAULT_SIZE,
    sizes: dict[str, int] | None = None,
) -> list[Path]:
    """Write the files of a pass: ``granules`` consecutive granules of one platform.

    Every granule gets every segment in ``segments``; ``sizes`` overrides ``size`` per
    segment (real geolocation files are bigger than band files). ``start`` defaults to
    15 minutes ago (UTC, naive), so the files fall inside any backfill window.
    """
    if start is None:
        start = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
        start -= dt.timedelta(minutes=15)
    orbit = _ORBITS.get(platform, 1000)
    paths = []
    for index in range(granules):
        granule_start = start + dt.timedelta(seconds=GRANULE_SECONDS * index)
        tenths = granule_start.microsecond // 100000 * 100000  # names carry tenths of seconds
        granule_start = granule_start.replace(microsecond=tenths)
        for segment in segments:
            paths.append(
                make_sdr_file(
                    directory,
                    segment,
                    platform,
                    granule_start,
                    orbit=orbit,
                    size=(sizes or {}).get(segment, size),
                )
            )
    return paths
