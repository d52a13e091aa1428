"""``viirscollector worker``: the reference worker, a quick-look PNG per task, made with satpy.

It is what a viirsprocessor worker does, in the fewest lines that are still right:

1. ask the broker on port 19091 for a task, as the field's workers do (a REQ socket,
   ``{"desired products": [...]}``, :class:`~avoviirscollector.broker.task_client.TaskClient`),
   with a lease by default, so a worker that dies mid-task loses nothing: its task goes
   back to the head of the queue when the lease runs out (``--lease 0``: no lease, as
   2019 workers ask);
2. load **the task's own files** (its ``dataset`` URIs) with satpy's ``viirs_sdr`` reader,
   never a directory search (README, "Writing a worker", says what a search gets wrong);
3. write the product's quick-look with satpy's ``simple_image`` writer, and beside it a
   JSON record of what it was made from (files, bands and shapes, satellite and times as
   satpy read them from the files, durations);
4. acknowledge the task. A task that fails is not acknowledged, so its lease returns it
   to the queue; after ``MAX_ATTEMPTS`` failures of one task this worker acknowledges it
   and logs that it gave up, so one bad task cannot occupy it forever.

satpy is the ``worker`` extra; without it the worker says how to install it and exits 2.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections import Counter
from pathlib import Path

import zmq

from avoviirscollector.broker.task_client import BrokerError, BrokerTimeout, TaskClient
from avoviirscollector.netutil import port_number
from avoviirscollector.worker.quicklook_rules import PRODUCTS, TaskError, product_of, task_files

#: Seconds a task is leased for: a real granule takes satpy tens of seconds.
DEFAULT_LEASE = 600.0
#: Seconds between two requests while no task waits (the field's workers poll too).
DEFAULT_IDLE = 1.0
#: Failures of one task before this worker acknowledges it and moves on.
MAX_ATTEMPTS = 2
DEFAULT_OUTPUT = Path("quicklooks")

log = logging.getLogger("worker")


class ReferenceWorker:
    """Takes tasks of ``products`` from the broker and turns each into a PNG in ``output_dir``."""

    def __init__(
        self,
        client: TaskClient,
        products: list[str],
        output_dir: Path,
        *,
        lease: float | None = DEFAULT_LEASE,
        sdr_dir: str | None = None,
    ):
        self.client, self.products, self.output_dir = client, list(products), output_dir
        self.lease, self.sdr_dir = lease, sdr_dir
        self.made: list = []  # Quicklook records, in the order made
        self.failed: Counter = Counter()  # task key -> failures
        self.stop_event = threading.Event()

    def run(self, idle: float = DEFAULT_IDLE, max_tasks: int | None = None) -> int:
        """Work until stopped (or ``max_tasks`` tasks were taken); the number of images."""
        from avoviirscollector.worker.quicklook import require_satpy

        satpy = require_satpy()  # before the first task: a missing extra takes no task
        log.info(
            "reference worker asking %s for %s (lease %s), images into %s; satpy %s",
            self.client.endpoint, ", ".join(self.products),
            f"{self.lease:g} s" if self.lease else "none", self.output_dir, satpy.__version__,
        )  # fmt: skip
        taken = 0
        while not self.stop_event.is_set() and (max_tasks is None or taken < max_tasks):
            task = self._request()
            if task is None:
                self.stop_event.wait(idle)
                continue
            taken += 1
            self.handle(task)
        return len(self.made)

    def _request(self):
        try:
            return self.client.request(self.products, lease=self.lease or None)
        except BrokerTimeout as error:
            log.warning("%s; asking again", error)
        except BrokerError as error:
            log.error("the broker refused our request: %s", error)
        return None

    def handle(self, task) -> bool:
        """Make the task's image; ack it when done (or when giving up). True when made."""
        from avoviirscollector.worker.quicklook import make

        data = task.data if isinstance(task.data, dict) else {}
        key = (task.subject, data.get("platform_name"), data.get("orbit_number"))
        info = {"subject": task.subject, "task_id": data.get("task_id"), "orbit": key[2]}
        try:
            product = product_of(task.subject)
            files = task_files(data, self.sdr_dir)
            log.info(
                "task %s (%s orbit %s): loading its %d files with satpy: %s",
                info["task_id"] or task.subject, key[1], key[2], len(files), _files_of(files),
            )  # fmt: skip
            log.debug("task %s files: %s", info["task_id"] or task.subject, ", ".join(files))
            made = make(product, files, self.output_dir, info)
        except TaskError as error:
            return self._failed(task, key, f"{error}", permanent=True)
        except Exception as error:  # satpy's many errors: the task is what failed, not us
            log.debug("satpy's traceback", exc_info=True)
            return self._failed(task, key, f"{type(error).__name__}: {error}", permanent=False)
        self.made.append(made)
        log.info("task %s done: %s", info["task_id"] or task.subject, made.describe())
        self._ack(data)
        return True

    def _failed(self, task, key, reason: str, permanent: bool) -> bool:
        self.failed[key] += 1
        give_up = permanent or self.failed[key] >= MAX_ATTEMPTS or not self.lease
        if give_up:
            log.error("task %s %s orbit %s: no image (%s); dropped", task.subject, key[1], key[2],
                      reason)  # fmt: skip
            self._ack(task.data if isinstance(task.data, dict) else {})
        else:
            log.error(
                "task %s %s orbit %s: no image (%s); not acknowledged, it returns to the "
                "queue when its lease ends", task.subject, key[1], key[2], reason,
            )  # fmt: skip
        return False

    def _ack(self, data: dict) -> None:
        task_id = data.get("task_id")
        if not task_id:
            return  # not leased: taking it was all
        try:
            self.client.ack(task_id)
        except (BrokerError, BrokerTimeout) as error:
            log.warning("ack of task %s failed (%s): it may be handed out again", task_id, error)


