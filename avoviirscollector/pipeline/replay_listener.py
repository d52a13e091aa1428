"""replay_listener: after a restart that may have lost messages, the gatherers replay sdr/.

posttroll's PUB/SUB keeps nothing. A granule message a gatherer publishes while the
task broker is down, or before the restarted broker's subscription reaches the
gatherer (ZMQ's "slow joiner"), is gone; so is a file message trollstalker
publishes before the gatherers have connected to its new port. The gatherers can
rebuild what was lost: on SIGUSR1 each replays the granules of sdr/ that arrived
after what the broker recorded it had seen (gatherer.py, last_seen.py), and the
broker hands a granule out only once (task_store.py), so a replay costs log lines,
never a second task (msg_publisher keeps the repeats off 29092).

This supervisord event listener (``[eventlistener:replay_listener]`` in
supervisord.conf) closes the gap with supervisord's own tools. When a program of
:data:`TRIGGERS` is RUNNING again after a restart (a new pid; the
collector's first start is not a restart), and once at the collector's start
(its own start), it waits until the pipeline's
connections are back (every gatherer connected to trollstalker's port, the broker
to every gatherer's port, seen in /proc as ``CollectorProcess.wait_subscribed``
does), then asks supervisord over XML-RPC (``supervisor.signalProcess``, what
``supervisorctl signal USR1`` does) to send SIGUSR1 to the gatherers. Restarts
that come close together give one replay. Links that are not back within
``--timeout`` (or a supervisord that does not answer) do not end it: the gatherers
replay anyway, the links are looked at again every ``--recheck`` seconds, and once
all are back the gatherers replay once more (a broker subscribing late would
otherwise miss what was published before).

Its stdout is supervisord's event protocol (``supervisor.childutils``): it logs on
stderr only.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
import xmlrpc.client
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from supervisor import childutils

from avoviirscollector import logs, supervisor_client
from avoviirscollector import settings as settings_module
from avoviirscollector.netutil import connected

PROGRAM = "replay_listener"
log = logging.getLogger(PROGRAM)

#: A restart of one of these may have lost granule or file messages: every gatherer replays.
TRIGGERS = frozenset({"task_broker", "nameserver", "trollstalker"})
GATHERER_PREFIX = "segment_gatherer-"
BROKER, STALKER = "task_broker", "trollstalker"
#: Seconds to wait for the connections before replaying anyway.
READY_TIMEOUT = 30.0
#: Seconds between looks at the links after a replay that could not wait for them.
RECHECK = 5.0
#: Seconds between a TCP connection and the subscription it carries being in place.
SUBSCRIBE_MARGIN = 0.5


def replay_targets(program: str, gatherers: Iterable[str]) -> set[str]:
    """The gatherers that replay after ``program`` restarted: all of them, or none.

    A restarted gatherer replays by itself a few seconds after its start (gatherer.py);
    asking it again would only publish its recent granules once more.
    """
    return set(gatherers) if program in TRIGGERS else set()


def gatherers_of(process_infos: Iterable[Mapping]) -> list[str]:
    """The gatherer programs among supervisord's getAllProcessInfo entries."""
    return sorted(p["name"] for p in process_infos if p["name"].startswith(GATHERER_PREFIX))


class RestartTracker:
    """Tells a restart (a program RUNNING with a new pid) from a first start."""

    def __init__(self, pids: Mapping[str, int] | None = None):
        self.pids = {name: pid for name, pid in (pids or {}).items() if pid}

    def restarted(self, program: str, pid: int) -> bool:
        """Record ``pid`` for ``program``; True when it had another pid before."""
        previous = self.pids.get(program)
        self.pids[program] = pid
        return previous is not None and previous != pid


