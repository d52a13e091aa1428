"""`viirscollector reprocess`: file messages again, marked as a deliberate reprocess.

The selection rules are tested directly; publishing goes through a real posttroll
nameserver to a real subscriber (the way the gatherers and msg_publisher listen).
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.bus import BusListener, Daemon, granule_names, nameserver_argv, wait_until

from avoviirscollector.filenames import parse
from avoviirscollector.operator import reprocess
from avoviirscollector.pipeline.file_messages import FILE_TOPIC, file_message_data

CLI = [sys.executable, "-m", "avoviirscollector.cli"]
T1 = dt.datetime(2019, 10, 21, 23, 27, 56, 100000)
T2 = T1 + dt.timedelta(minutes=101)


def names():
    older = granule_names(["SVI05", "GITCO"], platform="npp", orbit=41131, start=T1)
    newest_a = granule_names(["SVM16", "GMTCO"], platform="j01", orbit=10200, start=T2)
    newest_b = granule_names(
        ["SVM16"], platform="j01", orbit=10200, start=T2 + dt.timedelta(seconds=85)
    )
    return older, newest_a + newest_b


def test_default_selects_every_file_of_the_newest_orbit_geolocation_first():
    older, newest = names()
    chosen = reprocess.select([*older, *newest, ".hidden", "README"], None)
    assert [s.name for s in chosen] == [
        next(n for n in newest if n.startswith("GMTCO")),
        next(n for n in newest if n.startswith("SVM16") and parse(n).start == T2),
        next(n for n in newest if parse(n).start > T2),
    ]


def test_pattern_selects_names_containing_it_globs_allowed_like_the_original():
    older, newest = names()
    every = older + newest
    assert {s.name for s in reprocess.select(every, "_b41131_")} == set(older)
    assert {s.name for s in reprocess.select(every, "SVM16_j01*b10200")} == {
        n for n in newest if n.startswith("SVM16")
    }
    assert reprocess.select(every, "nothing-matches") == []


def test_hidden_and_foreign_files_are_never_selected():
    assert reprocess.select([".SVI05_npp_x.h5", "notes.txt"], "") == []


def test_request_id_is_utc_iso_time():
    assert reprocess.request_id(dt.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC)) == (
        "reprocess-2024-01-02T03:04:05.000006Z"
    )


@pytest.fixture
def nameserver(tmp_path):
    daemon = Daemon(nameserver_argv(), dict(os.environ), tmp_path / "nameserver.log")
    wait_until(lambda: reprocess._nameserver_answers(0.5), 20, "the nameserver to answer")
    yield daemon
    daemon.stop()


def land_all(sdr: Path, file_names) -> list[Path]:
    sdr.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in file_names:
        (sdr / name).write_bytes(b"sdr")
        paths.append(sdr / name)
    return paths


def test_reprocess_publishes_trollstalkers_message_plus_request_id_for_the_newest_orbit(
    base_dir, nameserver
):
    older, newest = names()
    land_all(base_dir / "sdr", older + newest)
    with BusListener(FILE_TOPIC) as listener:
        result = subprocess.run(
            [*CLI, "reprocess"], env=dict(os.environ), capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        messages = [listener.get(timeout=10)]
        messages += listener.drain(quiet=1.0)
    assert sorted(m.data["uid"] for m in messages) == sorted(newest)
    requests = {m.data["reprocess"] for m in messages}
    assert len(requests) == 1
    request = requests.pop()
    assert isinstance(request, str) and request.startswith("reprocess-20")
    first = messages[0]
    expected = file_message_data(base_dir / "sdr" / first.data["uid"])
    assert {k: v for k, v in first.data.items() if k != "reprocess"} == expected
    assert first.subject == FILE_TOPIC and first.type == "file"
    assert f"published {len(newest)} file message(s) of the newest orbit" in result.stderr


def test_no_message_for_a_file_that_vanished_after_selection(base_dir, nameserver):
    older, _ = names()
    sdr = base_dir / "sdr"
    paths = land_all(sdr, older)
    files = reprocess.select(os.listdir(sdr), None)
    paths[0].unlink()
    with BusListener(FILE_TOPIC) as listener:
        sent = reprocess.publish(sdr, files, "test-request", settle=3.0)
        messages = [listener.get(timeout=10)] + listener.drain(quiet=1.0)
    assert sent == 1
    assert [m.data["uri"] for m in messages] == [str(paths[1])]


def test_dry_run_lists_and_needs_no_collector(base_dir):
    older, _ = names()
    paths = land_all(base_dir / "sdr", older)
    result = subprocess.run(
        [*CLI, "reprocess", "--dry-run", "_b41131_"],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.split()) == sorted(map(str, paths))


def test_nothing_matching_or_no_nameserver_is_one_error_line(base_dir):
    older, _ = names()
    land_all(base_dir / "sdr", older)
    env = dict(os.environ)
    none = subprocess.run([*CLI, "reprocess", "zzz"], env=env, capture_output=True, text=True)
    assert none.returncode == 1 and "no SDR files matching 'zzz'" in none.stderr
    down = subprocess.run([*CLI, "reprocess"], env=env, capture_output=True, text=True)
    assert down.returncode == 1
    assert "nameserver does not answer" in down.stderr and "Traceback" not in down.stderr


def test_since_and_until_select_every_file_by_its_time_in_sdr(base_dir):
    older, newest = names()
    paths = land_all(base_dir / "sdr", older + newest)
    three_days_ago = time.time() - 3 * 86400
    for path in paths[: len(older)]:
        os.utime(path, (three_days_ago, three_days_ago))
    until = dt.datetime.fromtimestamp(three_days_ago + 60, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    result = subprocess.run(
        [*CLI, "reprocess", "--until", until, "--dry-run"],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert sorted(Path(line).name for line in result.stdout.split()) == sorted(older)
    bad = subprocess.run(
        [*CLI, "reprocess", "--since", "yesterday"], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2 and "not a UTC time" in bad.stderr
