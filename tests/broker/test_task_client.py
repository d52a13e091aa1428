"""viirscollector task: the workers' request, every kind of reply, and a broker that is silent."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time

import pytest
import zmq
from helpers.processes import terminate_then_kill
from helpers.zmq_threads import SocketThread

from avoviirscollector import bus
from avoviirscollector.broker.task_client import (
    BrokerError,
    BrokerTimeout,
    TaskClient,
    build_request,
    main,
    parse_reply,
    task_json,
)
from avoviirscollector.netutil import free_port


def granule_task(product: str = "tir") -> bus.Message:
    start = dt.datetime(2024, 5, 1, 12, 0, 0)
    return bus.message(
        f"/AVO/viirs/granule/{product}",
        "collection",
        {
            "platform_name": "NOAA-20",
            "orbit_number": 33123,
            "start_time": start,
            "end_time": start + dt.timedelta(seconds=85),
            "dataset": [{"uid": "GITCO_j01.h5", "uri": "/viirs/sdr/GITCO_j01.h5"}],
        },
    )


class ScriptedBroker(SocketThread):
    """A ROUTER on a free port answering as a broker would: each request goes to ``answer``.

    ``answer(request) -> bytes | None``; None means stay silent (a hung broker). A
    ROUTER sees each client socket's identity, so tests can tell a reopened socket.
    """

    def __init__(self, answer):
        self.answer = answer
        self.requests: list[dict] = []
        self.identities: list[bytes] = []
        super().__init__(zmq.ROUTER)

    def serve_once(self):
        if not self._socket.poll(50):
            return
        identity, empty, payload = self._socket.recv_multipart()
        self.identities.append(identity)
        self.requests.append(json.loads(payload))
        reply = self.answer(self.requests[-1])
        if reply is not None:
            self._socket.send_multipart([identity, empty, reply])


@pytest.fixture
def broker_with():
    brokers = []

    def start(answer):
        brokers.append(ScriptedBroker(answer))
        return brokers[-1]

    yield start
    for broker in brokers:
        broker.stop()


def test_request_uses_the_workers_wire_format(broker_with, capsys):
    broker = broker_with(lambda request: b"")
    code = main(
        ["--product", "tir", "--product", "mir,btd", "--just-testing", "--port", str(broker.port)]
    )
    assert code == 0
    assert broker.requests == [{"desired products": ["tir", "mir", "btd"], "just testing": True}]
    assert build_request(["vis"], lease=30) == {
        "desired products": ["vis"],
        "just testing": False,
        "lease": 30,
    }


def test_task_data_is_printed_as_json(broker_with, capsys):
    broker = broker_with(lambda request: granule_task("tir").encode().encode("utf-8"))
    assert main(["--product", "tir", "--port", str(broker.port)]) == 0
    out, err = capsys.readouterr()
    data = json.loads(out)
    assert data["orbit_number"] == 33123
    assert data["start_time"] == "2024-05-01T12:00:00"
    assert data["dataset"][0]["uid"] == "GITCO_j01.h5"
    assert "/AVO/viirs/granule/tir" in err and "taken off the queue" in err


def test_empty_reply_says_no_task_is_waiting(broker_with, capsys):
    broker = broker_with(lambda request: b"")
    assert main(["--product", "mir", "--port", str(broker.port)]) == 0
    out, _ = capsys.readouterr()
    assert out.strip() == f"no task waiting for mir at tcp://localhost:{broker.port}"


def test_error_reply_is_one_line_and_exit_status_1(broker_with, capsys):
    broker = broker_with(lambda request: b"error: 'desired products' must be a non-empty list")
    assert main(["--product", "tir", "--port", str(broker.port)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and "error: 'desired products'" in err


def test_undecodable_reply_is_a_broker_error_not_a_traceback():
    with pytest.raises(BrokerError, match="undecodable reply"):
        parse_reply(b"\xff\xfe not a posttroll message")
    assert parse_reply(b"") is None


def test_silent_broker_is_given_up_on_after_each_retry_on_a_fresh_socket(broker_with):
    broker = broker_with(lambda request: None)
    client = TaskClient("127.0.0.1", broker.port, timeout=0.3, retries=2)
    began = time.monotonic()
    with pytest.raises(BrokerTimeout, match="did not answer within 0.3 s"):
        client.request(["tir"], just_testing=True)
    elapsed = time.monotonic() - began
    client.close()
    assert 0.85 < elapsed < 3
    assert len(broker.requests) == 3
    assert len(set(broker.identities)) == 3, "each retry must use a new REQ socket"


def test_client_works_again_after_a_request_that_timed_out(broker_with):
    answers = iter([None, b""])
    broker = broker_with(lambda request: next(answers))
    with TaskClient("127.0.0.1", broker.port, timeout=0.3) as client:
        with pytest.raises(BrokerTimeout):
            client.request(["tir"])
        assert client.request(["tir"]) is None  # a stuck REQ socket would raise EFSM here
    assert len(broker.requests) == 2


def test_cli_without_broker_fails_in_one_line_within_the_timeout():
    port = free_port()
    began = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "avoviirscollector.cli", "task", "--product", "tir",
         "--port", str(port), "--timeout", "0.5"],
        capture_output=True, text=True, timeout=30, env=dict(os.environ),
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert f"tcp://localhost:{port} did not answer within 0.5 s" in result.stderr
    assert time.monotonic() - began < 10


def test_task_json_turns_datetimes_into_iso_text():
    text = task_json(granule_task())
    assert json.loads(text)["end_time"] == "2024-05-01T12:01:25"


# ----------------------------------------------------------------- the real broker


@pytest.fixture
def real_broker(base_dir):
    """The real task_broker on free ports, with an empty queue in a temporary base."""
    from avoviirscollector.operator.sniff import receive

    ports = {"VIIRS_TASK_PORT": str(free_port()), "VIIRS_STATE_PORT": str(free_port())}
    env = dict(os.environ, VIIRS_BASE_DIR=str(base_dir), **ports)
    (base_dir / "state").mkdir()
    log = (base_dir / "task_broker.log").open("w")
    program = "from avoviirscollector.broker.task_broker import main; exit(main())"
    process = subprocess.Popen(
        [sys.executable, "-c", program],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    try:
        # Ready when its first queue state arrives (it publishes every second).
        next(receive(f"tcp://127.0.0.1:{ports['VIIRS_STATE_PORT']}", "", 20, 1))
        yield ports
    finally:
        terminate_then_kill(process)
        log.close()


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "avoviirscollector.cli", *args],
        capture_output=True, text=True, timeout=30, env=dict(os.environ),
    )  # fmt: skip


def test_real_broker_with_empty_queue_says_none_waiting_and_refuses_a_bad_lease(real_broker):
    port = real_broker["VIIRS_TASK_PORT"]
    empty = run_cli("task", "--product", "tir", "--just-testing", "--port", port)
    assert empty.returncode == 0, empty.stderr
    assert empty.stdout == f"no task waiting for tir at tcp://localhost:{port}\n"
    refused = run_cli("task", "--product", "tir", "--lease", "-5", "--port", port)
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert refused.stderr.startswith("task: error:") and refused.stderr.count("\n") == 1
    again = run_cli("task", "--product", "mir", "--port", port)
    assert again.returncode == 0, "the broker goes on serving after a refused request"


def test_sniff_queue_length_reads_the_real_broker(real_broker):
    result = run_cli("sniff", "queue", "--length", "--port", real_broker["VIIRS_STATE_PORT"])
    assert result.returncode == 0, result.stderr
    assert result.stdout == "0\n"


def test_an_impossible_host_is_one_line_not_a_traceback():
    result = run_cli("task", "--product", "tir", "--host", "bad host")
    assert result.returncode == 1
    assert result.stderr.startswith("task: cannot ask tcp://bad host:19091: Invalid argument")
    assert result.stderr.count("\n") == 1


def test_unknown_product_is_an_error_naming_the_known_ones_not_an_empty_reply(real_broker):
    """Regression (issue 14.3): `task --product tri` got "no task waiting", forever."""
    port = real_broker["VIIRS_TASK_PORT"]
    for args in (("--product", "tri"), ("--product", "tri", "--just-testing")):
        result = run_cli("task", *args, "--port", port)
        assert result.returncode == 1, result.stdout
        assert result.stdout == ""
        assert result.stderr == "task: error: unknown product 'tri' (known: tir, vis, btd, mir)\n"
    with TaskClient(port=int(port), timeout=5) as client:
        raw = client.send({"desired products": ["tri"], "just testing": False})
    assert raw == b"error: unknown product 'tri' (known: tir, vis, btd, mir)"
    raw.decode("utf-8")  # plain UTF-8 text, as every refusal
