"""Our trollstalker publishes one message per landed SDR file, and nothing else.

A real nameserver, the real ``viirscollector stalker`` with etc/trollstalker.ini,
real files renamed into sdr/, and a real posttroll subscriber.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from helpers.bus import (
    REPO,
    SDR_BYTES,
    BusListener,
    Daemon,
    daemon_env,
    granule_names,
    land,
    viirscollector,
    wait_until,
)

from avoviirscollector import bus, filenames
from avoviirscollector.netutil import free_port
from avoviirscollector.pipeline import recent_files as recent_files_module
from avoviirscollector.pipeline import stalker
from avoviirscollector.pipeline.file_messages import FILE_TOPIC, file_message_data
from avoviirscollector.pipeline.recent_files import arrival_time, recent_files

QUIET = 1.0


@pytest.fixture(scope="module")
def base(module_base):
    return module_base


@pytest.fixture(scope="module")
def nameserver(module_nameserver):
    return module_nameserver


@pytest.fixture(scope="module")
def running_stalker(base, nameserver):
    daemon = Daemon(viirscollector("stalker"), daemon_env(base), base / "log" / "stalker.log")
    # After its catch-up, so the tests see only the messages of their own files.
    wait_until(lambda: "catch-up: published" in daemon.log(), 20, "the stalker's catch-up")
    yield daemon
    daemon.stop()


@pytest.fixture
def listener(running_stalker):
    with BusListener(FILE_TOPIC) as listener:
        listener.wait_connected(running_stalker.pid)
        listener.drain(0.2)
        yield listener


def test_file_renamed_into_sdr_gives_one_message_with_the_shared_fields(base, listener):
    path = land(base, granule_names(["GITCO"], orbit=20001)[0])

    message = listener.get()
    assert message.subject == FILE_TOPIC
    assert message.type == "file"
    assert message.version == bus.MESSAGE_VERSION
    assert message.data == file_message_data(path)
    assert listener.drain(QUIET) == []


def test_unknown_platform_is_logged_and_the_next_file_is_still_published(
    base, listener, running_stalker
):
    unknown = land(base, granule_names(["SVI05"], platform="j03", orbit=20002)[0])
    known = land(base, granule_names(["SVI05"], orbit=20002)[0])

    message = listener.get()
    assert message.data["uid"] == known.name
    assert listener.drain(QUIET) == []
    log = running_stalker.log()
    assert f"{unknown} was not published: KeyError" in log
    assert running_stalker.process.poll() is None


def test_file_moved_out_of_sdr_gives_no_message(base, listener):
    path = land(base, granule_names(["SVM15"], orbit=20003)[0])
    assert listener.get().data["uid"] == path.name

    os.replace(path, base / "tmp" / path.name)

    assert listener.drain(QUIET) == []


def test_hidden_file_gives_no_message_until_renamed_to_its_real_name(base, listener):
    name = granule_names(["SVM16"], orbit=20004)[0]
    hidden = base / "sdr" / f".{name}"
    hidden.write_bytes(SDR_BYTES)
    assert listener.drain(QUIET) == []

    os.replace(hidden, base / "sdr" / name)

    assert listener.get().data["uid"] == name
    assert listener.drain(QUIET) == []


def test_file_written_in_place_is_published_once_when_closed(base, listener):
    name = granule_names(["SVI04"], orbit=20005)[0]
    with open(base / "sdr" / name, "wb") as stream:
        stream.write(SDR_BYTES + b"first half")
        stream.flush()
        stream.write(b"second half")

    assert listener.get().data["uid"] == name
    assert listener.drain(QUIET) == []


def test_files_that_landed_while_down_are_published_at_start(tmp_path, nameserver):
    base = Path(tempfile.mkdtemp(prefix="v"))
    try:
        (base / "sdr").mkdir()
        names = granule_names(["GITCO", "SVI05"], orbit=20006)
        for name in names:
            (base / "sdr" / name).write_bytes(SDR_BYTES)
        (base / "sdr" / "notes.txt").write_text("not an SDR file")
        config = tmp_path / "trollstalker.ini"
        text = (REPO / "etc" / "trollstalker.ini").read_text()
        config.write_text(text.replace("catchup_delay = 3", "catchup_delay = 4"))

        with BusListener(FILE_TOPIC) as listener:
            daemon = Daemon(
                viirscollector("stalker", "--config", str(config)),
                daemon_env(base),
                tmp_path / "stalker.log",
            )
            try:
                listener.wait_connected(daemon.pid)
                caught_up = [listener.get(timeout=15), listener.get()]
                assert listener.drain(QUIET) == []
            finally:
                daemon.stop()
        assert sorted(m.data["uid"] for m in caught_up) == sorted(names)
        assert caught_up[0].data == file_message_data(base / "sdr" / caught_up[0].data["uid"])
        assert "catch-up: published 2 file(s)" in daemon.log()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def recent_files_arrival(path: Path) -> float:
    return arrival_time(path.stat())


def test_restart_catches_up_only_files_that_arrived_after_the_last_published(tmp_path, nameserver):
    base = Path(tempfile.mkdtemp(prefix="v"))
    try:
        for name in ("sdr", "state"):
            (base / name).mkdir()
        seen_live, landed_while_down = granule_names(["GITCO", "SVI05"], orbit=20007)

        def start():
            return Daemon(viirscollector("stalker"), daemon_env(base), tmp_path / "stalker.log")

        with BusListener(FILE_TOPIC) as listener:
            daemon = start()
            try:
                listener.wait_connected(daemon.pid)
                wait_until(lambda: "catch-up: published" in daemon.log(), 20, "the catch-up")
                land(base, seen_live)
                assert listener.get(timeout=15).data["uid"] == seen_live
            finally:
                assert daemon.stop() == 0
            watermark = (base / "state" / "trollstalker-watermark").read_text()
            arrived = recent_files_arrival(base / "sdr" / seen_live)
            assert float(watermark) == arrived, "the stop recorded the newest file published"
            # Files this close together fall in the safety margin; move the mark past it.
            marked = arrived + stalker.Watermark.MARGIN + 0.001
            (base / "state" / "trollstalker-watermark").write_text(repr(marked))
            (base / "sdr" / landed_while_down).write_bytes(SDR_BYTES)
            daemon = start()
            try:
                listener.wait_connected(daemon.pid)
                assert listener.get(timeout=15).data["uid"] == landed_while_down
                assert listener.drain(QUIET) == [], "what was published before is not repeated"
            finally:
                daemon.stop()
        assert "catch-up: published 1 file(s)" in daemon.log()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_stalker_stops_at_once_on_sigterm(base, nameserver, tmp_path):
    daemon = Daemon(viirscollector("stalker"), daemon_env(base), tmp_path / "stalker.log")
    wait_until(lambda: "watching" in daemon.log(), 20, "the stalker to watch sdr/")
    started = time.monotonic()
    assert daemon.stop(timeout=10) == 0
    assert time.monotonic() - started < 3


def test_event_fields_equal_those_built_from_the_path(tmp_path):
    """trollstalker's own parsing (events) and file_message_data (catch-up) agree."""
    options = stalker.read_options(REPO / "etc" / "trollstalker.ini")
    # A plain publisher on a free port: no nameserver needed to parse names.
    processor_options = dict(options.processor, posttroll_port=free_port(), nameservers=False)
    processor = stalker.Stalker(tmp_path, **processor_options)
    try:
        for platform in filenames.PLATFORM_ALIASES:
            for name in granule_names(["GMTCO", "SVI01"], platform=platform):
                path = str(tmp_path / name)
                assert dict(processor.parse_file_info(path)) == file_message_data(path)
    finally:
        processor.stop()


