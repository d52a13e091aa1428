"""Ask the task broker for work exactly as the viirsprocessor workers do.

``viirscollector task --product tir`` lets an operator see what a worker would get
(``--just-testing`` peeks without taking it), from this machine or another. The
:class:`TaskClient` is also the demo's worker. It is a lazy-pirate client (ZeroMQ
guide, chapter 4): a REQ socket whose request got no answer within the timeout is
stuck in its send state, so it is closed with linger 0 and a new one is opened
before any retry. A broker that does not answer costs a bounded wait, never a hang.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Iterable

import zmq

from avoviirscollector.bus import (
    Message,  # through bus: posttroll must see our message version first
)
from avoviirscollector.netutil import port_number

DEFAULT_TIMEOUT = 5.0
#: The broker answers a request it cannot use with a reply starting with this.
ERROR_PREFIX = b"error:"


class BrokerError(RuntimeError):
    """The broker refused the request (its reply started with ``error:``)."""


class BrokerTimeout(RuntimeError):
    """The broker did not answer in time, after every retry."""


def build_request(
    products: Iterable[str], just_testing: bool = False, lease: float | None = None
) -> dict:
    """The workers' request; ``lease`` is the broker's optional extension."""
    request: dict = {"desired products": list(products), "just testing": bool(just_testing)}
    if lease is not None:
        request["lease"] = lease
    return request


def parse_reply(raw: bytes) -> Message | None:
    """A task message, None for "nothing waiting" (empty reply); BrokerError for ``error:``."""
    if not raw:
        return None
    if raw.startswith(ERROR_PREFIX):
        raise BrokerError(raw.decode("utf-8", "replace").strip())
    try:
        return Message.decode(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:  # posttroll's MessageError is a ValueError
        raise BrokerError(f"undecodable reply ({len(raw)} bytes): {error}") from None


def _jsonable(value):
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


def task_json(message: Message) -> str:
    """The task's data as indented JSON (datetimes in ISO 8601), for people and for jq."""
    return json.dumps(message.data, indent=2, sort_keys=True, default=_jsonable)


class TaskClient:
    """A worker's connection to the broker's REP port, with lazy-pirate recovery.

    ``retries`` is how many times a request that got no answer is sent again on a
    fresh socket. Only peeks and leased requests are safe to repeat blindly: a plain
    request the broker did answer, with the reply lost, has taken a task off the
    queue. So the default is 0, and the demo worker retries with a lease.
    """

    def __init__(
        self,
        host: str = "localhost",
        port: int = 19091,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = 0,
    ):
        self.endpoint = f"tcp://{host}:{port}"
        self.timeout = timeout
        self.retries = retries
        self._context = zmq.Context()
        self._socket: zmq.Socket | None = None

    def _open(self) -> zmq.Socket:
        if self._socket is None:
            sock = self._context.socket(zmq.REQ)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(self.endpoint)
            self._socket = sock
        return self._socket

    def _discard(self):
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None

    def send(self, payload: dict) -> bytes:
        """Send one JSON request and return the raw reply; BrokerTimeout if none comes."""
        attempts = self.retries + 1
        for _ in range(attempts):
            sock = self._open()
            sock.send_json(payload)
            if sock.poll(self.timeout * 1000, zmq.POLLIN):
                return sock.recv()
            self._discard()  # a REQ socket without its reply cannot send again
        raise BrokerTimeout(
            f"broker at {self.endpoint} did not answer within {self.timeout:g} s"
            f" ({attempts} attempt{'s' if attempts != 1 else ''})"
        )

    def request(
        self, products: Iterable[str], just_testing: bool = False, lease: float | None = None
    ) -> Message | None:
        """The oldest waiting task of one of ``products``, or None when nothing waits."""
        return parse_reply(self.send(build_request(products, just_testing, lease)))

    def ack(self, task_id: str) -> bytes:
        """Tell the broker a leased task is done, so it does not return to the queue."""
        reply = self.send({"ack": task_id})
        if reply.startswith(ERROR_PREFIX):
            raise BrokerError(reply.decode("utf-8", "replace").strip())
        return reply

    def close(self):
        """Close the socket (linger 0) and the context; nothing waits for the broker."""
        self._discard()
        self._context.term()

    def __enter__(self) -> TaskClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _products(values: list[str]) -> list[str]:
    """``--product tir --product mir`` and ``--product tir,mir`` mean the same."""
    return [p.strip() for value in values for p in value.split(",") if p.strip()]


def parser(task_port: int = 19091) -> argparse.ArgumentParser:
    """Command-line options (ports default to the VIIRS_*_PORT settings)."""
    p = argparse.ArgumentParser(
        prog="viirscollector task",
        description="Ask the task broker once for the oldest task of the given products, "
        "as a worker does, and print its data as JSON.",
    )
    p.add_argument(
        "--product",
        action="append",
        required=True,
        metavar="NAME",
        help="a product the worker makes (tir, vis, btd, mir); repeat or comma-separate",
    )
    p.add_argument(
        "--just-testing",
        action="store_true",
        help="peek: the broker returns the task and keeps it queued",
    )
    p.add_argument(
        "--lease",
        type=float,
        metavar="S",
        help="take the task on a lease of S seconds: it returns to the queue "
        "unless acknowledged (this command never acknowledges)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="S",
        help=f"seconds to wait for the broker's answer (default {DEFAULT_TIMEOUT:g})",
    )
    p.add_argument(
        "--retries",
        type=int,
        default=0,
        metavar="N",
        help="ask again N times on a fresh socket when no answer comes (default 0; "
        "safe with --just-testing or --lease)",
    )
    p.add_argument("--host", default="localhost", help="broker host (default localhost)")
    p.add_argument(
        "--port", type=port_number, default=task_port, help=f"broker's port (default {task_port})"
    )
    return p


def _say_source(task, sdr_dir) -> None:
    """Which collector answered, from where the task's files are (a warning if not ours)."""
    from avoviirscollector import identity

    line = identity.message_source(task.data, sdr_dir)
    if line is not None:
        print(f"task: {line}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """``viirscollector task``: 0 with a task or "none waiting", 1 when the broker fails us."""
    from avoviirscollector.settings import load_or_exit

    settings = load_or_exit()
    args = parser(settings.task_port).parse_args(argv)
    products = _products(args.product)
    if not products:
        print("task: give at least one product name, e.g. --product tir", file=sys.stderr)
        return 2
    client = TaskClient(args.host, args.port, args.timeout, max(args.retries, 0))
    try:
        task = client.request(products, args.just_testing, args.lease)
    except (BrokerError, BrokerTimeout) as error:
        print(f"task: {error}", file=sys.stderr)
        return 1
    except zmq.ZMQError as error:
        print(f"task: cannot ask {client.endpoint}: {error.strerror}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        client.close()
    if task is None:
        print(f"no task waiting for {', '.join(products)} at {client.endpoint}")
        return 0
    kept = "still queued (just testing)" if args.just_testing else "taken off the queue"
    print(f"task {task.subject} from {client.endpoint}, {kept}:", file=sys.stderr)
    _say_source(task, settings.sdr_dir)
    print(task_json(task))
    return 0


if __name__ == "__main__":
    sys.exit(main())