def missing_links(
    pids: Mapping[str, int], gatherers: Iterable[str], linked: Callable[[int, int], bool]
) -> list[str]:
    """The pipeline's connections not in place: ``subscriber->publisher`` names.

    ``linked(subscriber_pid, publisher_pid)`` says whether one holds a connection to
    the other's port; a program without a pid counts as not connected.
    """
    wanted = [(g, STALKER) for g in gatherers] + [(BROKER, g) for g in gatherers]
    return [
        f"{sub}->{pub}"
        for sub, pub in wanted
        if not (pids.get(sub) and pids.get(pub) and linked(pids[sub], pids[pub]))
    ]


class Replayer(threading.Thread):
    """Waits for the connections, then signals the gatherers; apart from the event loop.

    A replay that could not wait for every link (``timeout`` passed, or supervisord
    did not answer) is not the end of it: the links are looked at again every
    ``recheck`` seconds, and once they are all back the gatherers replay again, so
    a link that came back late still gets what was published before it.
    """

    def __init__(
        self, env: Mapping[str, str], timeout: float = READY_TIMEOUT, recheck: float = RECHECK
    ):
        super().__init__(name="replayer", daemon=True)
        self.env, self.timeout, self.recheck = env, timeout, recheck
        self.wanted = threading.Condition()
        self.targets: set[str] = set()
        self.causes: list[str] = []
        #: (targets, causes) of a replay made before every link was back, else None.
        self.late: tuple[set[str], list[str]] | None = None

    def request(self, targets: set[str], cause: str) -> None:
        """Ask for a replay of ``targets`` (merged with any request not yet served)."""
        with self.wanted:
            self.targets |= targets
            self.causes.append(cause)
            self.wanted.notify()

    def run(self) -> None:
        """Serve replay requests one after the other, and late replays, forever."""
        while True:
            with self.wanted:
                timeout = None if self.late is None else self.recheck
                self.wanted.wait_for(lambda: self.targets, timeout)
                targets, causes = self.targets, self.causes
                self.targets, self.causes = set(), []
            try:
                if targets:
                    self.serve(targets, causes)
                elif self.late is not None and not self.missing():
                    time.sleep(SUBSCRIBE_MARGIN)
                    self.signal_all(*self.late, note=" (again: every link is back)")
                    self.late = None
            except (OSError, xmlrpc.client.Error) as error:
                self.late = self._merged(targets, causes)
                log.error(
                    "supervisord did not answer (%s); the replay after %s is tried again in %g s",
                    error,
                    ", ".join(self.late[1]),
                    self.recheck,
                )

    def serve(self, targets: set[str], causes: list[str]) -> None:
        """One request (with a late replay's targets): wait for the links, then replay."""
        self.late = targets, causes = self._merged(targets, causes)  # until it is done
        missing = self.wait_for_links()
        if missing:
            log.warning(
                "not connected after %g s: %s; replaying anyway, and again once connected",
                self.timeout,
                ", ".join(missing),
            )
        self.signal_all(targets, causes)
        self.late = (targets, causes) if missing else None

    def _merged(self, targets: set[str], causes: list[str]) -> tuple[set[str], list[str]]:
        """A request's targets with a late replay's; the request's causes, else the late one's."""
        if self.late is None:
            return set(targets), list(causes)
        return self.late[0] | targets, list(causes) or self.late[1]

    def rpc(self):
        """supervisord's XML-RPC interface (a new connection each time), at the socket
        supervisord gives its event listeners, each call bounded in time."""
        url = self.env["SUPERVISOR_SERVER_URL"]
        return supervisor_client.proxy(Path(url.removeprefix("unix://"))).supervisor

    def missing(self) -> list[str]:
        """The pipeline's links not in place right now (see :func:`missing_links`)."""
        infos = self.rpc().getAllProcessInfo()
        pids = {i["name"]: i["pid"] for i in infos if i["statename"] == "RUNNING"}
        return missing_links(pids, gatherers_of(infos), connected)

    def wait_for_links(self) -> list[str]:
        """Wait up to ``timeout`` for every link; the ones still missing then."""
        deadline = time.monotonic() + self.timeout
        while missing := self.missing():
            if time.monotonic() > deadline:
                return missing
            time.sleep(0.2)
        time.sleep(SUBSCRIBE_MARGIN)
        return []

    def signal_all(self, targets: set[str], causes: list[str], note: str = "") -> None:
        """SIGUSR1 to each target, and one line that says why."""
        asked = [name for name in sorted(targets) if self.signal(name)]
        log.info(
            "replayed after %s%s: asked the gatherers of %s to replay what the broker may lack",
            ", ".join(c if c.startswith("the ") else f"the restart of {c}" for c in causes),
            note,
            ", ".join(name.rpartition("_")[2] for name in asked) or "no product",
        )

    def signal(self, name: str) -> bool:
        """SIGUSR1 to one gatherer; False (logged) when it is not running."""
        try:
            self.rpc().signalProcess(name, "USR1")
        except xmlrpc.client.Fault as fault:
            log.warning("could not signal %s (%s); it replays at its own start", name, fault)
            return False
        return True


