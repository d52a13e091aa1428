"""The flusher: files synced while they download, coalesced, never in the transfers' way."""

from __future__ import annotations

import os
import threading

from avoviirscollector.mirror.downloader import Downloader, FileTask, Options
from avoviirscollector.mirror.flusher import Flusher
from avoviirscollector.standins.gina import GinaStandin
from tests.mirror.test_downloader import assert_intact, make


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


class GatedSync:
    """A sync that records which file it synced, and holds the first call until released."""

    def __init__(self):
        self.synced: list[int] = []
        self.inode_of: dict[int, str] = {}
        self.first_started, self.release = threading.Event(), threading.Event()
        self.done = threading.Condition()

    def __call__(self, fd: int) -> None:
        self.first_started.set()
        self.release.wait(10)
        with self.done:
            self.synced.append(os.fstat(fd).st_ino)
            self.done.notify_all()

    def wait_for(self, count: int) -> None:
        with self.done:
            assert self.done.wait_for(lambda: len(self.synced) >= count, timeout=10)


def test_a_file_waiting_for_its_sync_is_not_queued_again(tmp_path):
    names = ("a", "b")
    fds = {n: os.open(tmp_path / n, os.O_RDWR | os.O_CREAT) for n in names}
    inode = {os.fstat(fd).st_ino: n for n, fd in fds.items()}
    sync = GatedSync()
    flusher = Flusher(sync)
    flusher.written("a", fds["a"])
    assert sync.first_started.wait(10)  # a is being synced: a later write queues it again
    for name in ("b", "b", "a", "b", "a"):
        flusher.written(name, fds[name])
    sync.release.set()
    sync.wait_for(3)
    flusher.close()
    assert [inode[i] for i in sync.synced] == ["a", "b", "a"]
    for fd in fds.values():
        os.close(fd)


def test_the_caller_may_close_its_descriptor_and_close_releases_every_duplicate(tmp_path):
    before = open_descriptors()
    sync = GatedSync()
    flusher = Flusher(sync)
    fd = os.open(tmp_path / "a", os.O_RDWR | os.O_CREAT)
    flusher.written("a", fd)
    os.close(fd)  # the engine closes a finished file at once
    assert sync.first_started.wait(10)
    flusher.written("b", os.open(tmp_path / "b", os.O_RDWR | os.O_CREAT))  # left waiting
    sync.release.set()
    sync.wait_for(1)
    flusher.close()
    assert open_descriptors() == before + 1  # only b's own descriptor, which is the caller's


def test_a_failed_sync_is_left_to_the_placer_and_the_next_file_is_still_synced(tmp_path):
    calls, second_done = [], threading.Event()

    def sync(fd):
        calls.append(fd)
        if len(calls) == 1:
            raise OSError(5, "Input/output error")
        second_done.set()

    flusher = Flusher(sync)
    fds = [os.open(tmp_path / name, os.O_RDWR | os.O_CREAT) for name in ("a", "b")]
    flusher.written("a", fds[0])
    flusher.written("b", fds[1])
    assert second_done.wait(10), "the thread went on after the failed sync"
    flusher.close()
    assert (len(calls), flusher.synced) == (2, 1)
    for fd in fds:
        os.close(fd)


def test_the_engine_syncs_a_file_as_it_grows(tmp_path):
    gina_dir = tmp_path / "gina"
    paths = make(gina_dir, size=4_000_000)
    out = tmp_path / "out"
    out.mkdir()
    files = [FileTask("", out / f"{p.name}.part", p.name) for p in paths]
    engine = Downloader(Options(connections=1, writeback_bytes=1024 * 1024))
    with GinaStandin(gina_dir, rate=20_000_000) as gina:
        files[0].url = gina.file_url(paths[0].name)
        engine.run(files)
    assert_intact(files, paths)
    assert engine._flusher.synced >= 1, "4 MB arriving at 20 MB/s: synced every MiB written"
