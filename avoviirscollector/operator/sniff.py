"""Watch the collector's public ports the way its clients see them.

``viirscollector sniff sdr`` subscribes to the message port (29092) with the prefix
the file subscribers use and prints one line per file: its name, platform, orbit,
and how long after the granule's start it arrived (the latency duty scientists
feel). ``viirscollector sniff queue`` prints one line per queue state on 19191;
``--length`` prints the queue length once and exits, for scripts. Plain ZMQ SUB
sockets, like the clients in the field, so what you see is what they get.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from collections.abc import Iterator

import zmq

from avoviirscollector import identity
from avoviirscollector.bus import (
    Message,  # through bus: posttroll must see our message version first
)
from avoviirscollector.netutil import port_number
from avoviirscollector.operator import display

SDR_PREFIX = "pytroll://AVO/viirs/sdr"
#: 19191 publishes every second; --length waits a few of those by default.
LENGTH_TIMEOUT = 5.0


class Silence(RuntimeError):
    """Nothing arrived within the time the operator allowed."""


# ----------------------------------------------------------------- pure formatting


def sdr_line(message: Message, received: dt.datetime) -> str:
    """One line for a file message: when, name, platform, orbit, latency after start."""
    data = message.data if isinstance(message.data, dict) else {}
    name = data.get("uid") or str(data.get("uri", "?")).rsplit("/", 1)[-1]
    platform = data.get("platform_name", "?")
    orbit = data.get("orbit_number", "?")
    start = data.get("start_time")
    if isinstance(start, dt.datetime):
        latency = display.duration(
            (display.utc_naive(received) - display.utc_naive(start)).total_seconds()
        )
    else:
        latency = "?"
    return f"{display.stamp(received)}  {name}  {platform}  orbit {orbit}  {latency} after start"


def parse_queue_state(frames: list[bytes]) -> dict:
    """The JSON object of one 19191 update (last frame; a leading topic word is tolerated)."""
    raw = frames[-1].decode("utf-8", "replace").strip()
    for text in (raw, raw.partition(" ")[2]):
        try:
            state = json.loads(text)
        except ValueError:
            continue
        if isinstance(state, dict):
            return state
    raise ValueError(f"not a JSON object: {raw[:80]!r}")


def _extra(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{key} {_extra(item)}" for key, item in value.items()) or "none"
    if isinstance(value, list):
        return ", ".join(map(_extra, value)) or "none"
    if isinstance(value, float):
        return f"{value:.1f}"
    if value is None:
        return "-"
    return str(value)


#: State keys shown elsewhere (the identity: :func:`identity_of`) or in the first words.
_SHOWN = ("queue length", "products waiting", "collector")


def _figure(key: str, value) -> str:
    """A value with its unit: an age (seconds on the wire) is shown as ``29.8 s``, counts of
    tasks are plain numbers (their key says what they count)."""
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if is_number and key.endswith((" age", " seconds")):
        return display.duration(value)
    return _extra(value)


def queue_summary(state: dict) -> str:
    """``3 tasks, waiting: mir, tir`` plus any extra keys the broker adds, with units."""
    length = state.get("queue length", "?")
    products = state.get("products waiting") or []
    text = f"{length} task{'' if length == 1 else 's'}, waiting: {', '.join(products) or 'none'}"
    extras = [f"{key}: {_figure(key, value)}" for key, value in state.items() if key not in _SHOWN]
    return "; ".join([text, *extras])


def queue_line(state: dict, received: dt.datetime) -> str:
    """One line per 19191 update."""
    return f"{display.stamp(received)}  queue {queue_summary(state)}"


# ----------------------------------------------------------------- sockets


def receive(
    endpoint: str, prefix: str, timeout: float | None, count: int | None
) -> Iterator[list[bytes]]:
    """Yield multipart messages from a SUB socket until ``count`` or ``timeout`` seconds.

    Raises Silence when the time is up and nothing at all arrived.
    """
    context = zmq.Context()
    sock = context.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt_string(zmq.SUBSCRIBE, prefix)
    sock.connect(endpoint)
    deadline = None if timeout is None else time.monotonic() + timeout
    seen = 0
    try:
        while count is None or seen < count:
            wait = 1000 if deadline is None else (deadline - time.monotonic()) * 1000
            if wait <= 0:
                break
            if sock.poll(min(wait, 1000), zmq.POLLIN):
                seen += 1
                yield sock.recv_multipart()
        if seen == 0:
            raise Silence(f"nothing from {endpoint} within {timeout:g} s")
    finally:
        sock.close(linger=0)
        context.term()


def sniff_sdr(endpoint: str, timeout: float | None, count: int | None, sdr_dir=None) -> None:
    """Print a line per file message (and, once, on stderr, where their files are)."""
    told = sdr_dir is None
    for frames in receive(endpoint, SDR_PREFIX, timeout, count):
        received = display.now()
        try:
            message = Message.decode(frames[-1].decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            print(
                f"{display.stamp(received)}  undecodable message ({len(frames[-1])} bytes): {error}"
            )
            continue
        if not told:
            told = _tell(identity.message_source(message.data, sdr_dir))
        print(sdr_line(message, received), flush=True)


def _tell(line: str | None) -> bool:
    """Say on stderr which collector answered; True once said."""
    if line is not None:
        print(f"sniff: {line}", file=sys.stderr, flush=True)
    return line is not None


def sniff_queue(
    endpoint: str, timeout: float | None, count: int | None, length: bool, base_dir=None
) -> None:
    """Print a line per queue state, or only the length of the first one; say once, on
    stderr, which collector publishes it."""
    told = base_dir is None
    for frames in receive(endpoint, "", timeout, 1 if length else count):
        received = display.now()
        try:
            state = parse_queue_state(frames)
        except ValueError as error:
            print(f"{display.stamp(received)}  undecodable queue state: {error}", flush=True)
            continue
        if not told:  # with --length (scripts) only a warning
            quiet = length and not identity.foreign(state.get(identity.KEY), base_dir)
            told = quiet or _tell(identity.answered_by(state.get(identity.KEY), base_dir))
        print(state.get("queue length", "?") if length else queue_line(state, received), flush=True)


# ----------------------------------------------------------------- command line


def parser(message_port: int = 29092, state_port: int = 19191) -> argparse.ArgumentParser:
    """``sniff sdr`` and ``sniff queue`` (ports default to the VIIRS_*_PORT settings)."""
    p = argparse.ArgumentParser(
        prog="viirscollector sniff",
        usage="viirscollector sniff {sdr | queue} [options]",
        description=f"Watch the collector's ports: sdr = one line per file message on "
        f"{message_port}, queue = one line per queue state on {state_port}.",
    )
    sub = p.add_subparsers(dest="what", required=True, metavar="sdr | queue")
    sdr = sub.add_parser("sdr", help=f"one line per file message on {message_port}")
    queue = sub.add_parser("queue", help=f"one line per queue state on {state_port}")
    queue.add_argument("--length", action="store_true", help="print the queue length once, exit")
    for command, port in ((sdr, message_port), (queue, state_port)):
        command.add_argument("--host", default="localhost", help="collector host (localhost)")
        command.add_argument(
            "--port", type=port_number, default=port, help=f"port (default {port})"
        )
        also = f"; {LENGTH_TIMEOUT:g} with --length" if command is queue else ""
        command.add_argument(
            "--timeout", type=float, metavar="S",
            help=f"stop after S seconds (default: until Ctrl-C{also})",
        )  # fmt: skip
        command.add_argument("--count", type=int, metavar="N", help="stop after N messages")
    return p


def main(argv: list[str] | None = None) -> int:
    """0 when something arrived (or Ctrl-C), 1 when nothing did within --timeout."""
    from avoviirscollector.settings import load_or_exit

    settings = load_or_exit()
    commands = parser(settings.message_port, settings.state_port)
    if not (sys.argv[2:] if argv is None else argv):
        commands.print_help(sys.stderr)  # what to sniff: sdr | queue, not argparse's "what"
        return 2
    args = commands.parse_args(argv)
    endpoint = f"tcp://{args.host}:{args.port}"
    try:
        if not (args.what == "queue" and args.length):
            print(f"sniff {args.what}: listening to {endpoint}; Ctrl-C stops", file=sys.stderr)
        if args.what == "sdr":
            sniff_sdr(endpoint, args.timeout, args.count, settings.sdr_dir)
        else:
            timeout = args.timeout if args.timeout or not args.length else LENGTH_TIMEOUT
            sniff_queue(endpoint, timeout, args.count, args.length, settings.base_dir)
    except Silence as error:
        hint = "msg_publisher" if args.what == "sdr" else "task_broker"
        print(f"sniff {args.what}: {error}; is {hint} running there?", file=sys.stderr)
        return 1
    except zmq.ZMQError as error:
        print(f"sniff {args.what}: cannot listen to {endpoint}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:  # `sniff sdr | head`: the reader has gone, that is fine
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - no flush error at exit
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