def test_configuration_uses_the_nameserver_on_localhost_whatever_the_file_says():
    options = stalker.read_options(REPO / "etc" / "trollstalker.ini")
    assert options.processor["nameservers"] == [bus.NAMESERVER_HOST] == ["localhost"]
    assert options.processor["topic"] == FILE_TOPIC
    assert options.processor["aliases"] == {"platform_name": filenames.PLATFORM_ALIASES}


def test_missing_configuration_is_one_clear_error(tmp_path):
    with pytest.raises(stalker.ConfigError, match="cannot read"):
        stalker.read_options(tmp_path / "absent.ini")
    (tmp_path / "bad.ini").write_text("[viirs]\ntopic = /x\n")
    with pytest.raises(stalker.ConfigError, match="'filepattern' is missing"):
        stalker.read_options(tmp_path / "bad.ini")


def test_recent_files_are_sdr_files_that_arrived_within_the_window(tmp_path):
    names = granule_names(["GITCO", "SVI05"])
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / f".{names[0]}").write_bytes(b"hidden")
    (tmp_path / "notes.txt").write_text("not an SDR file")
    (tmp_path / "sub").mkdir()

    assert sorted(p.name for p in recent_files(tmp_path, 10)) == sorted(names)
    assert recent_files(tmp_path, 10, now=time.time() + 11 * 60) == []
    assert recent_files(tmp_path / "absent", 10) == []


def test_zero_byte_and_non_hdf5_files_are_skipped_with_one_warning_each(
    base, listener, running_stalker
):
    empty, text, good = granule_names(["GITCO", "SVI05", "SVI04"], orbit=20010)
    (base / "sdr" / empty).write_bytes(b"")
    land(base, text, b"copied by hand: not HDF5")
    land(base, good)

    assert [m.data["uid"] for m in [listener.get(), *listener.drain(QUIET)]] == [good]
    log = running_stalker.log()
    assert log.count(f"not publishing {empty}: it is empty (0 bytes)") == 1
    assert log.count(f"not publishing {text}: it is not HDF5") == 1


def test_hdf5_signature_after_a_user_block_is_an_sdr_file(tmp_path):
    path = tmp_path / "with_user_block.h5"
    path.write_bytes(b"\0" * 512 + SDR_BYTES)
    assert recent_files_module.content_problem(path) is None
    path.write_bytes(b"\0" * 600)
    assert "not HDF5" in recent_files_module.content_problem(path)


