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

Every message carries a ``sender``, ``user@host``. posttroll 1.13 looks the user up with
``pwd.getpwuid(os.getuid())``, which raises KeyError for a UID without a passwd entry, as
in the container (compose's ``user: "2001"``): six daemons crash-looped on it and the
nameserver's address receiver thread died of it (issue 11). This module gives posttroll
:func:`sender` instead: the user's name, or the UID's number when it has none.
"""

from __future__ import annotations

import os
import pwd
import socket

MESSAGE_VERSION = "v1.01"
NAMESERVER_HOST = "localhost"
os.environ.setdefault("POSTTROLL_MESSAGE_VERSION", MESSAGE_VERSION)

import posttroll.message  # noqa: E402 - must follow the version setting
from posttroll.message import Message  # noqa: E402
from posttroll.publisher import Publish  # noqa: E402
from posttroll.subscriber import Subscribe  # noqa: E402

__all__ = ["Message", "MESSAGE_VERSION", "publish", "subscribe", "message", "sender"]


def sender() -> str:
    """``user@host`` for a message's sender; ``2001@host`` for a UID without a passwd entry."""
    uid = os.getuid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    return f"{user}@{socket.gethostname()}"


# posttroll.message.Message looks _getsender up at every message: ours from now on, in every
# process that imports this module (every daemon does, before posttroll sends anything).
posttroll.message._getsender = sender


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
