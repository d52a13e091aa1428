"""``viirscollector demo --worker``: the reference worker instead of the demo's own worker.

The demo then runs ``viirscollector worker`` as a process of its own (as it would run
beside a real collector), shows its log lines, and counts what it made from the JSON
record it writes beside each PNG: which product, and which files (so which granules).
That is what :class:`QuicklookWorker` offers the demo in place of
:class:`~avoviirscollector.operator.demo_watch.DemoWorker`: ``covered`` (product,
granule) pairs, ``tasks`` (the tasks it took, by its log lines) and ``error``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from avoviirscollector.filenames import FilenameError, parse
from avoviirscollector.operator.demo_watch import Console, Watcher, short_log_line

#: The demo's worker polls fast: the pass is small and the demo short.
IDLE = 0.2
LEASE = 120.0
#: Seconds the demo waits for the images after the mirror ran, unless --timeout says
#: otherwise: satpy takes seconds a task where the demo's own worker takes none.
TIMEOUT = 120.0
#: What the worker logs for each task it took (reference_worker.ReferenceWorker.handle).
TAKEN = "files with satpy:"


def satpy_available() -> bool:
    """True when the worker extra is installed (checked without importing satpy)."""
    from importlib.util import find_spec

    return find_spec("satpy") is not None


def records(output_dir: Path) -> list[dict]:
    """The JSON records of the images in ``output_dir`` (finished ones only)."""
    found = []
    for path in sorted(output_dir.glob("*.json")) if output_dir.exists() else []:
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue  # being replaced right now: seen at the next look
    return found


def covered_by(record: dict) -> set[tuple[str, tuple]]:
    """(product, granule) pairs an image was made from."""
    keys = set()
    for name in record.get("files", []):
        try:
            keys.add((record.get("product"), parse(name).granule))
        except FilenameError:
            continue
    return keys


class QuicklookWorker(Watcher):
    """``viirscollector worker`` as a child process; its lines go to the console."""

    def __init__(self, console: Console, port: int, output_dir: Path, env: dict[str, str]):
        super().__init__(console, "worker")
        self.port, self.output_dir, self.env = port, output_dir, env
        self.process: subprocess.Popen | None = None
        self.tasks: list[str] = []  # the worker's "loading" line of each task it took
        self.records: list[dict] = []  # the JSON records of the images made
        self.covered: set[tuple[str, tuple]] = set()
        self._lock = threading.Lock()

    def watch(self) -> None:
        argv = [
            *(sys.executable, "-m", "avoviirscollector.cli", "worker", "--port", str(self.port)),
            *("--output-dir", str(self.output_dir), "--idle", str(IDLE), "--lease", str(LEASE)),
        ]
        self.process = subprocess.Popen(
            argv, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, errors="replace",
        )  # fmt: skip
        for line in self.process.stdout:
            if line.strip():
                self.console.say("worker", short_log_line(line))
            if TAKEN in line:
                self.tasks.append(short_log_line(line))
            self.refresh()
        code = self.process.wait()
        if code not in (0, -15) and not self.stop_event.is_set():
            raise RuntimeError(f"the reference worker exited with status {code}")

    def refresh(self) -> None:
        """Read the records written so far."""
        made = records(self.output_dir)
        with self._lock:
            self.records = made
            self.covered = {key for record in made for key in covered_by(record)}

    def images(self) -> list[Path]:
        """The PNGs made, by name."""
        return sorted(self.output_dir.glob("*.png")) if self.output_dir.exists() else []

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (the worker finishes its image first), then SIGKILL if it does not end."""
        self.stop_event.set()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.is_alive():
            self.join(5)
        self.refresh()


def summary_lines(worker: QuicklookWorker, base: Path) -> list[str]:
    """The demo's closing lines about the worker: every PNG, by path relative to the base."""
    images = worker.images()
    lines = [f"the reference worker made {len(images)} quick-look PNGs in {worker.output_dir}:"]
    lines += [f"  {os.path.relpath(path, base)}" for path in images]
    return lines


def check_available() -> None:
    """DemoError (one line, with the install command) when satpy is not installed."""
    if not satpy_available():
        from avoviirscollector.operator.demo import DemoError

        raise DemoError(
            "--worker runs the reference worker, which needs satpy: "
            "pip install 'avoviirscollector[worker]'"
        )


def timeout(given: float, default: float, worker: bool) -> float:
    """The demo's wait: with the reference worker :data:`TIMEOUT`, unless --timeout was given."""
    return TIMEOUT if worker and given == default else given