def start_stalker(base: Path, log_path: Path) -> Daemon:
    return Daemon(viirscollector("stalker"), daemon_env(base), log_path)


def test_issue_12_8_a_file_dated_a_day_ahead_does_not_hide_files_that_land_later(
    tmp_path, nameserver
):
    """The watermark follows arrival (ctime), never an mtime from a wrong clock."""
    base = Path(tempfile.mkdtemp(prefix="v"))
    try:
        ahead, landed_while_down = granule_names(["GITCO", "SVI05"], orbit=20011)
        with BusListener(FILE_TOPIC) as listener:
            daemon = start_stalker(base, tmp_path / "stalker.log")
            try:
                listener.wait_connected(daemon.pid)
                wait_until(lambda: "catch-up: published" in daemon.log(), 20, "the catch-up")
                staged = base / "tmp" / ahead
                staged.parent.mkdir(exist_ok=True)
                staged.write_bytes(SDR_BYTES)
                tomorrow = time.time() + 86400
                os.utime(staged, (tomorrow, tomorrow))  # cp -p from a host a day ahead
                os.replace(staged, base / "sdr" / ahead)
                assert listener.get(timeout=15).data["uid"] == ahead
            finally:
                assert daemon.stop() == 0
            land(base, landed_while_down)
            daemon = start_stalker(base, tmp_path / "stalker.log")
            try:
                listener.wait_connected(daemon.pid)
                uids = [m.data["uid"] for m in [listener.get(timeout=15), *listener.drain(QUIET)]]
            finally:
                daemon.stop()
        assert landed_while_down in uids
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_first_start_on_a_populated_sdr_takes_old_files_as_processed_and_says_how_to_queue_them(
    tmp_path, nameserver
):
    base = Path(tempfile.mkdtemp(prefix="v"))
    try:
        (base / "sdr").mkdir()
        old = granule_names(["GITCO", "SVI05"], orbit=20012) + granule_names(
            ["GITCO", "SVI05"], orbit=20013
        )
        three_days_ago = time.time() - 3 * 86400
        for name in old:
            (base / "sdr" / name).write_bytes(SDR_BYTES)
            os.utime(base / "sdr" / name, (three_days_ago, three_days_ago))
        recent = granule_names(["GITCO"], orbit=20014)[0]
        (base / "sdr" / recent).write_bytes(SDR_BYTES)
        with BusListener(FILE_TOPIC) as listener:
            daemon = start_stalker(base, tmp_path / "first.log")
            try:
                listener.wait_connected(daemon.pid)
                first = [m.data["uid"] for m in [listener.get(timeout=15), *listener.drain(QUIET)]]
            finally:
                assert daemon.stop() == 0
            daemon = start_stalker(base, tmp_path / "second.log")  # a restart: still not them
            try:
                listener.wait_connected(daemon.pid)
                wait_until(lambda: "catch-up: published" in daemon.log(), 20, "the catch-up")
                again = [m.data["uid"] for m in listener.drain(QUIET)]
            finally:
                daemon.stop()
        assert first == [recent]
        assert not set(again) & set(old)
        log = (tmp_path / "first.log").read_text()
        taken = [line for line in log.splitlines() if "as processed" in line]
        assert len(taken) == 1, log
        assert "took 4 file(s) already in sdr/ as processed" in taken[0]
        assert "viirscollector reprocess --until " in taken[0]
        assert "before the restart" not in log and "stopped)" not in log
        assert "first start" not in (tmp_path / "second.log").read_text()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_issue_12_3_stalker_down_longer_than_its_window_still_publishes_what_landed(
    tmp_path, nameserver
):
    """The catch-up starts at the watermark, not at the last catchup_minutes."""
    base = Path(tempfile.mkdtemp(prefix="v"))
    try:
        config = tmp_path / "trollstalker.ini"
        text = (REPO / "etc" / "trollstalker.ini").read_text()
        config.write_text(text.replace("catchup_minutes = 10", "catchup_minutes = 0.05"))
        live, landed_while_down = granule_names(["GITCO", "SVI05"], orbit=20015)

        def start(name):
            argv = viirscollector("stalker", "--config", str(config))
            return Daemon(argv, daemon_env(base), tmp_path / name)

        with BusListener(FILE_TOPIC) as listener:
            daemon = start("first.log")
            try:
                listener.wait_connected(daemon.pid)
                land(base, live)
                assert listener.get(timeout=15).data["uid"] == live
            finally:
                assert daemon.stop() == 0
            land(base, landed_while_down)
            wait_until(  # down for longer than the 3 s window
                lambda: time.time() - os.stat(base / "sdr" / landed_while_down).st_ctime > 4,
                10,
                "the outage to outlast the window",
                interval=0.5,
            )
            daemon = start("second.log")
            try:
                listener.wait_connected(daemon.pid)
                uids = [m.data["uid"] for m in [listener.get(timeout=15), *listener.drain(QUIET)]]
            finally:
                daemon.stop()
        assert landed_while_down in uids  # (and the live one again: within the 2 s margin)
    finally:
        shutil.rmtree(base, ignore_errors=True)
