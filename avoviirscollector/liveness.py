"""Each daemon says it is alive: a heartbeat file that ``viirscollector health`` reads.

supervisord sees a process, not its threads. In the container the nameserver stayed
RUNNING for hours after its address receiver thread had died (issue 11): nothing was
announced any more and health said healthy. So every daemon runs a :class:`Heartbeat`:

- a thread that rewrites ``<base>/tmp/alive/<program>.json`` every :data:`INTERVAL`
  seconds with its pid, the time, and the threads that died; a file that stops changing
  means the process hangs (or the heartbeat itself died);
- a :func:`threading.excepthook` that records any thread ending in an uncaught
  exception (and logs it, as Python's default hook would print it);
- optionally, threads the daemon names as essential: one that is no longer alive is
  reported dead even if it ended without an exception.

``<program>`` is supervisord's name of the process (``SUPERVISOR_PROCESS_NAME``, e.g.
``segment_gatherer-viirs_tir``), so health matches the file to the program it checks.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

log = logging.getLogger(__name__)

INTERVAL = 5.0
DIRECTORY = Path("tmp") / "alive"


def path_of(base_dir: Path, program: str) -> Path:
    """Where ``program`` beats."""
    return Path(base_dir) / DIRECTORY / f"{program}.json"


class Heartbeat:
    """The heartbeat of one daemon process (see the module's docstring)."""

    def __init__(
        self,
        base_dir: Path,
        program: str,
        essential: Callable[[], Iterable[threading.Thread]] | None = None,
        interval: float = INTERVAL,
    ):
        self.path = path_of(base_dir, program)
        self.essential = essential or (lambda: ())
        self.interval = interval
        self.dead: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self._previous_hook = threading.excepthook

    def start(self) -> Heartbeat:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        threading.excepthook = self._excepthook
        self.beat()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        threading.excepthook = self._previous_hook

    def _excepthook(self, args: threading.ExceptHookArgs) -> None:
        name = args.thread.name if args.thread is not None else "?"
        self.record_dead(f"thread {name} died: {args.exc_type.__name__}: {args.exc_value}")
        self._previous_hook(args)

    def record_dead(self, what: str) -> None:
        with self._lock:
            if what not in self.dead:
                self.dead.append(what)
                log.error("%s; health reports this process unhealthy", what)
        self.beat()

    def beat(self) -> None:
        """Rewrite the file (atomically): pid, time, dead threads."""
        for thread in self.essential():
            if not thread.is_alive():
                with self._lock:
                    what = f"thread {thread.name} is no longer running"
                    if what not in self.dead:
                        self.dead.append(what)
                        log.error("%s; health reports this process unhealthy", what)
        with self._lock:
            record = {"pid": os.getpid(), "time": time.time(), "dead": list(self.dead)}
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        try:
            temporary.write_text(json.dumps(record))
            os.replace(temporary, self.path)
        except OSError as error:  # a full disk must not stop the daemon; health sees it stale
            log.warning("could not write the heartbeat %s: %s", self.path, error)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()


def start(
    base_dir: Path,
    default_name: str,
    essential: Callable[[], Iterable[threading.Thread]] | None = None,
) -> Heartbeat:
    """Start this process's heartbeat, named as supervisord names the process."""
    program = os.environ.get("SUPERVISOR_PROCESS_NAME") or default_name
    return Heartbeat(base_dir, program, essential).start()


def read(base_dir: Path, program: str) -> dict | None:
    """The last heartbeat of ``program``, or None when there is none (or it is unreadable)."""
    try:
        record = json.loads(path_of(base_dir, program).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None
