"""Durations and sizes in operator commands read the same everywhere."""

from __future__ import annotations

import datetime as dt

from avoviirscollector.operator.display import duration, size, stamp, utc_naive


def test_durations_use_the_largest_two_units_that_matter():
    assert duration(4.25) == "4.2 s"
    assert duration(723) == "12 min 03 s"
    assert duration(3 * 3600 + 7 * 60 + 59) == "3 h 07 min"
    assert duration(2 * 86400 + 5 * 3600) == "2 d 05 h"
    assert duration(-90) == "-1 min 30 s"


def test_sizes_are_decimal_like_disk_makers_and_the_36_gb_per_day_figure():
    assert size(999) == "999 B"
    assert size(36e9) == "36.0 GB"
    assert size(1.5e6) == "1.5 MB"
    assert size(2.5e15) == "2500.0 TB"


def test_aware_times_become_naive_utc():
    aware = dt.datetime(2024, 5, 1, 14, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert utc_naive(aware) == dt.datetime(2024, 5, 1, 12, 0)
    assert stamp(aware) == "2024-05-01T12:00:00Z"