class Listener:
    """What to do with each event: restarts of the right programs become replays."""

    def __init__(self, replayer: Replayer, tracker: RestartTracker, gatherers: list[str]):
        self.replayer, self.tracker, self.gatherers = replayer, tracker, gatherers

    def handle(self, event: str, payload: str) -> None:
        """One supervisord event (we subscribe to PROCESS_STATE_RUNNING only)."""
        if event != "PROCESS_STATE_RUNNING":
            return
        headers = childutils.get_headers(payload.split("\n", 1)[0])
        program, pid = headers.get("processname", ""), int(headers.get("pid", 0))
        if not self.tracker.restarted(program, pid):
            return
        targets = replay_targets(program, self.gatherers)
        if targets:
            log.info(
                "%s restarted (pid %d): the gatherers replay once it is connected", program, pid
            )
            self.replayer.request(targets, program)


def serve(listener: Listener, stdin=sys.stdin, stdout=sys.stdout) -> int:
    """supervisord's event protocol until stdin closes (supervisord is stopping)."""
    while True:
        childutils.listener.ready(stdout)
        line = stdin.readline()
        if not line:
            return 0
        headers = childutils.get_headers(line)
        payload = stdin.read(int(headers["len"]))
        try:
            listener.handle(headers.get("eventname", ""), payload)
        except Exception:  # an event we cannot read must not stop the listener
            log.exception("could not handle event %s", headers.get("eventname"))
        finally:
            childutils.listener.ok(stdout)  # a FAIL would make supervisord resend it forever


def main(argv: list[str] | None = None) -> int:
    """Serve supervisord's events until stdin closes (supervisord stops us)."""
    parser = argparse.ArgumentParser(
        prog="viirscollector replay-listener",
        description="supervisord event listener: the gatherers replay sdr/ after a restart.",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=READY_TIMEOUT,
        help="seconds to wait for the connections before replaying anyway (default %(default)s)",
    )
    parser.add_argument(
        "--recheck",
        type=float,
        default=RECHECK,
        help="seconds between looks at the connections after replaying anyway; the "
        "gatherers replay again once every one is back (default %(default)s)",
    )
    args = parser.parse_args(argv)
    settings = settings_module.load_or_exit()
    logs.setup(PROGRAM, settings, daemon=True)
    if "SUPERVISOR_SERVER_URL" not in os.environ:
        log.error("not started by supervisord (no SUPERVISOR_SERVER_URL); exiting")
        return 2
    replayer = Replayer(os.environ, args.timeout, args.recheck)
    infos = replayer.rpc().getAllProcessInfo()
    tracker = RestartTracker({i["name"]: i["pid"] for i in infos})
    replayer.start()
    log.info(
        "the gatherers replay sdr/ after a restart of %s, and once the collector's start "
        "is connected",
        ", ".join(sorted(TRIGGERS)),
    )
    # At the collector's start the gatherers' own replay (3 s after each starts) may
    # reach a broker not yet subscribed to them; one more, once every link is up.
    replayer.request(set(gatherers_of(infos)), "the collector's start")
    return serve(Listener(replayer, tracker, gatherers_of(infos)))
