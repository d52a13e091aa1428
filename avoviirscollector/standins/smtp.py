"""A real SMTP server on loopback that keeps what it receives.

Tests, the demo and the system tests point MAILHOST at it to see exactly which
error mails the collector sends, without a mail relay.
"""

from __future__ import annotations

import email
import email.policy
import logging
import threading
from email.message import EmailMessage

from aiosmtpd.controller import Controller

from avoviirscollector.netutil import free_port

# aiosmtpd logs every connection at INFO from its own thread. Those lines are the stand-in's
# chatter, not the collector's: left on, they land in whatever stderr a test captured (or in
# a stream pytest has closed meanwhile, as "--- Logging error ---" blocks in another test).
logging.getLogger("mail.log").setLevel(logging.WARNING)


class _Inbox:
    def __init__(self):
        self.messages: list[EmailMessage] = []
        self.arrived = threading.Condition()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.arrived:
            self.messages.append(parsed)
            self.arrived.notify_all()
        return "250 OK"


class SmtpStandin:
    """Start with :meth:`start`, read :attr:`messages`, wait with :meth:`wait_for`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self._inbox = _Inbox()
        self.host, self.port = host, port or free_port(host)
        self._controller = Controller(self._inbox, hostname=host, port=self.port)

    def start(self) -> SmtpStandin:
        """Start serving (``port`` 0 picked a free one)."""
        self._controller.start()
        return self

    def stop(self):
        """Stop serving."""
        self._controller.stop()

    @property
    def address(self) -> str:
        """``host:port``, the form MAILHOST takes."""
        return f"{self.host}:{self.port}"

    @property
    def messages(self) -> list[EmailMessage]:
        """Every mail received so far."""
        with self._inbox.arrived:
            return list(self._inbox.messages)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        """Block until ``count`` mails arrived (or the timeout passes); return them all."""
        with self._inbox.arrived:
            self._inbox.arrived.wait_for(lambda: len(self._inbox.messages) >= count, timeout)
            return list(self._inbox.messages)
