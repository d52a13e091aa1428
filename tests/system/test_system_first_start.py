"""Issue 17: the first start on a populated sdr/ takes the files already there as processed.

The original collector's volume holds days of sdr/ files and no state of ours. Our
collector, started on it under the real supervisord.conf, must not queue them (the
original, watching with inotify, published nothing for files already there), must
say in one line how many it took as processed and how to queue them, and must then
make a task of a granule that lands afterwards within seconds.
"""

from __future__ import annotations

import datetime as dt
import os
import time

import pytest
from system_helpers import PRODUCTS, granule_start, granules_in, land, wait_until, write_granule

from avoviirscollector.broker.task_client import TaskClient
from avoviirscollector.operator.collector_process import GATHERERS

pytestmark = pytest.mark.system

OLD_GRANULES = 12


def test_first_start_on_three_days_of_sdr_files_queues_none_of_them_but_the_next_granule(
    start_collector, short_dir
):
    base = short_dir / "viirs"
    sdr = base / "sdr"
    sdr.mkdir(parents=True)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    for index in range(OLD_GRANULES):  # one granule every 6 hours over three days
        start = granule_start(0, now - dt.timedelta(days=3) + dt.timedelta(hours=6 * index))
        for path in write_granule(sdr, "j01", start, 35000 + index, size=20_000):
            stamp = (start + dt.timedelta(minutes=20)).replace(tzinfo=dt.UTC).timestamp()
            os.utime(path, (stamp, stamp))  # the original placed it 20 min after the pass
    assert not (base / "state").exists()

    collector = start_collector(base)
    wait_until(
        lambda: (
            all("replay:" in collector.log(g) for g in GATHERERS)
            and "catch-up: published" in collector.log("trollstalker")
        ),
        30,
        "the stalker's catch-up and the gatherers' replays",
    )
    start = granule_start(0, now - dt.timedelta(minutes=5))
    landed = time.monotonic()
    land(write_granule(base / "tmp", "j01", start, 36000, size=20_000), sdr)
    client = TaskClient(port=collector.task_port, timeout=5.0)
    try:
        tasks = []

        def every_product_queued():
            task = client.request(list(PRODUCTS))
            if task is not None:
                tasks.append(task)
            return len(tasks) >= len(PRODUCTS)

        wait_until(every_product_queued, 20, "a task per product for the granule that landed")
        seconds = time.monotonic() - landed
        while (task := client.request(list(PRODUCTS))) is not None:
            tasks.append(task)
    finally:
        client.close()

    import shutil

    shutil.rmtree("/tmp/dbg", ignore_errors=True)
    shutil.copytree(base / "log", "/tmp/dbg")
    shutil.copytree(base / "state", "/tmp/dbg/state")
    assert set(granules_in(tasks)) == {(product, "j01", start) for product in PRODUCTS}
    assert seconds < 10, f"the new granule took {seconds:.1f} s to become tasks"
    taken = [line for line in collector.log("trollstalker").splitlines() if "as processed" in line]
    assert len(taken) == 1
    assert f"took {OLD_GRANULES * 10} file(s) already in sdr/ as processed" in taken[0]
    assert "viirscollector reprocess --until " in taken[0]
