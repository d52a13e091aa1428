"""The synthetic SDR files are what satpy's viirs_sdr reader loads, with plausible values.

Every product's files of a granule of each platform are loaded as a worker loads a task
(``Scene(filenames=...)``), including a granule that crosses 00:00 UTC, from task URIs.
And the two pitfalls of finding a task's files by a directory search, which README's
"Writing a worker" describes, are shown here on satpy itself (so a satpy that fixes
them makes this test, and the README, say so).
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import numpy as np
import pytest
from helpers.satpy_needed import satpy

from avoviirscollector import filenames
from avoviirscollector.standins import synthetic_scene, synthetic_sdr
from avoviirscollector.worker.quicklook_rules import PRODUCTS, task_files

PLATFORMS = {"npp": "Suomi-NPP", "j01": "NOAA-20", "j02": "NOAA-21"}
#: The products' segments, as etc/segment_gatherer.ini requires them.
SEGMENTS = {
    "tir": ("GITCO", "SVI05"),
    "mir": ("GITCO", "SVI04"),
    "btd": ("GMTCO", "SVM15", "SVM16"),
    "vis": ("GMTCO", "GITCO", "SVM03", "SVM04", "SVM05", "SVI01"),
}
#: A summer afternoon pass over the Aleutians (local solar time ~13:30): daylight.
DAY = dt.datetime(2026, 7, 1, 23, 0, 0)
THERMAL_UNITS = {"I04", "I05", "M15", "M16"}


def load(files, bands):
    """What a worker does with a task's files."""
    scene = satpy().Scene(filenames=[str(f) for f in files], reader="viirs_sdr")
    scene.load(list(bands))
    return scene


def files_of(paths, segments):
    return [p for p in paths if p.name[:5] in segments]


@pytest.fixture(scope="module")
def passes(tmp_path_factory):
    """Two granules of every segment for each platform, 25 minutes apart."""
    directory = tmp_path_factory.mktemp("sdr")
    return {
        platform: synthetic_sdr.make_pass(
            directory, platform, DAY + dt.timedelta(minutes=25 * n), granules=2, size=0
        )
        for n, platform in enumerate(PLATFORMS)
    }


@pytest.mark.parametrize("platform", sorted(PLATFORMS))
@pytest.mark.parametrize("product", sorted(PRODUCTS))
def test_every_product_of_every_platform_loads_in_satpy_with_plausible_values(
    passes, platform, product
):
    paths = files_of(passes[platform], SEGMENTS[product])
    scene = load(paths, PRODUCTS[product].bands)
    first = filenames.parse(paths[0].name)
    for band in PRODUCTS[product].bands:
        data = scene[band]
        rows, columns = synthetic_scene.shape(band[0])
        assert data.shape == (2 * rows, columns), band
        assert data.attrs["platform_name"] == PLATFORMS[platform]
        assert data.attrs["start_orbit"] == first.orbit
        assert data.attrs["start_time"] == first.start
        assert data.attrs["rows_per_scan"] == synthetic_scene.ROWS_PER_SCAN[band[0]]
        values = data.values
        assert np.isfinite(values).all(), band
        if band in THERMAL_UNITS:
            assert data.attrs["units"] == "K"
            assert values.min() > 200 and values.max() < 370, (band, values.min(), values.max())
        else:
            assert data.attrs["units"] == "%"
            assert values.min() >= 0 and values.max() <= 120, (band, values.min(), values.max())
            assert values.max() > 20, "a daylight pass has bright clouds"
        lon, lat = map(np.asarray, data.attrs["area"].get_lonlats())
        assert lat.min() >= 44 and lat.max() <= 76, "Alaska and the Aleutians"
        assert ((lon <= -100) | (lon >= 140)).all(), "around 160° W, across the date line"


