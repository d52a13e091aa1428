"""``viirscollector demo``: the whole collector, working, in one command and under a minute.

For a newcomer without GINA access or Docker. It writes a realistic pass (synthetic
but valid SDR HDF5 files of every band the products need, a Suomi-NPP and a NOAA-20
granule sequence, real file names), serves it with the GINA stand-in, starts the
real stack (``viirscollector run`` with the real supervisord.conf) in a base
directory of its own, runs ``mirror_gina`` against the stand-in and shows live what
happens: downloads, messages on the message port, the queue, and a worker taking
tasks the way real workers do. It ends with a summary and stops every process it
started, on success, on error and on Ctrl-C (or SIGTERM).

Ports: VIIRS_TASK_PORT, VIIRS_STATE_PORT, VIIRS_MESSAGE_PORT when set, else free ones (the
production ones only with ``--production-ports``); the first lines say which. They listen
on 127.0.0.1 only (VIIRS_LISTEN_ADDRESS overrides): no worker on the network can take a
synthetic task from the demo.
"""

from __future__ import annotations

import argparse
import configparser
import datetime as dt
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from avoviirscollector import settings as settings_module
from avoviirscollector import supervisor_client
from avoviirscollector.operator import demo_quicklooks, display
from avoviirscollector.operator.collector_process import PROGRAMS, CollectorError, CollectorProcess
from avoviirscollector.operator.demo_watch import (
    Console,
    DemoWorker,
    DownloadProgress,
    LogFollower,
    QueueWatcher,
    SdrWatcher,
    short_log_line,
)

DEFAULT_BASE = Path("viirs-demo")
#: A file in a base directory the demo made: only such a directory is ever wiped.
MARKER = ".viirs-demo"
#: Seconds for the pipeline to deliver every task once the mirror has run.
DEFAULT_TIMEOUT = 45.0
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0
#: The pass: granules per platform, and file sizes (geolocation is bigger, as at GINA).
GRANULES = 3
#: Platforms and how many minutes ago their granule sequence starts (half an orbit apart).
PLATFORMS = {"j01": 65, "npp": 15}
BAND_BYTES = 80_000
GEO_BYTES = {"GMTCO": 200_000, "GITCO": 300_000}
#: The stand-in's rate per connection (bytes/s). Files are ~1/500 of real sizes; the rate
#: is scaled down with them so that downloads take a few visible seconds, as real ones do.
RATE_PER_CONNECTION = 150_000
#: posttroll's own ports: variable, production default.
POSTTROLL_PORTS = {
    "POSTTROLL_NAMESERVER_PORT": 5557,
    "POSTTROLL_ADDRESS_PUBLISH_PORT": 16543,
    "POSTTROLL_BROADCAST_PORT": 21200,
}
#: The collector's ports: variable, production default, what it is.
COLLECTOR_PORTS = {
    "VIIRS_TASK_PORT": (19091, "tasks (REP)"),
    "VIIRS_STATE_PORT": (19191, "queue state (PUB)"),
    "VIIRS_MESSAGE_PORT": (29092, "messages (PUB)"),
    "VIIRS_WEB_PORT": (19292, "status page (HTTP)"),
}
#: Variables that must not leak into the demo (no mail to the duty scientist from a demo).
_WITHHELD = ("MAILHOST", "LOG_SENDER", "LOG_RECIPIENT", "VIIRS_RETENTION")


class DemoError(Exception):
    """Something that ends the demo, said in one line."""


class Interrupted(Exception):
    """Ctrl-C or SIGTERM."""


# ----------------------------------------------------------------- pure parts


@dataclass
class Outcome:
    """What the demo achieved, for the summary."""

    files: int = 0
    bytes: int = 0
    granules: int = 0
    tasks: int = 0
    messages: int = 0
    distinct: int = 0
    seconds: float = 0.0
    missing: list[str] = field(default_factory=list)
    images: int | None = None  # PNGs of the reference worker (demo --worker)


def summary(outcome: Outcome) -> str:
    """The last lines: a sentence for people, then key=value for scripts and the test."""
    state = "complete" if not outcome.missing else f"INCOMPLETE: {'; '.join(outcome.missing)}"
    made = "" if outcome.images is None else f", {outcome.images} turned into images"
    images = "" if outcome.images is None else f" images={outcome.images}"
    return (
        f"summary: {outcome.files} files ({display.size(outcome.bytes)}) of {outcome.granules} "
        f"granules mirrored, {outcome.messages} file messages ({outcome.distinct} files) on "
        "the message port, "
        f"{outcome.tasks} tasks taken by the worker{made}, in {outcome.seconds:.1f} s; {state}\n"
        f"summary: files={outcome.files} bytes={outcome.bytes} granules={outcome.granules} "
        f"tasks={outcome.tasks}{images} seconds={outcome.seconds:.1f} "
        f"result={'ok' if not outcome.missing else 'incomplete'}"
    )


