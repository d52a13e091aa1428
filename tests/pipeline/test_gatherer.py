"""Our segment_gatherer turns file messages into one granule message per product.

A real nameserver, the real ``viirscollector gatherer`` with etc/segment_gatherer.ini,
file messages from a real posttroll publisher, granules read by a real subscriber.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import tempfile
import time
from configparser import RawConfigParser
from pathlib import Path

import pytest
from helpers.bus import (
    PRODUCTS,
    REPO,
    SDR_BYTES,
    BusListener,
    Daemon,
    daemon_env,
    granule_names,
    viirscollector,
    wait_until,
)

from avoviirscollector import bus, filenames, last_seen
from avoviirscollector.netutil import connected
from avoviirscollector.pipeline import gatherer
from avoviirscollector.pipeline.file_messages import FILE_TOPIC, file_message_data

GATHERER_INI = REPO / "etc" / "segment_gatherer.ini"
QUIET = 1.0


@pytest.fixture(scope="module")
def base(module_base):
    return module_base


@pytest.fixture(scope="module")
def nameserver(module_nameserver):
    return module_nameserver


@pytest.fixture(scope="module")
def publisher(nameserver):
    with bus.publish("test_files") as pub:
        yield pub


def start_gatherer(base: Path, section: str, log_name: str | None = None) -> Daemon:
    log = base / "log" / f"{log_name or section}.log"
    daemon = Daemon(viirscollector("gatherer", section), daemon_env(base), log)
    return daemon


def wait_replayed(daemon: Daemon, count: int = 1):
    wait_until(lambda: daemon.log().count("replay:") >= count, 20, "the gatherer's replay")


@pytest.fixture(scope="module")
def tir(base, nameserver, publisher):
    daemon = start_gatherer(base, "viirs_tir")
    wait_until(lambda: connected(daemon.pid, os.getpid()), 20, "the gatherer to subscribe")
    wait_replayed(daemon)
    yield daemon
    daemon.stop()


@pytest.fixture
def granules(tir):
    with BusListener("/AVO/viirs/granule") as listener:
        listener.wait_connected(tir.pid)
        yield listener


def send_files(publisher, base: Path, names, **extra):
    for name in names:
        data = dict(file_message_data(base / "sdr" / name), **extra)
        publisher.send(str(bus.message(FILE_TOPIC, "file", data)))


def test_complete_granule_gives_one_granule_message(base, publisher, granules):
    names = granule_names(["GITCO", "SVI05"], orbit=30001)

    send_files(publisher, base, names)

    granule = granules.get()
    assert granule.subject == "/AVO/viirs/granule/tir"
    assert granule.type == "dataset"
    assert granule.version == bus.MESSAGE_VERSION
    assert [d["uid"] for d in granule.data["dataset"]] == names
    assert [d["uri"] for d in granule.data["dataset"]] == [str(base / "sdr" / n) for n in names]
    first = filenames.parse(names[0])
    assert granule.data["platform_name"] == "NOAA-20"
    assert granule.data["orbit_number"] == 30001
    assert granule.data["start_time"] == first.start
    assert granule.data["end_time"] == first.end
    assert granules.drain(QUIET) == []


def test_incomplete_granule_gives_no_message(base, publisher, granules):
    send_files(publisher, base, granule_names(["GITCO", "SVI04"], orbit=30002))

    assert granules.drain(QUIET) == []


def test_reprocess_key_of_the_files_survives_into_the_granule_message(base, publisher, granules):
    names = granule_names(["GITCO", "SVI05"], orbit=30003)

    send_files(publisher, base, names, reprocess="operator 2026-11-28")

    assert granules.get().data["reprocess"] == "operator 2026-11-28"


def test_reprocess_key_on_a_later_file_still_marks_the_granule(base, publisher, granules):
    first, last = granule_names(["GITCO", "SVI05"], orbit=30004)

    send_files(publisher, base, [first])
    send_files(publisher, base, [last], reprocess=True)

    assert granules.get().data["reprocess"] is True


def test_half_collected_granule_completes_after_a_crash_and_restart(base, publisher):
    """GITCO gathered, gatherer killed, SVI05 lands meanwhile: the restart's replay completes it."""
    gitco, svi04 = granule_names(["GITCO", "SVI04"], orbit=30005)
    first = start_gatherer(base, "viirs_mir", "mir-1")
    try:
        wait_replayed(first)
        (base / "sdr" / gitco).write_bytes(SDR_BYTES)
        send_files(publisher, base, [gitco])
        wait_until(lambda: f"gathered {gitco}" in first.log(), 10, "GITCO in the open granule")
    finally:
        first.signal(signal.SIGKILL)
        first.stop()
    (base / "sdr" / svi04).write_bytes(SDR_BYTES)  # landed while the gatherer was down

    with BusListener("/AVO/viirs/granule/mir") as granules:
        second = start_gatherer(base, "viirs_mir", "mir-2")
        try:
            granules.wait_connected(second.pid)
            granule = granules.get(timeout=15)
        finally:
            second.stop()
    assert sorted(d["uid"] for d in granule.data["dataset"]) == sorted([gitco, svi04])