def _files_of(files: list[str]) -> str:
    """``3 granules of GITCO, SVI05``: what a task's files are, in a few words."""
    from avoviirscollector.filenames import FilenameError, parse

    try:
        names = [parse(path) for path in files]
    except FilenameError:
        return ", ".join(Path(path).name for path in files)
    granules = len({name.granule for name in names})
    segments = ", ".join(sorted({name.segment for name in names}))
    return f"{granules} granule{'s' if granules != 1 else ''} of {segments}"


def _products(values: list[str] | None) -> list[str]:
    chosen = [p.strip() for v in values or [] for p in v.split(",") if p.strip()]
    return chosen or list(PRODUCTS)


def parser(task_port: int = 19091) -> argparse.ArgumentParser:
    """Command-line options (the port defaults to VIIRS_TASK_PORT)."""
    p = argparse.ArgumentParser(
        prog="viirscollector worker",
        description="The reference worker: take tasks from the broker as the viirsprocessor "
        "workers do, load each task's files with satpy and write a quick-look PNG per task "
        "(needs the worker extra: pip install 'avoviirscollector[worker]').",
    )
    p.add_argument(
        "--product", action="append", metavar="NAME",
        help=f"a product to make ({', '.join(PRODUCTS)}); repeat or comma-separate "
        "(default: all)",
    )  # fmt: skip
    p.add_argument(
        "--output-dir", type=Path, default=DEFAULT_OUTPUT,
        help=f"where the PNGs and their JSON records go (default ./{DEFAULT_OUTPUT})",
    )  # fmt: skip
    p.add_argument(
        "--lease", type=float, default=DEFAULT_LEASE, metavar="S",
        help=f"take tasks on a lease of S seconds and acknowledge each when its image is "
        f"written (default {DEFAULT_LEASE:g}; 0: no lease, as 2019 workers ask)",
    )  # fmt: skip
    p.add_argument(
        "--sdr-dir", metavar="DIR",
        help="read the task's files from DIR (by name) instead of their URIs, where the "
        "collector's sdr/ is mounted elsewhere",
    )  # fmt: skip
    p.add_argument("--max-tasks", type=int, metavar="N", help="stop after N tasks")
    p.add_argument(
        "--idle", type=float, default=DEFAULT_IDLE, metavar="S",
        help=f"seconds between requests while nothing waits (default {DEFAULT_IDLE:g})",
    )  # fmt: skip
    p.add_argument("--host", default="localhost", help="broker host (default localhost)")
    p.add_argument(
        "--port", type=port_number, default=task_port, help=f"broker's port (default {task_port})"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """0 when stopped (SIGTERM, Ctrl-C, --max-tasks), 2 without satpy or with bad options."""
    from avoviirscollector import logs
    from avoviirscollector.settings import load_or_exit
    from avoviirscollector.worker.quicklook import SatpyMissing

    settings = load_or_exit()
    args = parser(settings.task_port).parse_args(argv)
    products = _products(args.product)
    unknown = sorted(set(products) - set(PRODUCTS))
    if unknown:
        print(f"worker: unknown product {', '.join(unknown)}; "
              f"choose from {', '.join(PRODUCTS)}", file=sys.stderr)  # fmt: skip
        return 2
    logs.setup("worker", settings, daemon=True)
    lease = args.lease if args.lease and args.lease > 0 else None
    client = TaskClient(args.host, args.port, timeout=10.0, retries=2 if lease else 0)
    worker = ReferenceWorker(client, products, args.output_dir, lease=lease, sdr_dir=args.sdr_dir)
    signal.signal(signal.SIGTERM, lambda *_: worker.stop_event.set())
    try:
        made = worker.run(args.idle, args.max_tasks)
    except SatpyMissing as error:
        log.error("%s", error)
        return 2
    except KeyboardInterrupt:
        made = len(worker.made)
    except zmq.ZMQError as error:
        log.error("cannot ask %s: %s", client.endpoint, error.strerror)
        return 1
    finally:
        client.close()
    log.info("reference worker stopping: %d images made, %d tasks failed", made,
             sum(worker.failed.values()))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
