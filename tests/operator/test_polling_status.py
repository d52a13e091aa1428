"""`viirscollector status` shows the mirror's cadence and the next predicted pass per satellite."""

from __future__ import annotations

import datetime as dt
import json

from avoviirscollector.mirror import poll_state
from avoviirscollector.operator import polling_status

NOW = dt.datetime(2026, 5, 30, 13, 0, tzinfo=dt.UTC).timestamp()


def test_the_file_name_is_the_mirrors():
    assert polling_status.POLL_STATE == poll_state.STATE_FILE


def test_cadence_next_poll_and_each_satellites_next_pass():
    state = {
        "cadence": {"interval": 10.0, "reason": "pass noaa20", "until": NOW + 2400, "fast": True},
        "next_poll_at": NOW + 6,
        "passes_key": {"satellites": ["snpp", "noaa20", "noaa21"]},
        "passes": [
            {"satellite": "noaa20", "rise": NOW - 60, "fall": NOW + 600, "max_elevation": 69.0},
            {"satellite": "snpp", "rise": NOW + 3720, "fall": NOW + 4400, "max_elevation": 38.2},
            {"satellite": "snpp", "rise": NOW + 9000, "fall": NOW + 9600, "max_elevation": 10.0},
        ],
    }
    first, second = polling_status.render(state, NOW)
    assert first == "polling:  every 10 s (pass noaa20 until 13:40Z); next poll in 6.0 s"
    assert second == (
        "passes:   snpp 14:02Z (max 38°), noaa20 now (until 13:10Z, max 69°), noaa21 none predicted"
    )


def test_a_tle_problem_is_shown_instead_of_passes(tmp_path):
    state = {"cadence": {"interval": 120.0, "reason": "quiet"}, "tle_problem": "no TLE file x"}
    (tmp_path / polling_status.POLL_STATE).write_text(json.dumps(state))
    lines = polling_status.lines(tmp_path, NOW)
    assert lines[0].startswith("polling:  every 120 s (quiet)")
    assert lines[1] == "passes:   none predicted: no TLE file x"
    assert polling_status.lines(tmp_path / "nowhere", NOW) == [], "the mirror line says it"
