"""How our programs find each other on posttroll: one discovery mode for all.

posttroll exchanges nothing, silently, when a nameserver listens for multicast and
publishers register with ``nameservers=localhost`` (or the reverse). The collector
uses the nameserver mode everywhere: ``nameserver --no-multicast`` (supervisord.conf),
publishers register with the nameserver on localhost, and subscribers listen to the
nameserver's address announcements (``addr_listener``) so that a publisher that
starts later, or restarts on a new port, is picked up without restarting anyone.

Messages are version v1.01 with naive UTC datetimes because the workers and
subscribers in the field run posttroll 1.5 (2019), which refuses v1.2. posttroll
reads ``POSTTROLL_MESSAGE_VERSION`` when it is first imported, so this module sets
it before importing posttroll; supervisord.conf sets it for the pytroll scripts.
"""

from __future__ import annotations

import os

MESSAGE_VERSION = "v1.01"
NAMESERVER_HOST = "localhost"
os.environ.setdefault("POSTTROLL_MESSAGE_VERSION", MESSAGE_VERSION)

from posttroll.message import Message  # noqa: E402 - must follow the version setting
from posttroll.publisher import Publish  # noqa: E402
from posttroll.subscriber import Subscribe  # noqa: E402

__all__ = ["Message", "MESSAGE_VERSION", "publish", "subscribe", "message"]


def publish(name: str, port: int = 0) -> Publish:
    """A publisher registered with the local nameserver (use as a context manager)."""
    return Publish(name, port, nameservers=[NAMESERVER_HOST])


def subscribe(topics: str | list[str], services: str | list[str] = "", timeout: float = 2):
    """A subscriber that follows publishers as they come, go and restart.

    ``timeout`` bounds the initial nameserver lookup, so a daemon started before
    its publishers does not wait long; later publishers arrive by announcement.
    """
    return Subscribe(
        services,
        topics,
        addr_listener=True,
        nameserver=NAMESERVER_HOST,
        timeout=timeout,
    )


def message(subject: str, atype: str, data) -> Message:
    """A message in the wire version our clients read."""
    return Message(subject, atype, data, version=MESSAGE_VERSION)
