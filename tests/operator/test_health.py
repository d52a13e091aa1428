"""`viirscollector health`: healthy only when every program runs and the broker publishes.

Real supervisord (a minimal config of our own, and the collector's real one),
real ZMQ sockets, the command run as the HEALTHCHECK runs it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import zmq
from helpers.bus import SUPERVISORD_HEAD, wait_until
from helpers.processes import terminate_then_kill

from avoviirscollector import supervisor_client
from avoviirscollector.netutil import free_port
from avoviirscollector.operator import health
from avoviirscollector.operator.collector_process import PROGRAMS, CollectorProcess

CLI = [sys.executable, "-m", "avoviirscollector.cli"]


@pytest.fixture
def short_base():
    """A base directory with a short path: AF_UNIX socket paths hold 107 bytes."""
    base = Path(tempfile.mkdtemp(prefix="vh-", dir="/tmp"))
    for name in ("tmp", "log"):
        (base / name).mkdir()
    yield base
    shutil.rmtree(base, ignore_errors=True)


def run_health(base: Path, state_port: int, timeout: float = 2.0, task_port: int | None = None):
    env = {**os.environ, "VIIRS_BASE_DIR": str(base), "VIIRS_STATE_PORT": str(state_port)}
    if task_port is not None:
        env["VIIRS_TASK_PORT"] = str(task_port)
    return subprocess.run(
        [*CLI, "health", "--timeout", str(timeout)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


class StatePublisher:
    """Publishes frames on a port every 0.1 s, as the broker publishes its queue state."""

    def __init__(self, frame: bytes):
        self.port = free_port()
        self.frame = frame
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join(5)

    def _run(self):
        context = zmq.Context()
        pub = context.socket(zmq.PUB)
        pub.setsockopt(zmq.LINGER, 0)
        pub.bind(f"tcp://127.0.0.1:{self.port}")
        while not self._stop.wait(0.1):
            pub.send(self.frame)
        pub.close(linger=0)
        context.term()


SUPERVISORD_CONF = (
    SUPERVISORD_HEAD
    + """\
[program:steady]
command={python} -c "import time; time.sleep(120)"
startsecs=0
stopasgroup=true
killasgroup=true
[program:broken]
command=false
startsecs=1
startretries=0
autorestart=false
"""
)


@pytest.fixture
def supervisord(short_base):
    conf = short_base / "supervisord.conf"
    conf.write_text(SUPERVISORD_CONF.format(base=short_base, python=sys.executable))
    process = subprocess.Popen(
        [sys.executable, "-m", "supervisor.supervisord", "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    yield short_base
    terminate_then_kill(process, timeout=20)


def test_no_supervisord_is_unhealthy_in_one_line(short_base):
    result = run_health(short_base, free_port())
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"unhealthy: supervisord is not running (no socket {short_base}/tmp/supervisor.sock)"
    )


def test_a_program_supervisord_gave_up_on_is_named(supervisord):
    sock = supervisord / "tmp" / "supervisor.sock"

    def fatal():
        try:
            health.check_programs(sock, timeout=2)
        except health.Unhealthy as problem:
            return "broken FATAL" in str(problem) and str(problem)
        return False

    message = wait_until(fatal, 30, "the broken program to become FATAL")
    assert message == "not running: broken FATAL"
    with StatePublisher(b'{"queue length": 0, "products waiting": []}') as state:
        result = run_health(supervisord, state.port)
    assert result.returncode == 1
    assert result.stderr.strip() == "unhealthy: not running: broken FATAL"


def test_queue_state_is_read_from_the_state_port():
    frame = json.dumps({"queue length": 3, "products waiting": ["tir"]}).encode()
    with StatePublisher(frame) as state:
        assert health.check_queue_state(state.port, timeout=5) == {"queue length": 3}


def test_silent_state_port_is_unhealthy_within_the_timeout():
    started = time.monotonic()
    with pytest.raises(health.Unhealthy, match=r"no queue state from task_broker on port \d+"):
        health.check_queue_state(free_port(), timeout=1)
    assert time.monotonic() - started < 3


def test_something_else_on_the_state_port_is_unhealthy():
    with (
        StatePublisher(b"not json") as state,
        pytest.raises(health.Unhealthy, match="not the queue state"),
    ):
        health.check_queue_state(state.port, timeout=5)


@pytest.mark.system
def test_real_collector_is_healthy_and_a_stopped_program_makes_it_unhealthy(short_base):
    dead = f"http://127.0.0.1:{free_port()}/"  # no outside network from scheduled jobs
    env = {**os.environ, "GINA_URL": dead + "products.json", "TLE_URL": dead + "gp.php"}
    with CollectorProcess(short_base, env=env) as collector:
        collector.wait_running(PROGRAMS, timeout=60)
        result = wait_until(
            lambda: (
                (
                    r := run_health(short_base, collector.state_port, 5, collector.task_port)
                ).returncode
                == 0
                and r
            ),
            30,
            "health to pass",
        )
        assert result.stdout.startswith(f"healthy: {len(PROGRAMS)} programs running")
        assert "task port answered in " in result.stdout
        collector.rpc().supervisor.stopProcess("msg_publisher")
        result = run_health(short_base, collector.state_port, 5, collector.task_port)
    assert result.returncode == 1
    assert result.stderr.strip() == "unhealthy: not running: msg_publisher STOPPED"


# --- the task port answers workers (issue 12.1) ------------------------------------------


class SilentTaskPort:
    """A ROUTER on a free port that reads requests and never answers (a wedged broker)."""

    def __init__(self):
        self.context = zmq.Context()
        self.router = self.context.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.port = self.router.bind_to_random_port("tcp://127.0.0.1")

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.router.close(linger=0)
        self.context.term()


STEADY_CONF = (
    SUPERVISORD_HEAD
    + """\
