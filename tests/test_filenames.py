"""The SDR file name pattern: parsed in one place, clear errors for anything else."""

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from avoviirscollector.filenames import FilenameError, compose, is_sdr_name, parse

REAL_NAME = "SVI05_npp_d20191021_t2327561_e2329203_b41131_c20191021233910734917_cspp_dev.h5"


def test_parses_a_real_gina_file_name():
    name = parse("/viirs/sdr/" + REAL_NAME)
    assert name.segment == "SVI05"
    assert name.platform == "npp"
    assert name.platform_name == "Suomi-NPP"
    assert name.orbit == 41131
    assert name.start == dt.datetime(2019, 10, 21, 23, 27, 56, 100000)
    assert name.end == dt.datetime(2019, 10, 21, 23, 29, 20, 300000)
    assert name.created == dt.datetime(2019, 10, 21, 23, 39, 10, 734917)
    assert name.source == "cspp_dev"
    assert name.name == REAL_NAME
    assert not name.is_geolocation


def test_granule_crossing_midnight_ends_the_next_day():
    name = parse("GITCO_j01_d20191021_t2359201_e0000443_b10000_c20191022001000000000_cspp_dev.h5")
    assert name.end == dt.datetime(2019, 10, 22, 0, 0, 44, 300000)
    assert name.is_geolocation
    assert name.platform_name == "NOAA-20"


def test_unknown_platform_keeps_its_short_name():
    name = parse(REAL_NAME.replace("_npp_", "_j03_"))
    assert name.platform_name == "j03"


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "README.txt",
        "." + REAL_NAME,
        REAL_NAME.replace(".h5", ".h5.part"),
        REAL_NAME.replace("_b41131_", "_bXXXXX_"),
        REAL_NAME.replace("d20191021", "d20191341"),
    ],
)
def test_a_name_that_does_not_match_gives_a_clear_error(bad):
    with pytest.raises(FilenameError, match="SDR"):
        parse(bad)
    assert not is_sdr_name(bad)


@given(
    segment=st.sampled_from(["GMTCO", "GITCO", "SVM03", "SVM16", "SVI01", "SVI05"]),
    platform=st.sampled_from(["npp", "j01", "j02"]),
    start=st.datetimes(dt.datetime(2012, 1, 1), dt.datetime(2040, 1, 1)).map(
        lambda t: t.replace(microsecond=t.microsecond // 100000 * 100000)
    ),
    seconds=st.integers(60, 90),
    orbit=st.integers(0, 99999),
)
def test_compose_and_parse_round_trip(segment, platform, start, seconds, orbit):
    end = start + dt.timedelta(seconds=seconds)
    created = start + dt.timedelta(minutes=10, microseconds=123456)
    name = parse(compose(segment, platform, start, end, orbit, created))
    assert (name.segment, name.platform, name.orbit) == (segment, platform, orbit)
    assert (name.start, name.end, name.created) == (start, end, created)
