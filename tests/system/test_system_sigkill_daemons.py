"""50 granules flow while each daemon in turn is killed with SIGKILL: no task lost, none twice.

The collector runs under its real supervisord.conf. Granule files are renamed into
sdr/ one granule every quarter second (five passes of ten granules, realistic orbit
numbers, so tasks of one pass merge while they wait). Meanwhile the nameserver,
trollstalker, each segment_gatherer, the task broker and msg_publisher are killed
with SIGKILL, one after the other, each as soon as the previous one is RUNNING
again. Workers ask port 19091 as the field's workers do (two plain REQ workers, one
with lease + ack), and one leasing worker dies holding three tasks.

Every (product, granule) must be finished by a worker exactly once. Messages
published while the broker, the nameserver or trollstalker was down are recovered
by the gatherers' replays (their own at start, and replay_listener's after a
restart); the broker's exactly-once memory turns the replays into nothing.
"""

from __future__ import annotations

import datetime as dt

import pytest
from system_helpers import (
    PRODUCTS,
    Worker,
    granule_start,
    granules_in,
    land,
    segments_in,
    wait_until,
    write_granule,
)

from avoviirscollector.operator.collector_process import GATHERERS

pytestmark = pytest.mark.system

GRANULES, PASSES = 50, 5
VICTIMS = ("nameserver", "trollstalker", *GATHERERS, "task_broker", "msg_publisher")
#: Seconds between two granules landing.
PACE = 0.25
ORBIT_MINUTES = 101.4


def test_sigkill_of_each_daemon_in_turn_loses_and_duplicates_no_task(start_collector, short_dir):
    collector = start_collector()
    staging = collector.base_dir / "tmp" / "staging"
    origin = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0) - dt.timedelta(hours=9)
    granules, expected = [], set()
    for index in range(GRANULES):
        number = index // (GRANULES // PASSES)
        pass_start = origin + dt.timedelta(minutes=ORBIT_MINUTES * number)
        start = granule_start(index % (GRANULES // PASSES), pass_start)
        granules.append(write_granule(staging, "j01", start, 35000 + number, size=20_000))
        expected |= {(product, "j01", start) for product in PRODUCTS}

    workers = [
        Worker(collector.task_port),
        Worker(collector.task_port),
        Worker(collector.task_port, lease=10),
        Worker(collector.task_port, lease=1, dies_after=3),
    ]
    for worker in workers:
        worker.start()
    try:
        kill_at = {3 + 6 * k: victim for k, victim in enumerate(VICTIMS)}
        for index, paths in enumerate(granules):
            land(paths, collector.sdr_dir)
            if index in kill_at:
                victim = kill_at[index]
                old = collector.kill9(victim)
                collector.wait_running([victim], timeout=30, not_pids={old})
            workers[0].stopping.wait(PACE)

        def finished():
            return set(granules_in(t for w in workers for t in w.done)) >= expected

        wait_until(finished, 120, "every granule's task finished by a worker")
        replays_settled(collector)
    finally:
        for worker in workers:
            worker.stop()

    done = [task for worker in workers for task in worker.done]
    counts = granules_in(done)
    twice = sorted(key for key, count in counts.items() if count > 1)
    assert twice == [], f"{len(twice)} granules handed out twice, e.g. {twice[:3]}"
    assert set(counts) == expected, "a granule nobody planted became a task"
    assert all(w.errors == [] for w in workers), [w.errors for w in workers]
    abandoned = set(granules_in(workers[3].abandoned))
    assert len(workers[3].abandoned) == 3 and abandoned <= set(counts)
    for (product, _platform, start), segments in segments_in(done).items():
        assert segments == set(PRODUCTS[product]), (product, start, segments)


def replays_settled(collector) -> None:
    """Make every gatherer replay once more and wait until the broker ignored all of it.

    Each replay publishes the 50 x 4 granules again: the broker logs one "handed
    out ... already" line for each; any of them queued again would reach a worker.
    """
    ignored = collector.log("task_broker").count("(published again)")
    rpc = collector.rpc().supervisor
    for gatherer in GATHERERS:
        rpc.signalProcess(gatherer, "USR1")
    wait_until(
        lambda: (
            collector.log("task_broker").count("(published again)")
            >= ignored + GRANULES * len(PRODUCTS)
        ),
        60,
        "the broker to ignore the replayed granules",
    )
