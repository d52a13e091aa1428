"""mirror_gina's polls against the GINA stand-in: gzip, validators, 304, fallback, TLEs, gate."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from avoviirscollector.mirror import poll_state
from avoviirscollector.standins import synthetic_sdr
from avoviirscollector.standins.celestrak import shift_elements
from avoviirscollector.standins.gina import GinaStandin

MIRROR = [sys.executable, "-m", "avoviirscollector.cli", "mirror"]
#: Real elements of NOAA-20, Suomi-NPP and NOAA-21 (see tests/mirror/data/README.md).
SHIPPED_TLE = Path(__file__).parent / "data" / "noaa-2026-05-30.txt"
QUEUES = """
queues:
  - name: snpp-imagery
    satellite: snpp
    bands: [GITCO, SVI01, SVI04, SVI05]
  - name: noaa20-imagery
    satellite: noaa20
    bands: [GITCO, SVI01, SVI04, SVI05]
"""


@pytest.fixture
def gina_dir(tmp_path):
    directory = tmp_path / "gina"
    synthetic_sdr.make_pass(directory, "npp", granules=1, size=50_000)
    synthetic_sdr.make_pass(directory, "j01", granules=1, size=50_000)
    return directory


@pytest.fixture
def queue_file(tmp_path):
    path = tmp_path / "queues.yaml"
    path.write_text(QUEUES)
    return path


def run(base_dir, gina, queue_file, *args, **env):
    variables = {**os.environ, "VIIRS_BASE_DIR": str(base_dir), "GINA_URL": gina.url, **env}
    return subprocess.run(
        [*MIRROR, "--queues", str(queue_file), *args],
        env=variables,
        capture_output=True,
        text=True,
        timeout=60,
    )


def last_run(base_dir) -> dict:
    return json.loads((base_dir / "state" / "mirror_gina-last-run.json").read_text())


def state(base_dir) -> poll_state.PollState:
    return poll_state.load(base_dir / "state")


def placed(base_dir) -> set[str]:
    return {p.name for p in (base_dir / "sdr").iterdir()}


def wanted(gina_dir) -> set[str]:
    return {p.name for p in gina_dir.glob("*.h5") if p.name.startswith(("GITCO", "SVI"))}


def test_one_gzip_listing_for_every_queue_then_a_304_that_costs_no_parse_and_no_work(
    base_dir, gina_dir, queue_file
):
    with GinaStandin(gina_dir, catalog_days=2) as gina:
        first = run(base_dir, gina, queue_file, "--now")
        assert first.returncode == 0, first.stderr
        assert placed(base_dir) == wanted(gina_dir)
        listing = last_run(base_dir)["listing"]
        assert [r["satellites"] for r in listing] == [["snpp", "noaa20"]], "one request"
        assert listing[0]["status"] == 200 and listing[0]["entries"] > 3000
        assert listing[0]["wire_bytes"] * 5 < len(json.dumps(gina.catalog({}))), "gzip"

        second = run(base_dir, gina, queue_file, "--now")
        assert second.returncode == 0, second.stderr
        assert gina.stats()["catalog_not_modified"] == 1
        summary = last_run(base_dir)
        assert summary["listing"][0]["status"] == 304 and summary["listing"][0]["entries"] == 0
        assert summary["queues"] == [], "a 304 means nothing new: no queue runs"
        assert second.stderr.count("\n") == 1 and "304" in second.stderr, (
            "an operator's run says it"
        )


def test_last_modified_alone_also_gives_a_304(base_dir, gina_dir, queue_file):
    with GinaStandin(gina_dir, validators="last-modified") as gina:
        for _ in range(2):
            run(base_dir, gina, queue_file, "--now")
        assert gina.stats()["catalog_not_modified"] == 1


def test_a_server_that_ignores_gzip_and_validators_still_works_and_nothing_is_fetched_twice(
    base_dir, gina_dir, queue_file
):
    with GinaStandin(gina_dir, gzip=False, validators="none") as gina:
        for _ in range(2):
            assert run(base_dir, gina, queue_file, "--now").returncode == 0
        stats = gina.stats()
        assert stats["catalog_requests"] == 2 and stats["catalog_not_modified"] == 0
        assert stats["file_requests"] == len(wanted(gina_dir))
        assert placed(base_dir) == wanted(gina_dir)
        assert state(base_dir).validators == {}


def test_a_new_file_changes_the_answer_and_is_fetched_in_the_next_poll(
    base_dir, gina_dir, queue_file
):
    with GinaStandin(gina_dir) as gina:
        run(base_dir, gina, queue_file, "--now")
        # A granule of its own: make_pass's default start (15 minutes ago, to the second)
        # is the fixture's whenever the first run took under a second.
        later = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(minutes=5)
        new = synthetic_sdr.make_pass(gina_dir, "npp", later, granules=1, segments=("SVI05",))
        again = run(base_dir, gina, queue_file, "--now")
        assert {p.name for p in new} <= placed(base_dir)
        assert f"fetched {new[0].name}" in again.stderr
        assert gina.stats()["catalog_not_modified"] == 0


def test_a_server_answering_only_one_satellite_is_asked_per_satellite_said_once(
    base_dir, gina_dir, queue_file
):
    with GinaStandin(gina_dir, multi_satellite=False) as gina:
        first = run(base_dir, gina, queue_file, "--now")
        assert first.returncode == 0, first.stderr
        assert placed(base_dir) == wanted(gina_dir), "NOAA-20's files too"
        assert first.stderr.count("asking once per satellite from now on") == 1
        assert state(base_dir).mode == "per-satellite"
        second = run(base_dir, gina, queue_file, "--now")
        assert "asking once per satellite" not in second.stderr
        assert [r["satellites"] for r in last_run(base_dir)["listing"]] == [["snpp"], ["noaa20"]]


def test_a_satellite_without_data_is_no_reason_to_fall_back(base_dir, tmp_path, queue_file):
    only_npp = tmp_path / "npp-only"
    synthetic_sdr.make_pass(only_npp, "npp", granules=1, size=50_000)
    with GinaStandin(only_npp) as gina:
        first = run(base_dir, gina, queue_file, "--now")
        assert first.returncode == 0 and "per satellite" not in first.stderr
        assert state(base_dir).mode == "multi"


def test_between_full_listings_a_scheduled_poll_asks_for_today_only(base_dir, gina_dir, queue_file):
    with GinaStandin(gina_dir, catalog_days=3) as gina:
        run(base_dir, gina, queue_file, "--now", GINA_BACKFILL_DAYS="3")
        wide = last_run(base_dir)["listing"][0]["entries"]
        state_now = state(base_dir)
        state_now.next_poll_at = time.time() - 1
        poll_state.save(state_now, base_dir / "state")
        narrow = run(base_dir, gina, queue_file, GINA_BACKFILL_DAYS="3")
        assert narrow.returncode == 0 and narrow.stderr == "", "nothing new: no line"
        assert 0 < last_run(base_dir)["listing"][0]["entries"] < wide, "today's files only"


def test_a_run_with_nothing_due_ends_at_once_without_asking_gina(base_dir, gina_dir, queue_file):
    with GinaStandin(gina_dir) as gina:
        assert run(base_dir, gina, queue_file).returncode == 0, "no state yet: polls"
        requests = gina.stats()["catalog_requests"]
        began = time.monotonic()
        quiet = run(base_dir, gina, queue_file)
        assert time.monotonic() - began < 5
        assert quiet.returncode == 0 and quiet.stderr == ""
        assert gina.stats()["catalog_requests"] == requests


def test_the_gate_decides_before_loading_pycurl_h5py_or_pyorbital(base_dir):
    poll_state.save(poll_state.PollState(next_poll_at=time.time() + 600), base_dir / "state"
                    if (base_dir / "state").mkdir() is None else None)  # fmt: skip
    code = (
        "import sys; from avoviirscollector.mirror import mirror_gina; "
        "status = mirror_gina.main([]); "
        "print(status, sorted(m for m in ('pycurl', 'h5py', 'pyorbital', 'numpy') "
        "if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "VIIRS_BASE_DIR": str(base_dir)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.stdout.strip() == "0 []", result.stderr


def test_a_collector_start_forces_a_poll_of_the_whole_window(base_dir, gina_dir, queue_file):
    with GinaStandin(gina_dir) as gina:
        run(base_dir, gina, queue_file)
        pidfile = base_dir / "tmp" / "supervisord.pid"
        pidfile.write_text("1\n")
        after_start = run(base_dir, gina, queue_file, VIIRS_LOG_LEVEL="DEBUG")
        assert "whole window (collector start)" in after_start.stderr
        assert gina.stats()["catalog_requests"] == 2


# -- the TLE file: missing, stale, corrupt, good --------------------------------------------


def elements_file(base_dir) -> Path:
    path = base_dir / "elements" / "noaa.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def test_a_missing_tle_file_is_one_warning_and_the_fixed_cadence(base_dir, tmp_path, queue_file):
    empty = tmp_path / "empty"
    empty.mkdir()
    with GinaStandin(empty) as gina:
        first = run(base_dir, gina, queue_file, "--now")
        assert first.returncode == 0
        assert first.stderr.count("no pass prediction: no TLE file") == 1
        assert "Traceback" not in first.stderr
        poll = state(base_dir)
        assert poll.next_poll_at - poll.last_poll == 120, "GINA_POLL_SLOW_SECONDS"
        second = run(base_dir, gina, queue_file, "--now")
        assert "no pass prediction" not in second.stderr, "said once, not every poll"


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (SHIPPED_TLE.read_text(), "days old"),
        (SHIPPED_TLE.read_text().replace("98.7769", "98.7768"), "bad checksum"),
        ("<html>Service Unavailable</html>\n", "no elements for snpp"),
    ],
    ids=["stale", "corrupt", "not-a-tle-file"],
)
def test_a_stale_or_corrupt_tle_file_is_one_warning_and_the_fixed_cadence(
    base_dir, tmp_path, queue_file, content, says
):
    elements_file(base_dir).write_text(content)
    empty = tmp_path / "empty"
    empty.mkdir()
    with GinaStandin(empty) as gina:
        result = run(base_dir, gina, queue_file, "--now")
    assert result.returncode == 0 and "Traceback" not in result.stderr
    warnings = [line for line in result.stderr.splitlines() if "no pass prediction" in line]
    assert len(warnings) == 1 and says in warnings[0], result.stderr
    poll = state(base_dir)
    assert poll.passes == [] and poll.next_poll_at - poll.last_poll == 120


def test_current_elements_predict_passes_and_a_pass_makes_polling_fast(
    base_dir, tmp_path, queue_file
):
    """The shipped elements moved to now: NOAA-20's pass over Gilmore rises in a minute."""
    import datetime as dt

    from avoviirscollector.mirror import passes

    text = SHIPPED_TLE.read_text()
    epoch = dt.datetime(2026, 5, 30, 12, 30)
    first = passes.predict(passes.read_elements(text, ["noaa20"], epoch), "gilmore", epoch, 6)[0]
    elements_file(base_dir).write_text(shift_elements(text, time.time() + 60 - first.rise))
    empty = tmp_path / "empty"
    empty.mkdir()
    with GinaStandin(empty) as gina:
        result = run(base_dir, gina, queue_file, "--now")
    assert result.returncode == 0, result.stderr
    poll = state(base_dir)
    assert {p["satellite"] for p in poll.passes} == {"snpp", "noaa20"}
    assert poll.cadence["fast"] and poll.cadence["reason"].startswith("pass ")
    rising = [p for p in poll.passes if p["satellite"] == "noaa20" and p["rise"] > time.time()]
    assert rising and rising[0]["rise"] - time.time() < 60, "NOAA-20 rises within the minute"
    assert poll.next_poll_at - poll.last_poll == 10
    assert "polling every 10 s: pass " in result.stderr


