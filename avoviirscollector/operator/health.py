"""``viirscollector health``: exit 0 when the collector works, else 1 and one line why.

The container's HEALTHCHECK runs it every half minute, so it is light: no posttroll,
no settings beyond the base directory and the state port, short checks one after the
other (:data:`CHECKS`; the first that fails is the line printed):

1. supervisord answers on its unix socket (``<base>/tmp/supervisor.sock``, XML-RPC,
   as supervisorctl talks to it) and reports every program RUNNING;
2. no program keeps restarting: supervisord's log has fewer than two unexpected exits
   of it in the last 10 minutes (a crash loop slower than ``startsecs`` reads RUNNING);
3. every daemon beats: its heartbeat file in ``<base>/tmp/alive/`` is its current
   process's, recent, and names no dead thread (``avoviirscollector.liveness``);
4. the task broker's queue state (JSON, published every second on the state port,
   19191) arrives within :data:`STATE_TIMEOUT` seconds;
5. the task port (19091) answers a worker's ``just testing`` request within
   :data:`TASK_TIMEOUT` seconds: the state port is fed by another thread of the
   broker, so only this proves that workers are served.

The rules of 2 and 3 are in ``health_rules``. A program that supervisord gave up on
(FATAL), one restarting in a loop, a daemon with a dead thread or a broker that stopped
publishing makes the container "unhealthy", which ``docker ps`` shows.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from avoviirscollector import liveness, supervisor_client
from avoviirscollector.operator import health_rules

RPC_TIMEOUT = supervisor_client.TIMEOUT
STATE_TIMEOUT = 5.0
#: Seconds the task port may take to answer a `just testing` request (it takes ms).
TASK_TIMEOUT = 5.0
#: What health asks the task port: a peek, as a worker's `just testing`; nothing is taken.
TASK_PROBE = {"desired products": ["tir"], "just testing": True}


class Unhealthy(Exception):
    """What is wrong, in one line."""


#: How much of supervisord's log the restart check reads (its tail; ~100 bytes a line).
LOG_TAIL_BYTES = 256 * 1024


def _supervisor(sock: Path, method: str, *args, timeout: float):
    try:
        return supervisor_client.call(sock, method, *args, timeout=timeout)
    except supervisor_client.NoSupervisor:
        raise Unhealthy(f"supervisord is not running (no socket {sock})") from None
    except supervisor_client.SupervisorUnavailable as error:
        raise Unhealthy(str(error)) from None


def check_running(processes: list[dict]) -> int:
    """Every program RUNNING; return how many. Unhealthy otherwise."""
    if not processes:
        raise Unhealthy("supervisord runs no programs")
    down = [f"{p['name']} {p['statename']}" for p in processes if p["statename"] != "RUNNING"]
    if down:
        raise Unhealthy("not running: " + ", ".join(sorted(down)))
    return len(processes)


def check_programs(sock: Path, timeout: float = RPC_TIMEOUT) -> int:
    """Every supervisord program RUNNING; return how many. Unhealthy otherwise."""
    return check_running(_supervisor(sock, "supervisor.getAllProcessInfo", timeout=timeout))


def check_restarts(sock: Path, timeout: float = RPC_TIMEOUT, now: float | None = None) -> None:
    """Unhealthy when a program exited unexpectedly again and again lately."""
    tail = _supervisor(sock, "supervisor.readLog", -LOG_TAIL_BYTES, 0, timeout=timeout)
    looping = health_rules.restarting(tail, time.time() if now is None else now)
    if looping:
        raise Unhealthy("restarting: " + ", ".join(looping))


def check_heartbeats(base_dir: Path, processes: list[dict], now: float | None = None) -> int:
    """Every RUNNING daemon's heartbeat is its own, fresh, with no dead thread; return how many."""
    now = time.time() if now is None else now
    problems, beating = [], 0
    for process in processes:
        if process["statename"] != "RUNNING":
            continue
        name = process["name"]
        uptime = process["now"] - process["start"]
        record = liveness.read(base_dir, name)
        problem = health_rules.heartbeat_problem(name, record, process["pid"], uptime, now)
        if problem:
            problems.append(problem)
        elif name not in health_rules.WITHOUT_HEARTBEAT:
            beating += 1
    if problems:
        raise Unhealthy("not alive: " + "; ".join(problems))
    return beating