def product_segments(ini_text: str) -> dict[str, set[str]]:
    """Product -> segments it needs, from etc/segment_gatherer.ini (``viirs_tir`` -> ``tir``)."""
    config = configparser.RawConfigParser()
    config.read_string(ini_text)
    products = {}
    for section in config.sections():
        files = config.get(section, "critical_files", fallback="")
        product = config.get(section, "publish_topic", fallback=section).rsplit("/", 1)[-1]
        products[product] = {item.split(":")[-1] for item in files.split(",") if item.strip()}
    return products


def expected_work(files: list[str], products: dict[str, set[str]]) -> set[tuple[str, tuple]]:
    """(product, granule) pairs a worker should be handed: every product complete per granule."""
    from avoviirscollector.filenames import parse

    segments: dict[tuple, set[str]] = {}
    for name in files:
        sdr = parse(name)
        segments.setdefault(sdr.granule, set()).add(sdr.segment)
    return {
        (product, granule)
        for granule, present in segments.items()
        for product, needed in products.items()
        if needed and needed <= present
    }


def choose_ports(env: dict[str, str], production: bool = False) -> tuple[dict[str, str], list[str]]:
    """Ports set in the environment, else free ones; the production ports only when asked
    (``production``) and free. A demo on 19091 would hand synthetic tasks to a real worker
    whose collector is briefly down."""
    from avoviirscollector.netutil import free_port, port_taken

    chosen, notes = {}, []
    for name, (default, what) in COLLECTOR_PORTS.items():
        if env.get(name):
            port, why = int(env[name]), f" (from {name})"
        elif production and not port_taken(default):
            port, why = default, " (the production port, as asked)"
        else:
            port, why = free_port(), "" if not production else f" ({default} is busy)"
        chosen[name] = str(port)
        notes.append(f"{what} on {port}{why}")
    for name, default in POSTTROLL_PORTS.items():
        if env.get(name):
            chosen[name] = env[name]
        elif production and not port_taken(default):
            chosen[name] = str(default)
        else:
            chosen[name] = str(free_port())
    notes.append(f"posttroll nameserver on {chosen['POSTTROLL_NAMESERVER_PORT']}")
    return chosen, notes


# ----------------------------------------------------------------- the base directory


def prepare_base(base: Path) -> None:
    """An empty base directory of the demo's own; never wipe anything the demo did not make."""
    if base.exists() and any(base.iterdir()):
        if not (base / MARKER).exists():
            raise DemoError(
                f"{base} exists and is not a demo directory: give another --base-dir "
                "(the demo only ever empties directories it made)"
            )
        sock = supervisor_client.socket_of(base)
        try:
            supervisor_client.processes(sock, timeout=2)
        except supervisor_client.SupervisorUnavailable:
            pass
        else:
            raise DemoError(
                f"a collector is still running in {base} (its supervisord answers on {sock}); "
                f"stop it with: supervisorctl -s unix://{sock} shutdown"
            )
        shutil.rmtree(base)
    base.mkdir(parents=True, exist_ok=True)
    (base / MARKER).write_text("made by `viirscollector demo`; it empties this directory\n")


def check_layout(base: Path) -> None:
    """What ``viirscollector run`` checks (writable, socket path length), said in one line
    here instead of in a log the demo would hide."""
    from avoviirscollector.run import RunError, prepare

    env = {"VIIRS_BASE_DIR": str(base), **_config_dir()}
    try:
        prepare(settings_module.load(env))
    except RunError as error:
        raise DemoError(str(error).replace("VIIRS_BASE_DIR", "--base-dir")) from None


def _config_dir() -> dict[str, str]:
    value = os.environ.get("VIIRS_CONFIG_DIR")
    return {"VIIRS_CONFIG_DIR": value} if value else {}


def make_pass(directory: Path, now: dt.datetime | None = None) -> list[Path]:
    """The synthetic pass: GRANULES granules of each platform, every segment, realistic names.

    Suomi-NPP flies half an orbit (~50 min) behind NOAA-20, so their granules never
    start at the same time; the segment_gatherers group files by start time, and
    granules of two platforms starting within seconds would be mixed up.
    """
    from avoviirscollector.standins.synthetic_sdr import ALL_SEGMENTS
    from avoviirscollector.standins.synthetic_sdr import make_pass as write_pass

    now = (now or display.now()).replace(microsecond=0)
    files = []
    for platform, minutes_ago in PLATFORMS.items():
        files += write_pass(
            directory,
            platform,
            now - dt.timedelta(minutes=minutes_ago),
            granules=GRANULES,
            segments=ALL_SEGMENTS,
            size=BAND_BYTES,
            sizes=GEO_BYTES,
        )
    return files