def test_sigusr1_replays_the_recent_files(base, tir, granules):
    names = granule_names(["GITCO", "SVI05"], orbit=30006)
    for name in names:
        (base / "sdr" / name).write_bytes(SDR_BYTES)

    tir.signal(signal.SIGUSR1)

    assert [d["uid"] for d in granules.get().data["dataset"]] == names


def uids(granule) -> list[str]:
    return [d["uid"] for d in granule.data["dataset"]]


def test_files_repeated_after_their_granule_was_published_open_no_granule(
    base, publisher, granules
):
    """trollstalker's catch-up repeats files published live; the repeat must not start a
    granule of its own (that one would warn ten minutes later, and swallow neighbours)."""
    gitco, svi05 = granule_names(["GITCO", "SVI05"], orbit=30011)
    send_files(publisher, base, [gitco, svi05])
    assert uids(granules.get()) == [gitco, svi05]

    send_files(publisher, base, [svi05, gitco])  # the catch-up's repeats, in another order
    sentinel = granule_names(["GITCO", "SVI05"], orbit=30012)
    send_files(publisher, base, sentinel)

    assert uids(granules.get()) == sentinel, "the repeats were gathered into a second granule"


def until(granules, last: list[str]) -> list[list[str]]:
    """The files of each granule message, up to the one of ``last``."""
    got = []
    while not got or got[-1] != last:
        got.append(uids(granules.get()))
    return got


def test_a_replay_publishes_a_granule_again_once_whatever_the_bus_repeats(
    base, tir, publisher, granules
):
    names = granule_names(["GITCO", "SVI05"], orbit=30013)
    for name in names:
        (base / "sdr" / name).write_bytes(SDR_BYTES)
    send_files(publisher, base, names)
    assert uids(granules.get()) == names
    replays = tir.log().count("replay:")

    tir.signal(signal.SIGUSR1)  # as replay_listener does after a broker restart
    send_files(publisher, base, names)  # and the catch-up repeats them meanwhile
    wait_replayed(tir, replays + 1)
    sentinel = granule_names(["GITCO", "SVI05"], orbit=30014)
    send_files(publisher, base, sentinel)

    again = [got for got in until(granules, sentinel) if sorted(got) == sorted(names)]
    assert len(again) == 1, "the replay publishes it again, and only once"


def test_a_granule_of_another_satellite_starting_seconds_later_is_gathered_apart(
    base, publisher, granules
):
    start = dt.datetime(2019, 10, 22, 3, 0, 0, 100000)
    noaa20 = granule_names(["GITCO", "SVI05"], "j01", orbit=30015, start=start)
    snpp = granule_names(["GITCO", "SVI05"], "npp", orbit=41015, start=start.replace(second=9))

    send_files(publisher, base, [noaa20[0], snpp[0], noaa20[1], snpp[1]])

    got = {
        granule.data["platform_name"]: uids(granule) for granule in (granules.get(), granules.get())
    }
    assert got == {"NOAA-20": noaa20, "Suomi-NPP": snpp}


def test_gatherer_with_an_open_granule_stops_at_once_on_sigterm(base, publisher):
    daemon = start_gatherer(base, "viirs_vis", "vis-stop")
    wait_until(lambda: connected(daemon.pid, os.getpid()), 20, "the gatherer to subscribe")
    name = granule_names(["GMTCO"], orbit=30007)[0]
    send_files(publisher, base, [name])
    wait_until(lambda: f"gathered {name}" in daemon.log(), 10, "an open granule")

    started = time.monotonic()
    assert daemon.stop(timeout=20) == 0
    assert time.monotonic() - started < 4, "today's gatherer waits up to timeliness (600 s)"


def test_files_of_other_products_open_no_granule(base):
    config, _ = gatherer.load_config(GATHERER_INI, "viirs_tir")
    tir = gatherer.Gatherer(config, base / "sdr", replay_minutes=10)
    for name in granule_names(["SVM15", "GMTCO", "SVI04"], orbit=30008):
        tir.process(bus.message(FILE_TOPIC, "file", file_message_data(base / "sdr" / name)))
    assert tir.slots == {}

    tir.process(bus.message(FILE_TOPIC, "file", file_message_data(granule_names(["SVI05"])[0])))
    assert len(tir.slots) == 1


