"""The real collector as a child process, for tests, the demo and benchmarks.

``CollectorProcess`` runs ``viirscollector run`` (hence supervisord with the real
supervisord.conf) on a base directory, with free ports of its own, and talks to
supervisord over its unix socket with XML-RPC, as supervisorctl does::

    with CollectorProcess(base_dir) as collector:      # waits until the pipeline runs
        collector.wait_subscribed()                     # subscribers reached publishers
        print(collector.message_port, collector.program_states())
        old = collector.kill9("trollstalker")
        collector.wait_running(["trollstalker"], not_pids={old})
    # supervisord and every program are stopped, even if the block raised

The ports: ``task_port``, ``state_port``, ``message_port`` (VIIRS_*_PORT) are free
ports picked at start; posttroll's nameserver, address and broadcast ports are
taken from the environment when set (a pytest session sets them, so the test's own
``bus.subscribe`` finds the collector's nameserver), else picked free too. The demo
gives its own ports (``ports=``: production ones when free).

``stop()`` asks supervisord to stop every program side by side (seconds, not the ~9 s
of its one-group-after-the-other shutdown), then stops supervisord, then SIGKILLs
whatever is left of the collector's programs and their children.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from avoviirscollector import supervisor_client
from avoviirscollector.netutil import connected, free_port
from avoviirscollector.supervisor_client import SupervisorUnavailable

#: Every program of supervisord.conf (and its event listener, which supervisord lists too).
PROGRAMS = (
    "nameserver",
    "trollstalker",
    "segment_gatherer-viirs_tir",
    "segment_gatherer-viirs_vis",
    "segment_gatherer-viirs_btd",
    "segment_gatherer-viirs_mir",
    "task_broker",
    "msg_publisher",
    "supercronic",
    "recorder",
    "web",
    "replay_listener",
)
GATHERERS = tuple(p for p in PROGRAMS if p.startswith("segment_gatherer-"))
#: Programs that carry a file from sdr/ to port 29092 and to granule messages.
PIPELINE = ("nameserver", "trollstalker", *GATHERERS, "msg_publisher")
#: publisher program -> programs that subscribe to it (see wait_subscribed).
SUBSCRIPTIONS = {
    "trollstalker": (*GATHERERS, "msg_publisher"),
    **{gatherer: ("msg_publisher",) for gatherer in GATHERERS},
}
#: The collector's own ports, by their VIIRS_* variable.
PORT_VARIABLES = ("VIIRS_TASK_PORT", "VIIRS_STATE_PORT", "VIIRS_MESSAGE_PORT", "VIIRS_WEB_PORT")
#: Where the status page (viirscollector web) listens: ``collector.web_url``.
WEB_PATH = "/"
POSTTROLL_PORT_VARIABLES = (
    "POSTTROLL_NAMESERVER_PORT",
    "POSTTROLL_ADDRESS_PUBLISH_PORT",
    "POSTTROLL_BROADCAST_PORT",
)


class CollectorError(RuntimeError):
    """The collector did not reach the expected state in time."""


class CollectorProcess:
    """``viirscollector run`` on ``base_dir``; stopped with everything it started."""

    def __init__(
        self,
        base_dir: str | os.PathLike,
        env: Mapping[str, str] | None = None,
        config_dir: str | os.PathLike | None = None,
        ports: Mapping[str, int | str] | None = None,
        preexec_fn: Callable[[], None] | None = None,
    ):
        """``ports``: VIIRS_*_PORT -> port to use instead of a free one (the demo's);
        ``preexec_fn``: run in the child before ``viirscollector run`` (a test drops root's
        capabilities there, so the collector meets file permissions as UID 2001 does)."""
        self.preexec_fn = preexec_fn
        self.base_dir = Path(base_dir).absolute()
        chosen = {name: int((ports or {}).get(name) or free_port()) for name in PORT_VARIABLES}
        self.task_port, self.state_port, self.message_port, self.web_port = chosen.values()
        self.env = dict(os.environ if env is None else env)
        for name in POSTTROLL_PORT_VARIABLES:
            self.env.setdefault(name, str(free_port()))
        self.env.update({name: str(port) for name, port in chosen.items()})
        self.env["VIIRS_BASE_DIR"] = str(self.base_dir)
        if config_dir is not None:
            self.env["VIIRS_CONFIG_DIR"] = str(Path(config_dir).absolute())
        self.socket = supervisor_client.socket_of(self.base_dir)
        self.process: subprocess.Popen | None = None
        self._seen_pids: set[int] = set()

    # -- life cycle ---------------------------------------------------------------

    def start(self, programs: Iterable[str] = PIPELINE, timeout: float = 60) -> CollectorProcess:
        """Start supervisord and wait until ``programs`` are RUNNING (PROGRAMS for all).

        Its output goes to <base>/log/run.log; ``stop()`` is called if the wait fails.
        """
        (self.base_dir / "log").mkdir(parents=True, exist_ok=True)
        # What `viirscollector run` and supervisord print (a container's `docker logs`).
        self.output = open(self.base_dir / "log" / "run.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "avoviirscollector.cli", "run"],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self.output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=self.preexec_fn,
        )
        try:
            self.wait_running(programs, timeout=timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 30) -> None:
        """Stop every program side by side, then supervisord; SIGKILL what is left.

        Within ``timeout`` overall (at least 5 s for supervisord itself): the programs
        still get their configured stop signal and stopwaitsecs, as in production.
        """
        if self.process is None:
            return
        deadline = time.monotonic() + timeout
        try:
            self._seen_pids.update(p for p in self._pids().values() if p)
            supervisor_client.stop_all(self.socket, timeout)
        except (SupervisorUnavailable, CollectorError):
            pass  # gone or wedged: SIGTERM, then the SIGKILLs below
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(max(deadline - time.monotonic(), 5))
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        kill_leftovers(self._seen_pids, self.base_dir)
        self.output.close()
        self.process = None

    def __enter__(self) -> CollectorProcess:
        return self.start() if self.process is None else self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # -- supervisord --------------------------------------------------------------

    def rpc(self, timeout: float = 60) -> xmlrpc.client.ServerProxy:
        """supervisord's XML-RPC interface (``.supervisor.stopProcess(name, True)``, ...),
        for tests that drive supervisord; ``timeout`` covers waiting calls."""
        return supervisor_client.proxy(self.socket, timeout)

    def _info(self) -> list[dict]:
        if self.process is not None and self.process.poll() is not None:
            raise CollectorError(
                f"supervisord exited with status {self.process.returncode}; "
                f"see {self.output.name} and {self.base_dir / 'log'}"
            )
        return supervisor_client.processes(self.socket)

    def _pids(self) -> dict[str, int]:
        return {info["name"]: info["pid"] for info in self._info()}

    def program_states(self) -> dict[str, str]:
        """program -> supervisord's state name (RUNNING, BACKOFF, FATAL, ...)."""
        return {info["name"]: info["statename"] for info in self._info()}

    def pid(self, program: str) -> int:
        """The pid of a program (0 when it is not running)."""
        pid = self._pids()[program]
        if pid:
            self._seen_pids.add(pid)
        return pid

    def kill9(self, program: str) -> int:
        """SIGKILL a program, as a crash would; return the pid that was killed."""
        pid = self.pid(program)
        if not pid:
            raise CollectorError(f"{program} is not running")
        os.kill(pid, signal.SIGKILL)
        return pid

    def wait_running(
        self,
        programs: Iterable[str] = PIPELINE,
        timeout: float = 60,
        not_pids: Iterable[int] = (),
    ) -> dict[str, int]:
        """Wait until every one of ``programs`` is RUNNING with a pid not in ``not_pids``."""
        programs, not_pids = list(programs), set(not_pids)
        deadline = time.monotonic() + timeout
        last = "supervisord not answering yet"
        while time.monotonic() < deadline:
            try:
                infos = {info["name"]: info for info in self._info()}
            except SupervisorUnavailable as error:
                last = f"supervisord not answering yet: {error}"
            else:
                fatal = [n for n in programs if infos.get(n, {}).get("statename") == "FATAL"]
                if fatal:  # supervisord gave up on them: waiting longer cannot help
                    raise CollectorError(f"{', '.join(fatal)} FATAL; see {self.base_dir / 'log'}")
                waiting = [
                    f"{name}={infos[name]['statename'] if name in infos else 'unknown'}"
                    for name in programs
                    if name not in infos
                    or infos[name]["statename"] != "RUNNING"
                    or infos[name]["pid"] in not_pids
                ]
                if not waiting:
                    pids = {name: infos[name]["pid"] for name in programs}
                    self._seen_pids.update(pids.values())
                    return pids
                last = "waiting for " + ", ".join(waiting)
            time.sleep(0.1)
        raise CollectorError(
            f"programs not RUNNING after {timeout:g} s: {last}; see {self.base_dir / 'log'}"
        )

    def wait_subscribed(
        self, subscriptions: Mapping[str, Iterable[str]] = SUBSCRIPTIONS, timeout: float = 30
    ) -> None:
        """Wait until each subscriber has a TCP connection to each of its publishers.

        RUNNING says a process started, not that its posttroll subscriber found the
        publishers (that takes the nameserver's announcement, about 2 s). A file
        landing before then would reach nobody; tests and benchmarks wait here.
        """
        deadline = time.monotonic() + timeout
        missing: list[str] = []
        while time.monotonic() < deadline:
            missing = self._missing_subscriptions(subscriptions)
            if not missing:
                time.sleep(0.2)  # the subscription itself follows the connection
                return
            time.sleep(0.1)
        raise CollectorError(f"not subscribed after {timeout} s: {', '.join(missing)}")

    def _missing_subscriptions(self, subscriptions: Mapping[str, Iterable[str]]) -> list[str]:
        pids = self._pids()
        return [
            f"{subscriber}->{publisher}"
            for publisher, subscribers in subscriptions.items()
            for subscriber in subscribers
            if not connected(pids.get(subscriber), pids.get(publisher))
        ]

    # -- paths --------------------------------------------------------------------

    @property
    def web_url(self) -> str:
        """The status page's address (viirscollector web on VIIRS_WEB_PORT)."""
        return f"http://127.0.0.1:{self.web_port}{WEB_PATH}"

    def wait_web(self, timeout: float = 30) -> str:
        """Wait until the status page answers (RUNNING comes before it listens); its URL."""
        import urllib.request

        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.web_url}healthz", timeout=2) as response:
                    if response.status == 200:
                        return self.web_url
            except OSError as error:
                if time.monotonic() >= deadline:
                    raise CollectorError(
                        f"the status page {self.web_url} did not answer in {timeout:g} s "
                        f"({error}); see {self.base_dir / 'log' / 'web.log'}"
                    ) from None
            time.sleep(0.1)

    @property
    def sdr_dir(self) -> Path:
        """Where files must land to be published."""
        return self.base_dir / "sdr"

    def log(self, program: str) -> str:
        """A program's log so far (for assertion messages)."""
        path = self.base_dir / "log" / f"{program}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def kill_leftovers(groups: Iterable[int], base_dir: Path) -> None:
    """SIGKILL every process of the process groups ``groups`` (the programs' pids: each
    runs in a group of its own, with its children) whose VIIRS_BASE_DIR is ``base_dir``.

    The environment check keeps a pid the system reused from being killed; the group
    catches a child (a download, a cron job) that outlived its program.
    """
    groups, marker = set(groups), f"VIIRS_BASE_DIR={base_dir}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if os.getpgid(int(entry.name)) not in groups:
                continue
            if marker not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ProcessLookupError):
            continue  # gone meanwhile, or not ours to read
