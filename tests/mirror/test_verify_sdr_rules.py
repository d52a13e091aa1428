"""verify-sdr's rules and the adoption's name rules, without I/O."""

from __future__ import annotations

import datetime as dt

import pytest

from avoviirscollector import filenames
from avoviirscollector.mirror import adoption_rules
from avoviirscollector.mirror import verify_sdr_rules as rules
from avoviirscollector.mirror.verify_sdr_rules import Planned, Progress, Result

START = dt.datetime(2026, 11, 28, 12, 0, 0)


def name(segment="SVI05", platform="npp", minutes=0) -> str:
    start = START + dt.timedelta(minutes=minutes)
    end = start + dt.timedelta(seconds=85)
    return filenames.compose(segment, platform, start, end, 70000, start + dt.timedelta(minutes=9))


def planned(file_name: str, size: int = 100) -> Planned:
    return Planned(file_name, size, 1, 2)


def test_plan_checks_the_newest_granule_first_and_leaves_other_names_alone():
    old, new = name(minutes=-3000), name(minutes=0)
    order = rules.plan([planned(old), planned("notes.txt"), planned(new), planned(".hidden.h5")])
    assert [e.name for e in order] == [new, old]


def test_a_file_changed_since_the_plan_is_not_the_planned_file():
    entry = Planned("x", 10, 5, 7)
    assert rules.still_planned(entry, 10, 5, 7)
    assert not rules.still_planned(entry, 10, 5, 8)  # another inode: placed again
    assert not rules.still_planned(entry, 11, 5, 7)


@pytest.mark.parametrize(
    ("listed", "actual", "hdf5", "expected"),
    [
        ("ab" * 16, "ab" * 16, None, Result.OK),
        ("AB" * 16, "ab" * 16, None, Result.OK),
        ("ab" * 16, "cd" * 16, None, Result.BAD_MD5),
        ("ab" * 16, "cd" * 16, "truncated", Result.BAD_MD5),
        ("ab" * 16, "ab" * 16, "not HDF5", Result.NOT_HDF5),
        (None, None, None, Result.HDF5_ONLY),
        (None, None, "truncated file", Result.NOT_HDF5),
    ],
)
def test_verdict_asks_gina_s_md5_where_listed_and_hdf5_everywhere(listed, actual, hdf5, expected):
    result, reason = rules.verdict(listed, actual, hdf5)
    assert result is expected and reason
    assert (result in rules.QUARANTINED) == (expected in (Result.BAD_MD5, Result.NOT_HDF5))


def test_gina_is_asked_per_satellite_for_every_day_the_files_cover():
    entries = [planned(name(platform="npp", minutes=-3 * 1440)), planned(name(platform="j01"))]
    assert rules.satellites(entries) == ["noaa20", "snpp"]
    today = START.date()
    assert rules.query_days(entries, today, minimum=2) == 4  # three days back and today
    assert rules.query_days([planned(name())], today, minimum=2) == 2
    assert rules.query_days([], today, minimum=2) == 2


def test_pause_keeps_the_average_rate_at_the_limit():
    assert rules.pause(50_000_000, 0.5, rate_mb=50) == pytest.approx(0.5)
    assert rules.pause(50_000_000, 2.0, rate_mb=50) == 0.0


def test_progress_line_names_files_megabytes_rate_and_eta():
    progress = Progress(files_total=21000, bytes_total=250e9, files_done=2100, bytes_done=25e9)
    progress.run_bytes, progress.run_seconds, progress.quarantined = 25e9, 500.0, 2
    line = rules.progress_line(progress)
    assert line.startswith("2,100 of 21,000 files, 25,000.0 of 250,000.0 MB (10.0%), 50.0 MB/s")
    assert "ETA 1 h 15 min" in line and "2 quarantined" in line
    assert rules.duration(None) == "unknown" and rules.duration(65) == "1 min 05 s"


def test_journal_survives_a_torn_last_line():
    text = rules.done_line("a.h5", Result.OK, "fine") + rules.done_line("b.h5", Result.BAD_MD5, "")
    results = rules.parse_done(text + '{"name": "c.h5", "res')
    assert results == {"a.h5": Result.OK, "b.h5": Result.BAD_MD5}


def test_plan_round_trips_through_its_json():
    entries = [planned(name()), planned(name(minutes=5), size=7)]
    assert rules.plan_from_json(rules.plan_to_json(entries)) == entries
    with pytest.raises(ValueError):
        rules.plan_from_json('[{"name": "x"}]')


@pytest.mark.parametrize(
    "leftover",
    [
        name(),  # tomputils downloaded straight to tmp/<SDR name>
        "viirs-moderate-snpp.lock",
        "viirs-imagery-noaa20.lock",
        "viirs-dnb-noaa21.lock",
        "snpp_GMTCO-SVM03-SVM04.lock",
        "noaa20_imagery.lock",
    ],
)
def test_the_original_s_tmp_leftovers_are_recognised(leftover):
    assert adoption_rules.original_leftover(leftover)


@pytest.mark.parametrize(
    "ours",
    [
        *adoption_rules.OUR_TMP_NAMES,
        "mirror_gina-snpp-moderate.lock",
        "mirror_gina-noaa20-imagery.lock",
        "mirror_gina-noaa21-moderate",
        f"{name()}.part",
        f".{name()}.writing",
        "noaa.txt",
        "snpp.lock",
        "other-snpp.lock",
    ],
)
def test_no_name_of_ours_is_ever_taken_for_a_leftover(ours):
    assert adoption_rules.original_leftover(ours) is None


def test_a_name_quarantined_twice_keeps_both():
    assert adoption_rules.quarantine_name("a.h5", set()) == "a.h5"
    assert adoption_rules.quarantine_name("a.h5", {"a.h5", "a.h5.json"}) == "a.h5.1"
    assert adoption_rules.quarantine_name("a.h5", {"a.h5", "a.h5.1"}) == "a.h5.2"
