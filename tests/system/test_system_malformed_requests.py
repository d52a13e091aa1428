"""10,000 malformed requests on the task port, mixed with good ones: all good ones served.

The collector runs under its real supervisord.conf with 20 tasks queued through
the real pipeline. Workers' REQ sockets send every kind of bad request (not JSON,
not UTF-8, not an object, missing, empty or mistyped fields, oversized, nested too
deeply, several frames) and raw TCP connections send bytes that are not ZMTP at
all. (A frame over the 64 KiB request limit gets no reply: libzmq closes that
connection; test_system_hostile_peers.py proves it.) Each bad request gets an
``error:`` reply; every good request between them gets its task (or the empty
reply once the queue is empty); the broker keeps its pid and its resident memory
stays flat.
"""

from __future__ import annotations

import datetime as dt
import itertools
import socket

import pytest
import zmq
from system_helpers import (
    PRODUCTS,
    granule_start,
    land,
    queue_length,
    vm_rss_kb,
    wait_until,
    write_granule,
)

from avoviirscollector.broker.task_client import TaskClient, parse_reply

pytestmark = pytest.mark.system

MALFORMED = 10_000
GOOD_EVERY = 200
#: kB the broker's resident memory may grow between warm-up and the end.
RSS_GROWTH_KB = 4096

BAD_REQUESTS = [
    b"",
    b"not json at all",
    b"\xff\xfe\x00garbage",
    b"[1, 2, 3]",
    b'"desired products"',
    b"{}",
    b'{"desired products": []}',
    b'{"desired products": "tir"}',
    b'{"desired products": [1, 2]}',
    b'{"desired products": ["tir"], "just testing": "yes"}',
    b'{"desired products": ["tir"], "lease": -5}',
    b'{"desired products": ["tir"], "lease": "long"}',
    b'{"ack": 42}',
    b'{"ack": "no-such-task"}',
    b'{"desired products": ["tir"], "just testing": true, "lease": 10}',
    b"[" * 60_000,
    b'{"desired products": ["' + b"x" * 65_000 + b'"]}',
]


def not_zmtp(port: int) -> None:
    """A TCP client that speaks no ZMTP: garbage, then it hangs up."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + bytes(range(256)) * 4)


class BadWorker:
    """REQ sockets sending bad requests; a fresh socket (a new peer) every 100 requests."""

    def __init__(self, port: int):
        self.port, self.context, self.sock, self.sent = port, zmq.Context(), None, 0

    def ask(self, frames: list[bytes]) -> bytes:
        if self.sock is None or self.sent % 100 == 0:
            self.close_socket()
            self.sock = self.context.socket(zmq.REQ)
            self.sock.setsockopt(zmq.LINGER, 0)
            self.sock.connect(f"tcp://127.0.0.1:{self.port}")
        self.sent += 1
        self.sock.send_multipart(frames)
        assert self.sock.poll(10_000), f"no reply to bad request {frames[0][:40]!r}"
        return self.sock.recv()

    def close_socket(self):
        if self.sock is not None:
            self.sock.close(linger=0)

    def close(self):
        self.close_socket()
        self.context.term()


def test_ten_thousand_malformed_requests_leave_every_good_one_served_and_memory_flat(
    start_collector,
):
    collector = start_collector()
    origin = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0) - dt.timedelta(hours=2)
    staging = collector.base_dir / "tmp" / "staging"
    for orbit in range(5):  # 5 granules of other orbits: 20 tasks
        start = granule_start(0, origin + dt.timedelta(minutes=101 * orbit))
        land(write_granule(staging, "j02", start, 9000 + orbit, size=20_000), collector.sdr_dir)
    wait_until(lambda: queue_length(collector) == 20, 30, "20 tasks queued")
    pid = collector.pid("task_broker")

    bad, good = BadWorker(collector.task_port), TaskClient(port=collector.task_port, timeout=10)
    kinds = itertools.cycle([[raw] for raw in BAD_REQUESTS] + [[b"{}", b"two frames"]])
    tasks, empty, refused, rss = [], 0, 0, {}
    try:
        for number in range(1, MALFORMED + 1):
            reply = bad.ask(next(kinds))
            assert reply.startswith(b"error:"), reply[:80]
            refused += 1
            if number % 1000 == 0:
                not_zmtp(collector.task_port)
            if number == 1000:
                rss["warm"] = vm_rss_kb(pid)
            if number % GOOD_EVERY == 0:
                peek = parse_reply(
                    good.send({"desired products": list(PRODUCTS), "just testing": True})
                )
                task = good.request(list(PRODUCTS))
                assert (peek is None) == (task is None), "peek and take disagree"
                if task is None:
                    empty += 1
                else:
                    assert task.data == peek.data, "the peeked task is the one handed out"
                    tasks.append(task)
        rss["end"] = vm_rss_kb(pid)
    finally:
        bad.close()
        good.close()

    assert refused == MALFORMED
    assert len(tasks) == 20 and empty == MALFORMED // GOOD_EVERY - 20
    assert sorted({t.subject.rsplit("/", 1)[1] for t in tasks}) == sorted(PRODUCTS)
    assert collector.pid("task_broker") == pid, "the broker was restarted"
    assert collector.program_states()["task_broker"] == "RUNNING"
    growth = rss["end"] - rss["warm"]
    assert growth <= RSS_GROWTH_KB, f"broker RSS grew {growth} kB: {rss}"
