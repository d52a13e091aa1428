"""Issue 12 item 3: an outage longer than the replay window loses no granule, repeats none.

The collector runs under its real supervisord.conf, with a configuration whose
windows (the gatherers' replay_minutes, trollstalker's catchup_minutes) are 1 minute
instead of the shipped 10, so the outages here last longer than the window without
the tests lasting ten minutes. The recovery must not depend on the window: the
replays start from what the broker recorded it had seen (avoviirscollector/last_seen.py).

- The task broker is stopped for longer than the window while granules land, then
  started: every granule becomes one task (today the granules that landed first,
  more than a window before the broker came back, were lost without a word).
- The whole collector is stopped and started on the same base directory while
  granules land: the same.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from pathlib import Path

import pytest
from system_helpers import (
    PRODUCTS,
    REPO,
    Worker,
    granule_start,
    granules_in,
    land,
    wait_until,
    write_granule,
)

pytestmark = pytest.mark.system

#: Longer than the 1-minute window of the test configuration.
OUTAGE = 75.0
LANDINGS = 6


def short_window_config(directory: Path) -> Path:
    """The repository's configuration with 1-minute replay and catch-up windows."""
    config = directory / "config"
    config.mkdir()
    for name in ("supervisord.conf", "crontab"):
        shutil.copy(REPO / name, config / name)
    shutil.copytree(REPO / "etc", config / "etc")
    ini = config / "etc" / "segment_gatherer.ini"
    ini.write_text(ini.read_text().replace("replay_minutes = 10", "replay_minutes = 1"))
    stalker = config / "etc" / "trollstalker.ini"
    stalker.write_text(stalker.read_text().replace("catchup_minutes = 10", "catchup_minutes = 1"))
    return config


def granules(staging: Path, count: int, orbit: int) -> tuple[list, set]:
    origin = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0) - dt.timedelta(hours=1)
    files, expected = [], set()
    for index in range(count):
        start = granule_start(index, origin + dt.timedelta(minutes=30 * (orbit % 7)))
        files.append(write_granule(staging, "j01", start, orbit, size=20_000))
        expected |= {(product, "j01", start) for product in PRODUCTS}
    return files, expected


def land_during(outage: float, files: list, sdr: Path) -> None:
    """Land the granules spread over ``outage`` seconds, the first one at once."""
    began = time.monotonic()
    for index, paths in enumerate(files):
        wait = began + index * outage / len(files) - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        land(paths, sdr)
    time.sleep(max(0.0, began + outage - time.monotonic()))


def assert_each_granule_one_task(workers, expected) -> None:
    done = [task for worker in workers for task in worker.done]
    counts = granules_in(done)
    twice = sorted(key for key, count in counts.items() if count > 1)
    assert twice == [], f"{len(twice)} granules handed out twice, e.g. {twice[:3]}"
    assert set(counts) == expected
    assert all(w.errors == [] for w in workers), [w.errors for w in workers]


def test_issue_12_3_broker_down_longer_than_the_replay_window_loses_no_granule(
    start_collector, short_dir
):
    collector = start_collector(VIIRS_CONFIG_DIR=str(short_window_config(short_dir)))
    staging = collector.base_dir / "tmp" / "staging"
    before, expected = granules(staging, 2, 35100)
    during, expected_during = granules(staging, LANDINGS, 35101)
    workers = [Worker(collector.task_port), Worker(collector.task_port, lease=30)]
    for worker in workers:
        worker.start()
    try:
        for paths in before:
            land(paths, collector.sdr_dir)
        wait_until(
            lambda: set(granules_in(w for x in workers for w in x.done)) >= expected,
            30,
            "the granules before the outage",
        )
        rpc = collector.rpc().supervisor
        rpc.stopProcess("task_broker", True)
        land_during(OUTAGE, during, collector.sdr_dir)
        rpc.startProcess("task_broker", True)
        expected |= expected_during
        wait_until(
            lambda: set(granules_in(t for w in workers for t in w.done)) >= expected,
            90,
            "every granule's task after the broker came back",
        )
        time.sleep(3)  # a repeat would come now
    finally:
        for worker in workers:
            worker.stop()
    assert_each_granule_one_task(workers, expected)


def test_issue_12_3_collector_stopped_longer_than_the_replay_window_loses_no_granule(
    start_collector, short_dir
):
    config = short_window_config(short_dir)
    collector = start_collector(VIIRS_CONFIG_DIR=str(config))
    staging = collector.base_dir / "tmp" / "staging"
    before, expected = granules(staging, 2, 35200)
    during, expected_during = granules(staging, LANDINGS, 35201)
    worker = Worker(collector.task_port)
    worker.start()
    try:
        for paths in before:
            land(paths, collector.sdr_dir)
        wait_until(lambda: set(granules_in(worker.done)) >= expected, 30, "the first granules")
        collector.stop()
        land_during(OUTAGE, during, collector.sdr_dir)
        again = start_collector(collector.base_dir, VIIRS_CONFIG_DIR=str(config))
        restarted = Worker(again.task_port)
        restarted.start()
        expected |= expected_during
        try:
            wait_until(
                lambda: set(granules_in(worker.done + restarted.done)) >= expected,
                90,
                "every granule's task after the collector came back",
            )
            time.sleep(3)  # a repeat would come now
        finally:
            restarted.stop()
    finally:
        worker.stop()
    assert_each_granule_one_task([worker, restarted], expected)