def test_end_time_is_dated_on_the_start_day_even_across_midnight():
    config, _ = gatherer.load_config(GATHERER_INI, "viirs_tir")
    parser = gatherer.Gatherer(config, "/nonexistent", 10)._patterns["viirs_tir"].parser
    start = dt.datetime(2019, 10, 21, 23, 59, 30)
    for name in granule_names(["GITCO"], start=start) + granule_names(["GITCO"]):
        fields = parser.parse({"uid": name})
        assert fields["end_time"] == filenames.parse(name).end


def test_every_product_gathers_the_segments_the_issue_lists():
    ini = RawConfigParser()
    ini.read(GATHERER_INI)
    assert ini.sections() == [f"viirs_{product}" for product in PRODUCTS]
    for product, segments in PRODUCTS.items():
        section = ini[f"viirs_{product}"]
        files = ",".join(f":{segment}" for segment in segments)
        assert section["critical_files"] == section["all_files"] == files
        assert section["publish_topic"] == f"/AVO/viirs/granule/{product}"
        assert section["topics"] == FILE_TOPIC
        assert section.getint("timeliness") == 600
        assert section["time_name"] == "start_time"
        assert "start_date" not in section["pattern"], "today's gatherer needs start_time"


def test_gatherer_patterns_agree_with_the_one_file_name_pattern():
    from trollsift import Parser

    for product, segments in PRODUCTS.items():
        config, _ = gatherer.load_config(GATHERER_INI, f"viirs_{product}")
        pattern = Parser(config["patterns"][f"viirs_{product}"]["pattern"])
        for platform in filenames.PLATFORM_ALIASES:
            for name in granule_names(segments, platform=platform):
                expected = filenames.parse(name)
                fields = pattern.parse(name)
                assert fields["start_time"] == expected.start
                assert fields["orig_platform_name"] == expected.platform
                assert fields["orbit_number"] == expected.orbit
                assert fields["segment"] == expected.segment
                assert fields["proctime"] == expected.created


def test_configuration_uses_the_nameserver_on_localhost_and_names_bad_sections():
    config, replay_minutes = gatherer.load_config(GATHERER_INI, "viirs_btd")
    assert config["posttroll"]["nameservers"] == [bus.NAMESERVER_HOST] == ["localhost"]
    assert replay_minutes == 10
    assert gatherer.segments_of(config) == {"GMTCO", "SVM15", "SVM16"}
    with pytest.raises(gatherer.ConfigError, match=r"no section \[viirs_xyz\]"):
        gatherer.load_config(GATHERER_INI, "viirs_xyz")


def test_an_outage_longer_than_the_replay_limit_is_mailed_with_the_reprocess_command(
    tmp_path, nameserver, smtp_server, mail_env
):
    """The broker last saw tir an hour ago, the limit is the window: files beyond it are named."""
    base = Path(tempfile.mkdtemp(prefix="v"))
    try:
        for name in ("sdr", "state", "log"):
            (base / name).mkdir()
        names = granule_names(["GITCO", "SVI05"], orbit=30010)
        for name in names:
            (base / "sdr" / name).write_bytes(SDR_BYTES)
        now = time.time()
        record = {"created": now - 7200, "written": now, "memory_seconds": 172800,
                  "products": {"tir": {"seen": now - 3600, "held": now - 3600}}}  # fmt: skip
        (base / "state" / last_seen.RECORD_NAME).write_text(json.dumps(record))
        (base / "state" / "sdr-baseline.json").write_text(
            json.dumps({"created": now - 7200, "window_seconds": 3})
        )
        config = tmp_path / "segment_gatherer.ini"
        config.write_text(
            GATHERER_INI.read_text().replace("replay_minutes = 10", "replay_minutes = 0.05")
        )
        time.sleep(4)  # the files are now older than the 3 s window
        env = daemon_env(base, GINA_BACKFILL_DAYS="0", **mail_env)
        log = tmp_path / "tir.log"
        daemon = Daemon(viirscollector("gatherer", "viirs_tir", "--config", str(config)), env, log)
        try:
            wait_until(lambda: "replay:" in log.read_text(), 30, "the replay")
            (mail,) = smtp_server.wait_for(1, timeout=20)
        finally:
            daemon.stop()
        text = log.read_text()
        assert "2 file(s) reached sdr/ between" in text
        assert "viirscollector reprocess --since " in text and " --until " in text
        assert "viirscollector reprocess --since " in mail.get_content()
        assert "replay: 0 file(s)" in text
    finally:
        shutil.rmtree(base, ignore_errors=True)