# ----------------------------------------------------------------- processes


class Standin:
    """The GINA stand-in as a process of its own (``viirscollector gina-standin``): its
    connection errors when a client is interrupted go to its log, not onto the demo's screen."""

    def __init__(self, directory: Path, log: Path):
        from avoviirscollector.netutil import free_port

        self.directory, self.log = directory, log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/products.json"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> None:
        """Start it and wait for its "serving" line (it prints it once it listens)."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "avoviirscollector.cli", "gina-standin", "--dir",
                 str(self.directory), "--port", str(self.port), "--rate", str(RATE_PER_CONNECTION)],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, text=True,
                env=dict(os.environ, VIIRS_BASE_DIR=str(self.log.parent.parent)),
            )  # fmt: skip
        ready = select.select([self.process.stdout], [], [], timeout)[0]
        line = self.process.stdout.readline() if ready else ""
        if "GINA stand-in" not in line:
            raise DemoError(f"the GINA stand-in did not start within {timeout:g} s; see {self.log}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not end within seconds."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process.stdout.close()


def run_mirror(env: dict[str, str], console: Console) -> int:
    """``mirror_gina`` once, its log lines shown as they come."""
    process = subprocess.Popen(
        [sys.executable, "-m", "avoviirscollector.cli", "mirror", "--now"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )
    try:
        for line in process.stdout:
            if line.strip():
                console.say("mirror", short_log_line(line))
        return process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        process.stdout.close()


# ----------------------------------------------------------------- the demo


class Demo:
    """One run: everything it starts is recorded so that :meth:`close` stops it."""

    def __init__(
        self,
        base: Path,
        console: Console,
        timeout: float,
        worker: bool = False,
        production: bool = False,
    ):
        self.base, self.console, self.timeout = base, console, timeout
        self.reference_worker = worker  # demo --worker: satpy PNGs by `viirscollector worker`
        self.production = production
        self.ports: dict[str, str] = {}
        self.watchers: list = []
        self.stack: CollectorProcess | None = None
        self.standin = None
        self.scratch: Path | None = None
        self.outcome = Outcome()

    def environment(self, ports: dict[str, str]) -> dict[str, str]:
        """The stack's environment: ours, minus mail and retention, plus base, ports, GINA."""
        env = {k: v for k, v in os.environ.items() if k not in _WITHHELD}
        scripts = os.path.dirname(sys.executable)  # nameserver, task_broker, ... live here
        env["PATH"] = os.pathsep.join([scripts, env.get("PATH", "")])
        env.update(ports)
        env["VIIRS_BASE_DIR"] = str(self.base)
        env["VIIRS_FACILITY"] = "gilmore"  # the stand-in says every file was received there
        env["GINA_BACKFILL_DAYS"] = "1"
        env["GINA_POLL_SLOW_SECONDS"] = "900"  # cron's polls stay out of the demo's own run
        env["GINA_URL"] = self.standin.url
        env["PYTHONUNBUFFERED"] = "1"
        env.setdefault("VIIRS_LISTEN_ADDRESS", "127.0.0.1")
        return env

    def check_watched(self) -> None:
        """Stop early when nobody watches any more (stdout closed: ``demo | head -3``)."""
        if self.console.closed.is_set():
            raise Interrupted("stdout closed")

    def run(self) -> Outcome:
        """The whole demo; :meth:`close` must follow, whatever happens."""
        say = self.console.say
        if self.reference_worker:
            demo_quicklooks.check_available()
        prepare_base(self.base)
        check_layout(self.base)
        settings = settings_module.load_or_exit()
        products = product_segments((settings.config_dir / "etc/segment_gatherer.ini").read_text())
        self.scratch = Path(tempfile.mkdtemp(prefix="viirs-demo-gina-"))
        # The pass appears at the stand-in only when the demo runs mirror_gina: the
        # collector's own cron poll (every few seconds after a start) finds nothing first.
        files = make_pass(self.scratch / "staging")
        total = sum(path.stat().st_size for path in files)
        expected = expected_work([path.name for path in files], products)
        say(
            "demo",
            f"a pass of {len(files)} files ({display.size(total)}): {GRANULES} granules each of "
            f"Suomi-NPP and NOAA-20, every band of {', '.join(sorted(products))}",
        )
        self.start_standin()
        ports, notes = choose_ports(dict(os.environ), self.production)
        env = self.environment(ports)
        self.ports = ports
        say("demo", f"ports on {env['VIIRS_LISTEN_ADDRESS']}: " + "; ".join(notes))
        self.check_watched()
        self.start_stack(env)
        self.check_watched()
        self.watch(env, ports, products, len(files), total)
        began = time.monotonic()
        say("demo", f"running mirror_gina against {self.standin.url}")
        for path in files:
            os.replace(path, self.scratch / path.name)
        status = run_mirror(env, self.console)
        say(
            "demo", f"mirror_gina finished with status {status} in {time.monotonic() - began:.1f} s"
        )
        self.wait_for_tasks(expected)
        return self.collect(expected, {path.name for path in files})

    def start_standin(self) -> None:
        self.standin = Standin(self.scratch, self.base / "log" / "gina-standin.log")
        self.standin.start()
        self.console.say("demo", f"GINA stand-in serving the pass at {self.standin.url}")

    def start_stack(self, env: dict[str, str]) -> None:
        """The collector as tests run it (CollectorProcess), on the ports the demo chose."""
        ports = {name: env[name] for name in COLLECTOR_PORTS}
        self.stack = CollectorProcess(self.base, env=env, ports=ports)
        self.console.say("demo", f"starting the collector: viirscollector run (base {self.base})")
        try:
            self.stack.start(PROGRAMS, timeout=STARTUP_TIMEOUT)
            names = sorted(self.stack.program_states())
        except (CollectorError, supervisor_client.SupervisorUnavailable) as error:
            raise DemoError(f"the collector did not start: {error}") from None
        self.console.say("demo", f"{len(names)} programs RUNNING: {', '.join(names)}")
        self.say_status_page()

    def say_status_page(self) -> None:
        """The status page's address; it is up until the demo stops the collector."""
        try:
            url = self.stack.wait_web(timeout=STARTUP_TIMEOUT)
        except CollectorError as error:
            self.console.say("demo", f"the status page did not come up: {error}")
            return
        self.console.say("demo", f"status page: {url} (open it now: it is up until the demo ends)")

    def watch(self, env, ports, products, files: int, total: int) -> None:
        host = "localhost"
        self.sdr = SdrWatcher(self.console, f"tcp://{host}:{ports['VIIRS_MESSAGE_PORT']}")
        self.queue = QueueWatcher(self.console, f"tcp://{host}:{ports['VIIRS_STATE_PORT']}")
        if self.reference_worker:
            self.worker = demo_quicklooks.QuicklookWorker(
                self.console, int(ports["VIIRS_TASK_PORT"]), self.base / "quicklooks", env
            )
        else:
            self.worker = DemoWorker(self.console, host, int(ports["VIIRS_TASK_PORT"]), products)
        self.progress = DownloadProgress(self.console, self.base / "sdr", files, total)
        cron = LogFollower(self.console, "cron", self.base / "log" / "supercronic.log")
        self.watchers = [self.sdr, self.queue, self.worker, self.progress, cron]
        for watcher in self.watchers:
            watcher.start()

    def wait_for_tasks(self, expected: set) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline and not expected <= self.worker.covered:
            self.check_watched()
            if self.worker.error is not None:
                break
            time.sleep(0.2)  # the worker thread records tasks; we only look
        if expected <= self.worker.covered:
            self.console.say("demo", "the worker has been handed every granule of every product")

    def collect(self, expected: set, names: set[str]) -> Outcome:
        out = self.outcome
        placed = [self.base / "sdr" / name for name in names if (self.base / "sdr" / name).exists()]
        out.files, out.bytes = len(placed), sum(path.stat().st_size for path in placed)
        out.granules = len({granule for _, granule in expected})
        out.tasks, out.messages = len(self.worker.tasks), self.sdr.count
        out.distinct = len(self.sdr.files)
        if self.reference_worker:
            out.images = len(self.worker.images())
        if len(placed) < len(names):
            out.missing.append(f"{len(names) - len(placed)} files not in sdr/")
        missing = expected - self.worker.covered
        if missing:
            out.missing.append(f"{len(missing)} product granules never handed out (see "
                               f"{self.base / 'log'})")  # fmt: skip
        return out

    def close(self) -> None:
        """Stop everything this demo started, in reverse order, each step bounded and
        each one attempted whatever the one before did (nothing here may depend on stdout)."""
        steps = [watcher.stop for watcher in self.watchers]
        if self.stack is not None:
            steps += [lambda: self.console.say("demo", "stopping the collector"),
                      lambda: self.stack.stop(STOP_TIMEOUT)]  # fmt: skip
        if self.standin is not None:
            steps.append(self.standin.stop)
        if self.scratch is not None:
            steps.append(lambda: shutil.rmtree(self.scratch, ignore_errors=True))
        for step in steps:
            try:
                step()
            except Exception as error:  # the next step must run: report on stderr, go on
                print(f"viirscollector demo: while stopping: {error}", file=sys.stderr)

    def next_steps(self, keep: bool) -> list[str]:
        """The last lines: where the directory and logs are, what to try next."""
        base, ports = self.base, self.ports
        lines = [f"directory: {base}  (every program's log: {base / 'log'}/<program>.log)"]
        page = f"http://localhost:{ports['VIIRS_WEB_PORT']}/" if ports else None
        if not keep or not ports:
            return lines + [
                "next: `viirscollector demo --keep` keeps the collector running and says how "
                "to try `viirscollector status`, `task`, `sniff` and the status page on it"
            ]
        env = f"VIIRS_BASE_DIR={base} "
        tries = [
            f"{env}viirscollector status --state-port {ports['VIIRS_STATE_PORT']}",
            f"viirscollector task --port {ports['VIIRS_TASK_PORT']} --product tir --just-testing",
            f"viirscollector sniff sdr --port {ports['VIIRS_MESSAGE_PORT']}",
            f"viirscollector sniff queue --port {ports['VIIRS_STATE_PORT']}",
        ]
        tries.append(f"the status page: {page}")
        lines.append("the collector keeps running until Ctrl-C; try in another shell:")
        return lines + [f"  {line}" for line in tries]


