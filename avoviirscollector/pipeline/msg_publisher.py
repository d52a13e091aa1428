"""msg_publisher: every posttroll message of the collector, on one well-known port.

Clients outside the container cannot use our nameserver, so they read port 29092
(``VIIRS_MESSAGE_PORT``): a ZMQ PUB socket carrying each message as one UTF-8
frame. Those clients run posttroll 1.5 (2019), which refuses message version v1.2,
so every message is re-encoded as v1.01 with naive UTC datetimes. posttroll's own
address announcements and heartbeats stay inside.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import signal
import sys
import threading

from avoviirscollector import (
    bus,  # first: sets posttroll's message version before posttroll is imported
)

# isort: split
import zmq

from avoviirscollector import logs
from avoviirscollector import settings as settings_module

log = logging.getLogger("msg_publisher")

#: Seconds between checks of the stop flag while no message arrives.
RECV_TIMEOUT = 1.0


def is_chatter(message: bus.Message) -> bool:
    """posttroll's own traffic: address announcements and heartbeats."""
    return message.type == "beat" or message.subject.startswith(("/address", "/heartbeat"))


def naive_utc(value):
    """Datetimes as naive UTC, recursively: what posttroll 1.5 reads."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value
    if isinstance(value, dict):
        return {key: naive_utc(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [naive_utc(item) for item in value]
    return value


def legacy_encoding(message: bus.Message) -> bytes:
    """The message as posttroll 1.5 and today's posttroll both decode it."""
    copy = bus.Message(
        message.subject,
        message.type,
        naive_utc(message.data),
        version=bus.MESSAGE_VERSION,
    )
    copy.sender = message.sender
    copy.time = naive_utc(message.time)
    return copy.encode().encode("utf-8")


def forward(subscriber, socket: zmq.Socket, stop: threading.Event) -> int:
    """Republish what ``subscriber`` receives until ``stop`` is set; return the count."""
    count = 0
    for message in subscriber.recv(timeout=RECV_TIMEOUT):
        if stop.is_set():
            break
        if message is None or is_chatter(message):
            continue
        try:
            socket.send(legacy_encoding(message))
        except (ValueError, TypeError) as error:
            log.error("could not republish %s: %s; dropped", message.subject, error)
            continue
        count += 1
        log.debug("republished %s %s", message.subject, message.type)
    return count


def main(argv: list[str] | None = None) -> int:
    """Subscribe to everything through the nameserver; publish on the message port."""
    parser = argparse.ArgumentParser(
        prog="msg_publisher",
        description="Republish every posttroll message on tcp://*:$VIIRS_MESSAGE_PORT (v1.01).",
    )
    parser.parse_args(argv)
    settings = settings_module.load_or_exit()
    logs.setup("msg_publisher", settings, daemon=True)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    context = zmq.Context.instance()
    socket = context.socket(zmq.PUB)
    socket.setsockopt(zmq.LINGER, 0)
    try:
        socket.bind(f"tcp://{settings.listen_address}:{settings.message_port}")
    except zmq.ZMQError as error:
        log.error("cannot listen on port %d: %s; exiting", settings.message_port, error)
        socket.close()
        return 1
    log.info(
        "republishing every message on tcp://%s:%d", settings.listen_address, settings.message_port
    )
    try:
        count = 0
        while not stop.is_set():
            try:
                with bus.subscribe("") as subscriber:
                    count += forward(subscriber, socket, stop)
            except TimeoutError as error:  # the nameserver starts after us, or is slow
                log.warning("nameserver on localhost not answering (%s); retrying in 1 s", error)
                stop.wait(1)
        log.info("stopping after %d message(s)", count)
    finally:
        socket.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
