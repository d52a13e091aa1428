"""What the broker records it saw, and where the replays after an outage start from."""

from __future__ import annotations

import json
import os

from avoviirscollector import last_seen


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def landed(tmp_path, name: str) -> str:
    path = tmp_path / name
    path.write_bytes(b"x")
    return str(path)


def test_a_replay_starts_from_what_the_broker_had_seen_before_the_outage_not_after(tmp_path):
    """The first granule after a restart must not move the replay past the gap."""
    clock = Clock(os.stat(landed(tmp_path, "probe")).st_ctime + 10)
    recorder = last_seen.Recorder(tmp_path, 172800, clock=clock)
    before_outage = landed(tmp_path, "GITCO_before")
    recorder.saw("tir", [before_outage])
    seen_before = os.stat(before_outage).st_ctime
    clock.now += last_seen.HOLD + 1  # long in service: the held value caught up
    recorder.save()
    assert last_seen.read(tmp_path).held["tir"] == seen_before

    clock.now += 3600  # an outage of an hour, then a restart: a new granule arrives first
    restarted = last_seen.Recorder(tmp_path, 172800, clock=clock)
    after_outage = landed(tmp_path, "GITCO_after")
    restarted.saw("tir", [after_outage])
    restarted.save()

    record = last_seen.read(tmp_path)
    assert record.seen["tir"] == os.stat(after_outage).st_ctime
    assert record.replay_from("tir", 600) == seen_before - last_seen.MARGIN


def test_a_product_never_seen_replays_from_the_first_start(tmp_path):
    clock = Clock(1_000_000.0)
    last_seen.Recorder(tmp_path, 172800, clock=clock)
    clock.now += 86400
    last_seen.Recorder(tmp_path, 172800, clock=clock)  # a restart keeps the creation time
    record = last_seen.read(tmp_path)
    assert record.created == 1_000_000.0
    assert record.replay_from("vis", 600) == 1_000_000.0 - 600


def test_files_gone_or_a_clock_gone_back_do_not_move_the_record(tmp_path):
    clock = Clock(1_000_000.0)  # earlier than any file's ctime
    recorder = last_seen.Recorder(tmp_path, 172800, clock=clock)
    recorder.saw("tir", [str(tmp_path / "deleted meanwhile")])
    assert recorder.history == {}
    recorder.saw("tir", [landed(tmp_path, "GITCO")])
    assert recorder.history["tir"][-1][1] == clock.now, "never ahead of the clock"


def test_the_record_is_written_only_when_a_value_changes(tmp_path):
    clock = Clock(os.stat(landed(tmp_path, "probe")).st_ctime + 10)
    recorder = last_seen.Recorder(tmp_path, 172800, clock=clock)
    recorder.saw("tir", [landed(tmp_path, "GITCO")])
    recorder.save()
    written = json.loads(last_seen.path_in(tmp_path).read_text())["written"]
    clock.now += 1
    recorder.save()
    assert json.loads(last_seen.path_in(tmp_path).read_text())["written"] == written
    clock.now += last_seen.HOLD
    recorder.save()  # held caught up with seen: one more write
    assert json.loads(last_seen.path_in(tmp_path).read_text())["written"] == clock.now


def test_an_unreadable_record_is_no_record(tmp_path):
    last_seen.path_in(tmp_path).write_text("{torn")
    assert last_seen.read(tmp_path) is None


def test_the_replay_limit_is_the_backfill_window_within_the_brokers_memory():
    record = last_seen.Record(created=0, written=0, memory_seconds=2 * 86400)
    assert last_seen.replay_limit(1, 600, record) == 86400
    assert last_seen.replay_limit(7, 600, record) == 2 * 86400
    assert last_seen.replay_limit(0, 600, None) == 600
