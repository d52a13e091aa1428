"""Issue 14.6: each collector says who it is; none takes another collector's files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from avoviirscollector import identity
from avoviirscollector.operator.collector_process import CollectorProcess

CLI = [sys.executable, "-m", "avoviirscollector.cli"]


def file_message(path: Path) -> dict:
    return {"uid": path.name, "uri": str(path), "segment": "SVI05"}


def test_a_file_on_this_host_outside_our_sdr_is_refused_with_one_warning(tmp_path, caplog):
    ours, theirs = tmp_path / "a" / "sdr", tmp_path / "b" / "sdr"
    for directory in (ours, theirs):
        directory.mkdir(parents=True)
    (ours / "SVI05_ours.h5").write_bytes(b"x")
    for name in ("SVI05_theirs.h5", "GITCO_theirs.h5"):
        (theirs / name).write_bytes(b"x")
    granule = {"dataset": [file_message(theirs / "SVI05_theirs.h5"),
                           file_message(theirs / "GITCO_theirs.h5")]}  # fmt: skip
    with caplog.at_level("WARNING"):
        assert identity.from_own_sdr(file_message(ours / "SVI05_ours.h5"), ours)
        assert not identity.from_own_sdr(file_message(theirs / "SVI05_theirs.h5"), ours)
        assert not identity.from_own_sdr(granule, ours)
    assert caplog.text.count("refusing messages about files in") == 1
    # A path that exists nowhere cannot tell whose it is: left to the checks that open files.
    assert identity.from_own_sdr(file_message(Path("/viirs/sdr/SVI05_x.h5")), ours)


def test_identity_names_host_base_start_and_version_and_spots_another_base(tmp_path, make_settings):
    mine = identity.of(make_settings(VIIRS_BASE_DIR=tmp_path), started=0)
    assert mine["base"] == str(tmp_path) and mine["started"] == "1970-01-01T00:00:00Z"
    assert set(mine) == {"host", "base", "started", "version"}
    assert not identity.foreign(mine, tmp_path)
    assert identity.foreign(mine, tmp_path / "other")
    assert identity.answered_by(mine, tmp_path / "other").startswith("WARNING: answered by")


@pytest.fixture
def short_base():
    path = Path(tempfile.mkdtemp(prefix="v"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_status_and_sniff_say_which_collector_answered_and_warn_when_it_is_another(
    short_base, tmp_path
):
    other = tmp_path / "other"
    other.mkdir()
    with CollectorProcess(short_base) as collector:
        port = str(collector.state_port)
        sniff = subprocess.run(
            [*CLI, "sniff", "queue", "--port", port, "--count", "1", "--timeout", "20"],
            env=collector.env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        raw = subprocess.run(
            [sys.executable, "-c", "import zmq; s = zmq.Context().socket(zmq.SUB); "
             f"s.connect('tcp://127.0.0.1:{port}'); s.subscribe(b''); print(s.recv().decode())"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        mine = subprocess.run(
            [*CLI, "status", "--state-port", port],
            env=collector.env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        theirs = subprocess.run(
            [*CLI, "status", "--state-port", port],
            env={**collector.env, "VIIRS_BASE_DIR": str(other)},
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    state = json.loads(raw.stdout)
    assert {"queue length", "products waiting"} <= set(state), "old clients keep their keys"
    assert state["collector"]["base"] == str(short_base)
    assert f"sniff: answered by the collector on {os.uname().nodename} for {short_base}" in (
        sniff.stderr
    )
    assert f"answered by the collector on {os.uname().nodename} for {short_base}" in mine.stdout
    assert "WARNING" not in mine.stdout
    assert f"WARNING: answered by the collector on {os.uname().nodename} for {short_base}" in (
        theirs.stdout
    )
    assert theirs.returncode == 1
