"""After an outage the current pass reaches a worker first, not the backlog (issue 17).

The collector runs under its real supervisord.conf with the shipped settings, GINA_URL
pointing at the GINA stand-in. GINA is unreachable for "two hours": a mirror run during
the outage fails, while the stand-in goes on publishing the passes of those two hours
(Suomi-NPP, NOAA-21, NOAA-20, and a NOAA-20 pass of a few minutes ago). GINA comes back
and the mirror runs once: its queues (one per satellite) run side by side, each newest
granule first, so the granules reach the broker in no useful order across satellites;
here the newest pass's files come slowest, as the station's latest files do, so the
older passes are queued first. A worker exactly as in 2019 then asks: it must get the
newest pass first, then the older passes newest first.
"""

from __future__ import annotations

import datetime as dt

import pytest
import zmq
from system_helpers import PRODUCTS, queue_length, run_mirror, wait_until

from avoviirscollector import bus
from avoviirscollector.standins.synthetic_sdr import make_pass

pytestmark = pytest.mark.system

#: The passes of the outage: name -> (platform, minutes before now, granules).
PASSES = {
    "npp, 2 h ago": ("npp", 125, 2),
    "j01, 100 min ago": ("j01", 100, 2),
    "j02, 75 min ago": ("j02", 75, 2),
    "j01, now (newest)": ("j01", 12, 3),
}
SIZE = 20_000


def test_after_a_two_hour_gina_outage_the_first_task_a_worker_gets_is_the_newest_pass(
    gina, start_collector
):
    collector = start_collector(gina=gina)
    gina.catalog_fault("error")  # GINA is down
    down = run_mirror(collector)
    assert down.returncode != 0, "the mirror run during the outage failed"

    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    starts, newest_files = {}, []
    for name, (platform, minutes, granules) in PASSES.items():  # published all the while
        start = now - dt.timedelta(minutes=minutes)
        files = make_pass(gina.directory, platform, start, granules=granules, size=SIZE)
        starts[name] = (platform, start, start + dt.timedelta(seconds=86 * granules))
        if "newest" in name:
            newest_files = files
    gina.scan()
    gina.clear_faults()  # GINA is back
    for path in newest_files:
        gina.fault("slow", path.name, rate=15_000)

    back = run_mirror(collector)
    assert back.returncode == 0, back.stderr[-2000:]
    tasks = len(PASSES) * len(PRODUCTS)  # the granules of a pass merge into one task each
    wait_until(lambda: queue_length(collector) == tasks, 60, f"{tasks} tasks")

    context = zmq.Context()
    worker = context.socket(zmq.REQ)  # the 2019 worker: nothing new in what it sends
    worker.setsockopt(zmq.LINGER, 0)
    worker.setsockopt(zmq.RCVTIMEO, 5000)
    worker.connect(f"tcp://localhost:{collector.task_port}")
    order = []
    try:
        for _ in range(tasks):
            worker.send_json({"desired products": list(PRODUCTS), "just testing": False})
            task = bus.Message.decode(worker.recv().decode("utf-8"))
            start = task.data["start_time"]
            platform = task.data["dataset"][0]["uid"].split("_")[1]
            order.append(
                next(n for n, (p, s, e) in starts.items() if p == platform and s <= start < e)
            )
    finally:
        worker.close(linger=0)
        context.term()

    arrival = [line for line in collector.log("task_broker").splitlines() if "queued task" in line]
    assert "j01" not in arrival[0], "the newest pass came last (else this proves nothing)"
    newest_first = ["j01, now (newest)", "j02, 75 min ago", "j01, 100 min ago", "npp, 2 h ago"]
    assert order == [name for name in newest_first for _ in PRODUCTS], order
