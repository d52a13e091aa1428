"""The download engine: its plan (pure) and its transfers against the real GINA stand-in."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from avoviirscollector import verify
from avoviirscollector.mirror.downloader import Downloader, FileTask, Options, Plan
from avoviirscollector.standins import synthetic_sdr
from avoviirscollector.standins.gina import GinaStandin

START = dt.datetime(2024, 3, 1, 10, 0, 0)
FAST = Options(connections=4, min_split=64 * 1024, backoff_base=0.01, backoff_max=0.05)


def tasks(names, directory="/tmp/x"):
    return [FileTask(f"http://gina/data/{n}", f"{directory}/{n}.part", n) for n in names]


# -- the plan, without I/O -----------------------------------------------------------------


def test_plan_hands_out_files_in_order_one_open_ended_request_each():
    plan = Plan(tasks(["a", "b"]), FAST)
    first, second = plan.next_segment(0.0), plan.next_segment(0.0)
    assert (first.file.name, first.start, first.end) == ("a", 0, None)
    assert second.file.name == "b"
    assert plan.next_segment(0.0) is None, "nothing to steal while sizes are unknown"


def test_idle_connection_takes_the_second_half_of_the_largest_transfer():
    plan = Plan(tasks(["big", "small"]), FAST)
    big, small = plan.next_segment(0.0), plan.next_segment(0.0)
    plan.accept(big, 206, {"content-range": "bytes 0-999999/1000000"})
    plan.accept(small, 206, {"content-range": "bytes 0-99/100"})
    big.pos = 200_000
    piece = plan.next_segment(0.0)
    assert (piece.file.name, piece.start, piece.end) == ("big", 600_000, 1_000_000)
    assert big.end == 600_000
    quarter = plan.next_segment(0.0)
    assert (quarter.start, quarter.end) == (400_000, 600_000)


def test_small_remainders_are_not_split():
    plan = Plan(tasks(["a"]), Options(min_split=1000))
    segment = plan.next_segment(0.0)
    plan.accept(segment, 206, {"content-range": "bytes 0-1998/1999"})
    assert plan.next_segment(0.0) is None


def test_failed_segment_is_retried_from_the_byte_reached_after_a_growing_pause():
    plan = Plan(tasks(["a"]), Options(backoff_base=1.0, backoff_max=3.0, max_failures=3))
    segment = plan.next_segment(0.0)
    plan.accept(segment, 206, {"content-range": "bytes 0-99/100"})
    segment.pos = 40
    plan.failed(segment, "reset", now=10.0)
    assert plan.next_segment(10.5) is None and plan.next_wakeup(10.5) == 0.5
    again = plan.next_segment(11.0)
    assert again is segment and again.pos == 40
    plan.failed(segment, "reset", now=20.0)
    assert plan.next_segment(21.9) is None and plan.next_segment(22.0) is segment
    assert [plan.backoff(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 3.0, 3.0]


def test_file_is_given_up_after_max_failures_and_its_other_transfers_cancelled():
    plan = Plan(tasks(["a"]), Options(min_split=10, max_failures=1, backoff_base=0.0))
    first = plan.next_segment(0.0)
    plan.accept(first, 206, {"content-range": "bytes 0-99/100"})
    second = plan.next_segment(0.0)
    assert plan.failed(first, "HTTP 500", 0.0) == []
    assert plan.next_segment(0.0) is first
    cancelled = plan.failed(first, "HTTP 500", 0.0)
    assert cancelled == [second]
    assert plan.completed[0].status == "failed" and plan.finished()


def test_permanent_failure_gives_the_file_up_at_once():
    plan = Plan(tasks(["a", "b"]), FAST)
    segment = plan.next_segment(0.0)
    plan.failed(segment, "HTTP 404", 0.0, permanent=True)
    assert segment.file.status == "failed" and segment.file.retries == 1
    assert plan.next_segment(0.0).file.name == "b"


def test_answer_200_makes_the_file_one_whole_transfer_and_cancels_the_others():
    plan = Plan(tasks(["a"]), FAST)
    first = plan.next_segment(0.0)
    plan.accept(first, 206, {"content-range": "bytes 0-999999/1000000"})
    second = plan.next_segment(0.0)
    first.pos = 5000
    assert plan.accept(second, 200, {"content-length": "1000000"}) == [first]
    assert (second.start, second.pos, second.end) == (0, 0, 1_000_000)
    assert not second.file.ranges
    assert plan.next_segment(0.0) is None, "a file without ranges is never split"


@pytest.mark.parametrize(
    "headers, message",
    [
        ({"content-range": "bytes 10-99/100"}, "from 10, asked from 0"),
        ({"content-range": "bytes 0-99/200"}, "size changed"),
        ({}, "without a usable Content-Range"),
    ],
)
def test_answer_that_does_not_fit_the_request_is_refused(headers, message):
    plan = Plan(tasks(["a"]), FAST)
    segment = plan.next_segment(0.0)
    segment.file.size = 100
    with pytest.raises(ValueError, match=message):
        plan.accept(segment, 206, headers)


# -- transfers against the stand-in ------------------------------------------------------


@pytest.fixture
def gina_dir(tmp_path):
    return tmp_path / "gina"


def make(gina_dir, count=1, size=1_000_000, segment="SVM15"):
    paths = []
    for index in range(count):
        start = START + dt.timedelta(seconds=86 * index)
        paths.append(synthetic_sdr.make_sdr_file(gina_dir, segment, "npp", start, size=size))
    return paths


def download(gina, paths, tmp_path, options=FAST, on_done=None):
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    files = [FileTask(gina.file_url(p.name), out / f"{p.name}.part", p.name) for p in paths]
    began = time.monotonic()
    Downloader(options, on_done=on_done).run(files)
    return files, time.monotonic() - began


def assert_intact(files, paths):
    for task, path in zip(files, paths, strict=True):
        assert task.status == "done", task.error
        assert verify.md5sum(task.path) == verify.md5sum(path)
        # what the placer checks: the MD5 hashed while writing, finished from disk
        assert verify._md5_from(task.path, task.digest) == verify.md5sum(path)


def test_big_file_is_split_over_every_connection_and_written_in_place(gina_dir, tmp_path):
    paths = make(gina_dir, size=8_000_000)
    with GinaStandin(gina_dir, rate=8_000_000) as gina:
        files, seconds = download(gina, paths, tmp_path)
    assert_intact(files, paths)
    assert files[0].connections == {0, 1, 2, 3}
    assert seconds < 0.6, "4 connections at 8 MB/s move 8 MB in about 0.25 s"
    # a transfer whose second half was taken is stopped at its new end, closing its connection
    assert gina.connections_opened <= 8


def test_small_files_go_whole_one_request_each_on_reused_connections(gina_dir, tmp_path):
    paths = make(gina_dir, count=12, size=100_000)
    done = []
    with GinaStandin(gina_dir) as gina:
        files, _ = download(gina, paths, tmp_path, on_done=done.append)
    assert_intact(files, paths)
    assert gina.requests["file"] == 12
    assert gina.connections_opened == 4, "keep-alive: four connections for twelve files"
    assert all(t.digest.length == t.size for t in files), "hashed as written: no reread"
    assert sorted(t.name for t in done) == sorted(p.name for p in paths)


def test_http_500_is_retried_and_the_file_arrives(gina_dir, tmp_path):
    paths = make(gina_dir)
    with GinaStandin(gina_dir) as gina:
        gina.fault("error", paths[0].name, times=2)
        files, _ = download(gina, paths, tmp_path)
    assert_intact(files, paths)
    assert files[0].retries == 2


def test_connection_cut_mid_body_resumes_from_the_byte_reached(gina_dir, tmp_path):
    paths = make(gina_dir, size=2_000_000)
    with GinaStandin(gina_dir) as gina:
        gina.fault("cut", paths[0].name, times=3, after=300_000)
        files, _ = download(gina, paths, tmp_path, Options(connections=1, backoff_base=0.01))
    assert_intact(files, paths)
    assert files[0].retries == 3
    assert gina.wait_for_bytes(2_000_000, timeout=5)
    assert gina.bytes_served == 2_000_000, "no byte was fetched twice"


def test_server_ignoring_range_still_delivers_on_one_connection(gina_dir, tmp_path):
    paths = make(gina_dir, size=3_000_000)
    with GinaStandin(gina_dir) as gina:
        gina.fault("no_range", paths[0].name)
        files, _ = download(gina, paths, tmp_path)
    assert_intact(files, paths)
    assert len(files[0].connections) == 1 and not files[0].ranges


def test_missing_file_fails_at_once_without_retries(gina_dir, tmp_path):
    paths = make(gina_dir, count=2)
    with GinaStandin(gina_dir) as gina:
        paths[0].unlink()
        files, _ = download(gina, paths, tmp_path)
    assert files[0].status == "failed" and "HTTP 404" in files[0].error
    assert gina.requests[paths[0].name] == 1
    assert_intact(files[1:], paths[1:])


def test_stalled_transfer_is_abandoned_and_retried_a_bounded_number_of_times(gina_dir, tmp_path):
    paths = make(gina_dir, count=2)
    options = Options(connections=2, low_speed_time=1, max_failures=1, backoff_base=0.01)
    with GinaStandin(gina_dir) as gina:
        gina.fault("stall", paths[0].name, after=1000, seconds=60)
        files, seconds = download(gina, paths, tmp_path, options)
    assert files[0].status == "failed" and "curl error 28" in files[0].error
    assert gina.requests[paths[0].name] == 2, "tried, retried once, then given up"
    assert seconds < 10
    assert_intact(files[1:], paths[1:])


def test_unreachable_server_fails_every_file_quickly(tmp_path, gina_dir):
    paths = make(gina_dir)
    with GinaStandin(gina_dir) as gina:
        url = gina.file_url(paths[0].name)
    # stopped: nothing listens on its port any more
    files = [FileTask(url, tmp_path / "x.part", paths[0].name)]
    began = time.monotonic()
    Downloader(Options(max_failures=2, backoff_base=0.01)).run(files)
    assert files[0].status == "failed" and "curl error 7" in files[0].error
    assert time.monotonic() - began < 5