[program:steady]
command={python} -c "import time; time.sleep(120)"
startsecs=0
stopasgroup=true
killasgroup=true
"""
)


def test_task_port_that_does_not_answer_makes_health_fail_though_state_is_published(short_base):
    """Regression (issue 12.1): a broker wedged on one peer still published its queue state
    from another thread, and health said healthy while no worker was served."""
    conf = short_base / "supervisord.conf"
    conf.write_text(STEADY_CONF.format(base=short_base, python=sys.executable))
    process = subprocess.Popen(
        [sys.executable, "-m", "supervisor.supervisord", "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        sock = short_base / "tmp" / "supervisor.sock"
        wait_until(lambda: _programs_or_none(sock) == 1, 30, "supervisord to run steady")
        with (
            StatePublisher(b'{"queue length": 0, "products waiting": []}') as state,
            SilentTaskPort() as task,
        ):
            started = time.monotonic()
            result = run_health(short_base, state.port, timeout=1, task_port=task.port)
            took = time.monotonic() - started
    finally:
        terminate_then_kill(process, timeout=20)
    assert result.returncode == 1, result.stdout
    assert result.stderr.strip() == (
        f"unhealthy: task_broker does not answer a just-testing request on port {task.port} "
        "within 1 s (workers get no tasks)"
    )
    assert took < 15


def _programs_or_none(sock: Path):
    try:
        return health.check_programs(sock, timeout=2)
    except health.Unhealthy:
        return None


def test_task_port_check_is_a_peek_answered_within_the_bound():
    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    requests = []

    def answer():
        if router.poll(5000):
            identity, empty, body = router.recv_multipart()
            requests.append(json.loads(body))
            router.send_multipart([identity, empty, b""])

    thread = threading.Thread(target=answer)
    thread.start()
    try:
        seconds = health.check_task_port(port, timeout=5)
    finally:
        thread.join(10)
        router.close(linger=0)
        context.term()
    assert requests == [{"desired products": ["tir"], "just testing": True}]
    assert 0 <= seconds < 5
    with SilentTaskPort() as task, pytest.raises(health.Unhealthy, match="does not answer"):
        health.check_task_port(task.port, timeout=0.5)


BEATING = (
    "import sys, threading, time; from avoviirscollector import liveness; "
    "liveness.start(sys.argv[1], 'unused'); {extra}time.sleep(120)"
)
RESTARTS_CONF = (
    SUPERVISORD_HEAD
    + """\
[program:steady]
command={python} -c "{steady}" {base}
startsecs=0
stopasgroup=true
killasgroup=true
[program:looping]
command={python} -c "import time; time.sleep(1.5); raise SystemExit(1)"
startsecs=1
startretries=100
autorestart=true
[program:dead_thread]
command={python} -c "{dead_thread}" {base}
startsecs=0
stopasgroup=true
killasgroup=true
"""
)


@pytest.fixture
def restarts_supervisord(short_base):
    conf = short_base / "supervisord.conf"
    conf.write_text(
        RESTARTS_CONF.format(
            base=short_base,
            python=sys.executable,
            steady=BEATING.format(extra=""),
            dead_thread=BEATING.format(
                extra="threading.Thread(target=lambda: 1 / 0, name='worker').start(); "
            ),
        )
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "supervisor.supervisord", "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    yield short_base
    terminate_then_kill(process, timeout=20)


def problem_of(check) -> str | None:
    try:
        check()
    except health.Unhealthy as problem:
        return str(problem)
    return None


def test_issue_11_a_program_that_keeps_restarting_is_unhealthy_even_when_it_reads_running(
    restarts_supervisord,
):
    sock = restarts_supervisord / "tmp" / "supervisor.sock"
    wait_until(sock.exists, 30, "supervisord to listen")
    problem = wait_until(
        lambda: problem_of(lambda: health.check_restarts(sock, timeout=2)),
        40,
        "the crash loop to be seen",
    )
    assert problem == "restarting: looping exited 2 times in the last 10 min"
    # Each life lasts longer than startsecs: supervisord calls it RUNNING in between.
    states = wait_until(
        lambda: (
            {p["name"]: p["statename"] for p in supervisor_client.processes(sock)}
            if any(
                p["name"] == "looping" and p["statename"] == "RUNNING"
                for p in supervisor_client.processes(sock)
            )
            else None
        ),
        20,
        "looping to read RUNNING",
    )
    assert states["looping"] == "RUNNING"


def test_issue_11_a_daemon_whose_thread_died_is_unhealthy_and_a_beating_one_is_not(
    restarts_supervisord,
):
    sock = restarts_supervisord / "tmp" / "supervisor.sock"
    wait_until(sock.exists, 30, "supervisord to listen")

    def heartbeats():
        processes = [p for p in supervisor_client.processes(sock) if p["name"] != "looping"]
        return problem_of(lambda: health.check_heartbeats(restarts_supervisord, processes))

    problem = wait_until(heartbeats, 30, "the dead thread to be reported")
    assert problem == (
        "not alive: dead_thread: thread worker died: ZeroDivisionError: division by zero"
    )
    processes = [p for p in supervisor_client.processes(sock) if p["name"] == "steady"]
    assert processes[0]["statename"] == "RUNNING"
    assert health.check_heartbeats(restarts_supervisord, processes) == 1