def check_queue_state(port: int, timeout: float = STATE_TIMEOUT, host: str = "127.0.0.1") -> dict:
    """One queue-state message from the broker; Unhealthy if none arrives in time."""
    import zmq

    context = zmq.Context()
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    try:
        sub.connect(f"tcp://{host}:{port}")
        if not sub.poll(int(timeout * 1000)):
            raise Unhealthy(f"no queue state from task_broker on port {port} within {timeout:g} s")
        frame = sub.recv()
    finally:
        sub.close(linger=0)
        context.term()
    try:
        state = json.loads(frame)
        length = state["queue length"]
    except (ValueError, KeyError, TypeError):
        raise Unhealthy(f"port {port} sends something that is not the queue state") from None
    return {"queue length": length}


def check_task_port(port: int, timeout: float = TASK_TIMEOUT, host: str = "127.0.0.1") -> float:
    """Seconds the broker took to answer a `just testing` request; Unhealthy if it did not
    answer in time, or answered something a worker could not read."""
    import time

    import zmq

    context = zmq.Context()
    req = context.socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    try:
        req.connect(f"tcp://{host}:{port}")
        started = time.monotonic()
        req.send_json(TASK_PROBE)
        if not req.poll(int(timeout * 1000)):
            raise Unhealthy(
                f"task_broker does not answer a just-testing request on port {port} "
                f"within {timeout:g} s (workers get no tasks)"
            )
        reply = req.recv()
        seconds = time.monotonic() - started
    finally:
        req.close(linger=0)
        context.term()
    if reply.startswith(b"error:"):
        raise Unhealthy(
            f"task_broker refused the health request: {reply[:200].decode(errors='replace')}"
        )
    if reply and not reply.startswith(b"pytroll://"):
        raise Unhealthy(f"port {port} answers something that is not a task or an empty reply")
    return seconds


def feed_state(state_dir: Path) -> str:
    """The feed's state for the health line; never a reason to be unhealthy.

    A GINA outage is outside the container: marking it unhealthy would invite an
    orchestrator to restart a collector that is fine (and that would then replay and
    re-list everything) while a restart cannot bring GINA back. ``status`` exits 1 and
    leads with the outage; here it is reported, and health stays about this container.
    """
    from avoviirscollector.operator import feed

    outage = feed.read_outage(state_dir)
    return "GINA answers" if outage is None else feed.describe(outage)


@dataclass
class Context:
    """What the checks share: the settings, their time budget, and what they found."""

    config: object
    timeout: float
    found: dict = field(default_factory=dict)

    @property
    def sock(self) -> Path:
        return supervisor_client.socket_of(self.config.base_dir)


def _programs(context: Context) -> None:
    processes = _supervisor(context.sock, "supervisor.getAllProcessInfo", timeout=context.timeout)
    context.found["processes"] = processes
    context.found["programs"] = check_running(processes)


def _restarts(context: Context) -> None:
    check_restarts(context.sock, context.timeout)


def _heartbeats(context: Context) -> None:
    check_heartbeats(context.config.base_dir, context.found["processes"])


def _queue(context: Context) -> None:
    context.found["queue"] = check_queue_state(context.config.state_port, context.timeout)


def _task_port(context: Context) -> None:
    context.found["answered"] = check_task_port(context.config.task_port, context.timeout)


#: The checks in order; each raises Unhealthy with its one line, or records what it found.
CHECKS: list[Callable[[Context], None]] = [
    _programs,
    _restarts,
    _heartbeats,
    _queue,
    _task_port,
]


def main(argv: list[str] | None = None) -> int:
    """Run every check; print one line; exit 0 healthy, 1 not."""
    parser = argparse.ArgumentParser(
        prog="viirscollector health",
        description="Exit 0 when every supervisord program runs steadily, every daemon beats, "
        "and the broker publishes its queue state and answers workers.",
    )
    parser.add_argument("--timeout", type=float, default=STATE_TIMEOUT, help="seconds per check")
    args = parser.parse_args(argv)
    from avoviirscollector import settings

    context = Context(settings.load_or_exit(), args.timeout)
    try:
        for check in CHECKS:
            check(context)
    except Unhealthy as problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    found = context.found
    line = (
        f"healthy: {found['programs']} programs running, "
        f"queue length {found['queue']['queue length']}, "
        f"task port answered in {found['answered'] * 1000:.0f} ms"
    )
    print(f"{line}; {feed_state(context.config.state_dir)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