def test_a_volcano_is_a_hot_spot_at_3_7_um_and_its_ash_plume_has_a_negative_split_window(
    tmp_path,
):
    vent = synthetic_scene.VOLCANOES["Shishaldin"]
    start = synthetic_scene.granule_over(vent[0], DAY)
    paths = synthetic_sdr.make_pass(tmp_path, "j01", start, granules=1, size=0)
    scene = load(paths, ["I04", "M15", "M16"])
    i04 = scene["I04"]
    lon, lat = map(np.asarray, i04.attrs["area"].get_lonlats())
    hottest = np.unravel_index(np.nanargmax(i04.values), i04.shape)
    assert i04.values[hottest] > 330
    assert abs(lat[hottest] - vent[0]) < 0.3 and abs(lon[hottest] - vent[1]) < 0.6
    btd = scene["M15"].values - scene["M16"].values
    assert btd.min() < -0.5, "ash: M15 - M16 < 0"
    assert np.median(btd) > 0, "elsewhere the split window is positive"


def test_a_granule_crossing_midnight_loads_from_its_task_uris(tmp_path):
    crossing = dt.datetime(2026, 3, 1, 23, 59, 30)
    paths = synthetic_sdr.make_pass(tmp_path, "j02", crossing, granules=1, size=0)
    data = {"dataset": [{"uid": p.name, "uri": p.as_uri()} for p in paths]}  # file:// URIs
    files = files_of([Path(f) for f in task_files(data)], SEGMENTS["tir"])
    scene = load(files, ["I05"])
    assert scene["I05"].attrs["start_time"] == crossing
    assert scene["I05"].attrs["end_time"].date() == dt.date(2026, 3, 2)
    assert scene["I05"].shape == synthetic_scene.shape("I")


def test_satpy_issue_2129_a_time_search_drops_the_granule_that_crosses_midnight(tmp_path):
    crossing = dt.datetime(2026, 3, 1, 23, 59, 30)
    before = crossing - dt.timedelta(seconds=synthetic_sdr.GRANULE_SECONDS)
    synthetic_sdr.make_pass(tmp_path, "npp", before, granules=3, segments=("SVI05",), size=0)
    find = satpy().find_files_and_readers
    found = find(
        start_time=crossing, end_time=crossing + dt.timedelta(seconds=80), base_dir=str(tmp_path),
        reader="viirs_sdr", missing_ok=True,
    )  # fmt: skip
    assert found == {}, "satpy dates the end on the start's day: 00:00:55 is before 23:59:30"
    wide = find(
        start_time=crossing - dt.timedelta(minutes=2), end_time=crossing + dt.timedelta(minutes=3),
        base_dir=str(tmp_path), reader="viirs_sdr",
    )  # fmt: skip
    starts = sorted(filenames.parse(path).start for path in wide["viirs_sdr"])
    assert len(starts) == 2 and crossing not in starts, "its neighbours, never the granule itself"


def test_a_platform_name_filter_filters_nothing_on_file_names(tmp_path):
    for n, platform in enumerate(("j01", "j02", "npp")):  # NOAA-21 25 minutes behind NOAA-20
        start = DAY + dt.timedelta(minutes=25 * n)
        synthetic_sdr.make_pass(tmp_path, platform, start, granules=1, segments=("SVI05",), size=0)
    find = satpy().find_files_and_readers
    window = {"start_time": DAY, "end_time": DAY + dt.timedelta(hours=1)}
    found = find(**window, base_dir=str(tmp_path), reader="viirs_sdr",
                 filter_parameters={"platform_name": "NOAA-21"})  # fmt: skip
    assert sorted(Path(f).name[6:9] for f in found["viirs_sdr"]) == ["j01", "j02", "npp"]
    short = find(**window, base_dir=str(tmp_path), reader="viirs_sdr",
                 filter_parameters={"platform_shortname": "j02"})  # fmt: skip
    assert [Path(f).name[6:9] for f in short["viirs_sdr"]] == ["j02"]


def test_synthetic_files_stay_small_and_fast_to_write(tmp_path):
    began = time.perf_counter()
    paths = synthetic_sdr.make_pass(tmp_path, "npp", DAY, granules=3, size=0)
    per_file = (time.perf_counter() - began) / len(paths)
    sizes = {p.name[:5]: p.stat().st_size for p in paths}
    assert max(sizes.values()) < 300_000 and min(sizes.values()) > 10_000, sizes
    assert per_file < 0.05, f"{per_file * 1000:.1f} ms per file"
