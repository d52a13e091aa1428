"""The collector's posttroll nameserver: ``nameserver --no-multicast``, plus re-announcements.

posttroll's nameserver announces a publisher's address to subscribers once, when it
first hears of it. A subscriber that is not connected to the announcements at that
moment (it started a moment later, it restarted, or the nameserver itself restarted
and the subscriber had not reconnected yet) never learns the address and silently
receives nothing from that publisher: with supervisord starting every program at
once, this happened in our start-order test. This nameserver is posttroll's, with
one addition: every ``REANNOUNCE_SECONDS`` it announces again every address it
knows. posttroll subscribers ignore an address they already have, so this costs a
few small messages and lets every subscriber catch up within seconds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import re
import signal
import time

from avoviirscollector import (
    bus,  # first: sets posttroll's message version before posttroll is imported
)

# isort: split
from posttroll.address_receiver import AddressReceiver
from posttroll.ns import NameServer

from avoviirscollector import liveness, logs
from avoviirscollector import settings as settings_module

log = logging.getLogger("nameserver")
#: posttroll's line for a publisher it learns or forgets, with the whole message quoted.
_ADDRESS_LINE = re.compile(r"^(.*publish (?:add|remove)) '(.*)'$", re.S)


class ShortAddressLines(logging.Filter):
    """posttroll logs each publisher it learns or forgets as its whole address message (about
    300 characters); the operator needs which service at which address, in one short line."""

    def filter(self, record: logging.LogRecord) -> bool:
        match = _ADDRESS_LINE.match(record.getMessage())
        if match:
            try:
                data = bus.Message.decode(match.group(2)).data
            except Exception:  # an odd line is logged as posttroll wrote it
                return True
            services = ",".join(data.get("service") or ["?"])
            record.msg, record.args = "%s %s at %s", (match.group(1), services, data.get("URI"))
        return True


#: Seconds between two announcements of every known address.
REANNOUNCE_SECONDS = 5.0


class ReannouncingReceiver(AddressReceiver):
    """posttroll's address receiver that repeats its announcements."""

    def __init__(self, *args, interval: float = REANNOUNCE_SECONDS, **kwargs):
        super().__init__(*args, **kwargs)
        self.interval = interval
        self._last_announcement = time.monotonic()

    def _check_age(self, pub, min_interval=dt.timedelta(0)):
        # Called by the receiver's thread, which owns ``pub``, after every receive.
        super()._check_age(pub, min_interval=min_interval)
        now = time.monotonic()
        if now - self._last_announcement >= self.interval:
            self._last_announcement = now
            self.announce(pub)

    def announce(self, pub) -> int:
        """Announce every known address again; return how many."""
        with self._address_lock:
            known = [(address, dict(metadata)) for address, metadata in self._addresses.items()]
        for address, metadata in known:
            services = metadata.get("service") or ["unknown"]
            data = {"URI": address, "service": services, "status": True}
            # The subject a publisher uses is /address/<its name>, its first service.
            pub.send(bus.message(f"/address/{services[0]}", "info", data).encode())
        return len(known)


def main(argv: list[str] | None = None) -> int:
    """Run the nameserver (no multicast, like every program of ours) until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(
        prog="viirscollector nameserver",
        description="posttroll's nameserver without multicast, re-announcing publishers.",
    )
    parser.parse_args(argv)
    settings = settings_module.load_or_exit()
    logs.setup("nameserver", settings, daemon=True)
    logging.getLogger("posttroll.address_receiver").addFilter(ShortAddressLines())
    liveness.start(settings.base_dir, "nameserver")
    nameserver = NameServer(multicast_enabled=False)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: nameserver.stop())
    receiver = ReannouncingReceiver(multicast_enabled=False).start()
    log.info(
        "nameserver without multicast; known publishers re-announced every %g s",
        REANNOUNCE_SECONDS,
    )
    nameserver.run(address_receiver=receiver)
    return 0
