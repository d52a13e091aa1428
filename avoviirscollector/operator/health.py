"""``viirscollector health``: exit 0 when the collector works, else 1 and one line why.

The container's HEALTHCHECK runs it every half minute, so it is light: no posttroll,
no settings beyond the base directory and the state port, two short checks:

1. supervisord answers on its unix socket (``<base>/tmp/supervisor.sock``, XML-RPC,
   as supervisorctl talks to it) and reports every program RUNNING;
2. the task broker's queue state (JSON, published every second on the state port,
   19191) arrives within :data:`STATE_TIMEOUT` seconds;
3. the task port (19091) answers a worker's ``just testing`` request within
   :data:`TASK_TIMEOUT` seconds: the state port is fed by another thread of the
   broker, so only this proves that workers are served.

A program that supervisord gave up on (FATAL), one restarting in a loop (BACKOFF)
or a broker that stopped publishing makes the container "unhealthy", which
``docker ps`` shows and an orchestrator can act on.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from avoviirscollector import supervisor_client

RPC_TIMEOUT = supervisor_client.TIMEOUT
STATE_TIMEOUT = 5.0
#: Seconds the task port may take to answer a `just testing` request (it takes ms).
TASK_TIMEOUT = 5.0
#: What health asks the task port: a peek, as a worker's `just testing`; nothing is taken.
TASK_PROBE = {"desired products": ["tir"], "just testing": True}


class Unhealthy(Exception):
    """What is wrong, in one line."""


def check_programs(sock: Path, timeout: float = RPC_TIMEOUT) -> int:
    """Every supervisord program RUNNING; return how many. Unhealthy otherwise."""
    try:
        processes = supervisor_client.processes(sock, timeout)
    except supervisor_client.NoSupervisor:
        raise Unhealthy(f"supervisord is not running (no socket {sock})") from None
    except supervisor_client.SupervisorUnavailable as error:
        raise Unhealthy(str(error)) from None
    if not processes:
        raise Unhealthy("supervisord runs no programs")
    down = [f"{p['name']} {p['statename']}" for p in processes if p["statename"] != "RUNNING"]
    if down:
        raise Unhealthy("not running: " + ", ".join(sorted(down)))
    return len(processes)


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


def main(argv: list[str] | None = None) -> int:
    """Run both checks; print one line; exit 0 healthy, 1 not."""
    parser = argparse.ArgumentParser(
        prog="viirscollector health",
        description="Exit 0 when every supervisord program runs and the broker publishes "
        "its queue state and answers workers.",
    )
    parser.add_argument("--timeout", type=float, default=STATE_TIMEOUT, help="seconds per check")
    args = parser.parse_args(argv)
    from avoviirscollector import settings

    config = settings.load_or_exit()
    try:
        programs = check_programs(supervisor_client.socket_of(config.base_dir), args.timeout)
        state = check_queue_state(config.state_port, args.timeout)
        answered = check_task_port(config.task_port, args.timeout)
    except Unhealthy as problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    line = (
        f"healthy: {programs} programs running, queue length {state['queue length']}, "
        f"task port answered in {answered * 1000:.0f} ms"
    )
    print(f"{line}; {feed_state(config.state_dir)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