def test_every_info_line_of_a_poll_is_under_200_characters_and_names_its_file(
    base_dir, gina_dir, queue_file
):
    with GinaStandin(gina_dir, catalog_days=1) as gina:
        result = run(base_dir, gina, queue_file, "--now")
    info = [line for line in result.stderr.splitlines() if " INFO " in line]
    assert info and max(len(line) for line in info) < 200, max(info, key=len)
    for name in wanted(gina_dir):
        assert sum(name in line for line in info) == 1, f"one line for {name}"


def test_the_stand_in_lists_a_gina_sized_catalogue_filtered_by_date_and_satellite(gina_dir):
    import datetime as dt

    with GinaStandin(gina_dir, catalog_days=3) as gina:
        today = dt.datetime.now(dt.UTC).date()
        every = gina.catalog({})
        one_day = gina.catalog({"start_date": [today.isoformat()], "end_date": [today.isoformat()]})
        snpp = gina.catalog({"satellites[]": ["snpp"]})
    per_day_and_satellite = (len(every) - 20) / 3 / 3
    assert 1000 < per_day_and_satellite < 1800, "~100 granules x 17 unwanted files"
    assert 0 < len(one_day) < len(every) / 2
    assert {e["satellite"] for e in snpp} == {"snpp"}


def test_the_mirror_reads_the_tle_file_the_hourly_job_writes():
    from avoviirscollector.jobs import tle
    from avoviirscollector.mirror import mirror_run

    assert mirror_run.TLE_FILE == tle.TLE_FILENAME