def _keep_running(console: Console) -> None:
    """Wait for Ctrl-C (or SIGTERM, or the reader going away) while the collector runs."""
    while not console.closed.wait(1.0):
        pass
    raise Interrupted("stdout closed")


def _interrupt(signum, frame):
    raise Interrupted(signal.Signals(signum).name)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="viirscollector demo",
        description="Run the whole collector against a local GINA stand-in and watch data flow "
        "to a worker (under a minute); every process it starts is stopped at the end. Its "
        "ports are free ones on 127.0.0.1 unless VIIRS_*_PORT or --production-ports say so.",
    )
    p.add_argument(
        "--base-dir",
        type=Path,
        default=DEFAULT_BASE,
        help=f"the demo collector's base directory (default ./{DEFAULT_BASE})",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="S",
        help=f"seconds to wait for every task after the mirror ran ({DEFAULT_TIMEOUT:g})",
    )
    p.add_argument(
        "--worker",
        action="store_true",
        help="the reference worker (`viirscollector worker`, needs the worker extra) takes "
        "the tasks and makes a quick-look PNG of each with satpy",
    )
    p.add_argument(
        "--keep",
        action="store_true",
        help="keep the collector running after the summary, until Ctrl-C",
    )
    p.add_argument(
        "--production-ports",
        action="store_true",
        help="use 19091/19191/29092 and posttroll's default ports when free",
    )
    return p  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """0 when every granule reached the worker, 1 otherwise; 130 after Ctrl-C."""
    args = _parser().parse_args(argv)
    console = Console()
    timeout = demo_quicklooks.timeout(args.timeout, DEFAULT_TIMEOUT, args.worker)
    demo = Demo(args.base_dir.absolute(), console, timeout, args.worker, args.production_ports)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    code = 1
    try:
        outcome = demo.run()
        code = 0 if not outcome.missing else 1
        if args.keep:
            outcome.seconds = console.elapsed()
            console.write(summary(outcome))
            console.write("\n".join(demo.next_steps(keep=True)))
            _keep_running(console)
    except Interrupted as why:
        console.say("demo", f"interrupted ({why}); stopping everything")
        code = 130
    except DemoError as error:
        console.say("demo", f"error: {error}")
        demo.outcome.missing.append(f"error: {error}")
    finally:
        # Neither a second Ctrl-C nor a SIGTERM may cut the cleanup short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        demo.close()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, previous)
    demo.outcome.seconds = console.elapsed()
    if code != 130:
        if args.worker and demo.watchers:
            console.write("\n".join(demo_quicklooks.summary_lines(demo.worker, demo.base)))
        console.write(summary(demo.outcome))
        console.write("\n".join(demo.next_steps(keep=False)))
    return code


if __name__ == "__main__":
    sys.exit(main())
