"""viirscollector worker: a leased task becomes one PNG made from exactly its files, then an ack.

The broker here is scripted (a ROUTER that answers with the bytes task_broker sends), to
see every request the worker makes; the demo's system test runs it against the real one.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import pytest
import zmq
from helpers.satpy_needed import satpy
from helpers.zmq_threads import SocketThread

from avoviirscollector import bus
from avoviirscollector.broker.task_client import TaskClient
from avoviirscollector.standins import synthetic_scene, synthetic_sdr
from avoviirscollector.worker import quicklook
from avoviirscollector.worker.reference_worker import ReferenceWorker, main

START = dt.datetime(2026, 3, 1, 23, 59, 30)  # a granule that crosses midnight


class Broker(SocketThread):
    """Hands out ``tasks`` (leased: each carries a task_id), then empty replies; records acks."""

    def __init__(self, tasks: list[bus.Message]):
        self.tasks, self.requests, self.acks = list(tasks), [], []
        super().__init__(zmq.ROUTER)

    def serve_once(self):
        if not self._socket.poll(50):
            return
        identity, empty, payload = self._socket.recv_multipart()
        request = json.loads(payload)
        self.requests.append(request)
        if "ack" in request:
            self.acks.append(request["ack"])
            reply = b"ok"
        else:
            reply = self.tasks.pop(0).encode().encode() if self.tasks else b""
        self._socket.send_multipart([identity, empty, reply])


def task(product: str, paths, task_id: str) -> bus.Message:
    return bus.message(
        f"/AVO/viirs/granule/{product}",
        "collection",
        {
            "platform_name": "NOAA-21",
            "orbit_number": 9000,
            "start_time": START,
            "end_time": START + dt.timedelta(seconds=85),
            "dataset": [{"uid": p.name, "uri": str(p)} for p in paths],
            "task_id": task_id,
        },
    )


def run_worker(broker: Broker, output, tasks: int) -> ReferenceWorker:
    client = TaskClient(port=broker.port, timeout=5)
    worker = ReferenceWorker(client, ["tir", "mir"], output, lease=60)
    try:
        worker.run(idle=0.05, max_tasks=tasks)
    finally:
        client.close()
    return worker


@pytest.fixture
def broker_with():
    brokers = []
    yield lambda tasks: brokers.append(Broker(tasks)) or brokers[-1]
    for broker in brokers:
        broker.stop()


def test_a_leased_task_becomes_one_png_made_from_exactly_its_files_and_is_acked(
    tmp_path, broker_with
):
    satpy()
    sdr = tmp_path / "sdr"
    mine = synthetic_sdr.make_pass(sdr, "j02", START, granules=1, segments=("GITCO", "SVI05"))
    # in the same directory: the same minute of another satellite, and the next granule
    synthetic_sdr.make_pass(sdr, "j01", START, granules=1, segments=("GITCO", "SVI05"))
    later = START + dt.timedelta(seconds=synthetic_sdr.GRANULE_SECONDS)
    synthetic_sdr.make_pass(sdr, "j02", later, granules=1, segments=("GITCO", "SVI05"))
    broker = broker_with([task("tir", mine, "7-abc")])

    worker = run_worker(broker, tmp_path / "out", tasks=1)

    pngs = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert pngs == [
        "tir_j02_d20260301_t2359300_e0000553_b09000.json",
        "tir_j02_d20260301_t2359300_e0000553_b09000.png",
    ]
    record = json.loads((tmp_path / "out" / pngs[0]).read_text())
    assert sorted(record["files"]) == sorted(p.name for p in mine)
    assert record["bands"] == {"I05": list(synthetic_scene.shape("I"))}, "one granule's rows"
    assert record["platform_name"] == "NOAA-21"
    assert record["start_time"] == "2026-03-01T23:59:30"
    assert record["end_time"].startswith("2026-03-02T00:00:55")
    assert (tmp_path / "out" / pngs[1]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert broker.requests[0] == {"desired products": ["tir", "mir"], "just testing": False,
                                  "lease": 60}  # fmt: skip
    assert broker.acks == ["7-abc"]
    assert len(worker.made) == 1


def test_a_task_whose_files_are_gone_is_dropped_in_one_line_and_acked(
    tmp_path, broker_with, caplog
):
    satpy()
    paths = synthetic_sdr.make_pass(tmp_path, "j02", START, granules=1, segments=("GITCO",))
    gone = tmp_path / paths[0].name.replace("GITCO", "SVI04")
    broker = broker_with([task("mir", [paths[0], gone], "8-def")])

    worker = run_worker(broker, tmp_path / "out", tasks=1)

    assert worker.made == [] and broker.acks == ["8-def"]
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "1 of the task's 2 files are not there" in errors[0]
    assert "dropped" in errors[0] and gone.name in errors[0]


def test_without_satpy_the_worker_says_how_to_install_it_and_takes_no_task(tmp_path):
    code = (
        "import sys; sys.modules['satpy'] = None\n"  # as if the extra were not installed
        "from avoviirscollector.worker.reference_worker import main\n"
        f"sys.exit(main(['--port', '1', '--output-dir', {str(tmp_path)!r}]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "pip install 'avoviirscollector[worker]'" in done.stderr
    assert "Traceback" not in done.stderr
    assert callable(main) and quicklook.INSTALL_HINT in done.stderr
