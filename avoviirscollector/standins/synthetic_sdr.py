"""Synthetic but valid VIIRS SDR HDF5 files, for the GINA stand-in, the demo, tests and benchmarks.

A real SDR file is a few to a few hundred MB of HDF5 with the CSPP layout
(``All_Data/VIIRS-M15-SDR_All/BrightnessTemperature``, ``Data_Products/...``). We
write that layout with small arrays and pad the file to the size asked for with
random (incompressible) bytes, so transfers, MD5 sums and HDF5 checks behave as
with real data. Files are written under a hidden temporary name and renamed, so a
directory scanner (the stand-in, trollstalker) never sees a half-written file.

Public API: :data:`MODERATE_SEGMENTS`, :data:`IMAGERY_SEGMENTS`,
:data:`GRANULE_SECONDS`, :func:`make_sdr_file`, :func:`make_pass`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from pathlib import Path

import h5py
import numpy as np

from avoviirscollector import filenames

#: Segments of the moderate-band and imagery-band mirror queues (geolocation first).
MODERATE_SEGMENTS = ("GMTCO", "SVM03", "SVM04", "SVM05", "SVM15", "SVM16")
IMAGERY_SEGMENTS = ("GITCO", "SVI01", "SVI04", "SVI05")
ALL_SEGMENTS = MODERATE_SEGMENTS + IMAGERY_SEGMENTS
#: Length of one VIIRS granule (about 86 s).
GRANULE_SECONDS = 85.35
#: Default file size: small enough for fast tests, big enough to be split into ranges.
DEFAULT_SIZE = 256 * 1024
#: Orbit numbers at a recent epoch, so names look plausible.
_ORBITS = {"npp": 70000, "j01": 35000, "j02": 9000}
_PLATFORM_SHORT = {"npp": "NPP", "j01": "J01", "j02": "J02"}
_THERMAL = {"M15", "M16", "I04", "I05", "I4", "I5"}
_CHUNK = 8 * 1024 * 1024


def _group_names(segment: str) -> tuple[str, str, tuple[str, ...]]:
    """(All_Data group, Data_Products group, datasets) of a segment, as CSPP names them."""
    if segment == "GMTCO":
        return "VIIRS-MOD-GEO-TC_All", "VIIRS-MOD-GEO-TC", ("Latitude", "Longitude", "Height")
    if segment == "GITCO":
        return "VIIRS-IMG-GEO-TC_All", "VIIRS-IMG-GEO-TC", ("Latitude", "Longitude", "Height")
    kind, number = segment[2], int(segment[3:])  # SVM05 -> M, 5
    band = f"{kind}{number}"
    product = f"VIIRS-{band}-SDR"
    quantity = "BrightnessTemperature" if f"{kind}{number:02d}" in _THERMAL else "Reflectance"
    return f"{product}_All", product, ("Radiance", quantity)


def _write_layout(h5: h5py.File, segment: str, platform: str, start: dt.datetime, orbit: int):
    all_group, product, datasets = _group_names(segment)
    h5.attrs["Platform_Short_Name"] = np.bytes_(_PLATFORM_SHORT.get(platform, platform.upper()))
    h5.attrs["Instrument_Short_Name"] = np.bytes_("VIIRS")
    h5.attrs["N_Dataset_Source"] = np.bytes_("synthetic")
    data = h5.create_group(f"All_Data/{all_group}")
    rng = np.random.default_rng(orbit)
    for name in datasets:
        data.create_dataset(name, data=rng.random((16, 32), dtype=np.float32))
    granule = h5.create_group(f"Data_Products/{product}").create_dataset(
        f"{product}_Gran_0", data=np.zeros(1, dtype=np.uint8)
    )
    granule.attrs["Beginning_Date"] = np.bytes_(start.strftime("%Y%m%d"))
    granule.attrs["Beginning_Time"] = np.bytes_(start.strftime("%H%M%S.%fZ"))
    granule.attrs["N_Beginning_Orbit_Number"] = np.uint64(orbit)
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
    """Write one SDR file of about ``size`` bytes (at least the ~10 kB of its layout).

    The name comes from :func:`filenames.compose`; the content is seeded by the name,
    so the same arguments give the same bytes (and MD5) every time.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    orbit = _ORBITS.get(platform, 1000) if orbit is None else orbit
    end = start + dt.timedelta(seconds=GRANULE_SECONDS)
    created = created or start + dt.timedelta(minutes=10)
    name = filenames.compose(segment, platform, start, end, orbit, created)
    seed = int.from_bytes(hashlib.md5(name.encode()).digest()[:8], "little")
    final = directory / name
    temporary = directory / f".{name}.writing"
    with h5py.File(temporary, "w", track_order=True) as h5:
        group = _write_layout(h5, segment, platform, start, orbit)
        overhead = 16 * 1024  # more than the layout above, with the padding dataset's header
        _pad(group, size - overhead, seed)
    actual = temporary.stat().st_size
    if actual < size:  # HDF5 ignores bytes after its end of file: make the size exact
        with open(temporary, "ab") as stream:
            stream.write(b"\0" * (size - actual))
    os.replace(temporary, final)
    return final


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
