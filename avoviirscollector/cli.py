"""``viirscollector``: one command, one subcommand per job, each in its own module.

Subcommands are imported only when used, so ``viirscollector health`` (run by the
container's HEALTHCHECK every few seconds) does not pay for h5py or pycurl.
Every subcommand module has ``main(argv) -> int``.
"""

from __future__ import annotations

import importlib
import sys

from avoviirscollector import __version__

#: subcommand -> (module under avoviirscollector, one-line help)
SUBCOMMANDS = {
    "run": ("run", "create the base directory's layout and exec supervisord"),
    "nameserver": ("pipeline.nameserver", "the posttroll nameserver (daemon)"),
    "stalker": ("pipeline.stalker", "publish a message per file landing in sdr/ (daemon)"),
    "gatherer": ("pipeline.gatherer", "gather one product's granules (daemon)"),
    "cron": ("jobs.cron", "run the crontab (supercronic, or the built-in runner)"),
    "mirror": ("mirror.mirror_gina", "fetch new SDR files from GINA (= mirror_gina)"),
    "verify-sdr": (
        "mirror.verify_sdr",
        "check sdr/ against GINA's MD5s and HDF5; quarantine bad files (first start, on demand)",
    ),
    "cleanup": ("jobs.cleanup", "delete files older than VIIRS_RETENTION days"),
    "fetch-tle": ("jobs.tle", "download two-line elements when they changed"),
    "reprocess": ("operator.reprocess", "publish the messages of files in sdr/ again"),
    "health": ("operator.health", "exit 0 when every daemon runs and the broker answers"),
    "status": ("operator.status", "one screen: programs, queue, newest file, disk"),
    "ctl": ("operator.ctl", "supervisorctl for this collector (e.g. ctl status, ctl restart web)"),
    "sniff": ("operator.sniff", "print messages from 29092 (sdr) or 19191 (queue)"),
    "task": ("broker.task_client", "ask the broker for one task, as a worker does"),
    "recorder": ("operator.web.recorder", "record the history the status page shows (daemon)"),
    "web": ("operator.web.server", "serve the status page, its JSON API and /metrics (daemon)"),
    "worker": ("worker.reference_worker", "the reference worker: a satpy quick-look PNG per task"),
    "demo": ("operator.demo", "run the whole collector against a local GINA stand-in"),
    "gina-standin": ("standins.gina", "serve a local GINA stand-in"),
    "replay-listener": (
        "pipeline.replay_listener",
        "supervisord event listener: gatherers replay sdr/ after a restart (daemon)",
    ),
}


def usage() -> str:
    """The list of subcommands, for -h and for a mistyped one."""
    width = max(map(len, SUBCOMMANDS))
    lines = ["usage: viirscollector SUBCOMMAND [options]", "", "subcommands:"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in SUBCOMMANDS.items()]
    lines.append("\n'viirscollector SUBCOMMAND -h' tells more; every command answers --version.")
    return "\n".join(lines)


def load(name: str):
    """The module of subcommand ``name`` (imported now, not at start-up)."""
    return importlib.import_module(f"avoviirscollector.{SUBCOMMANDS[name][0]}")


def main(argv: list[str] | None = None) -> int:
    """Dispatch to the subcommand's module."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if argv[0] in ("--version", "-V"):
        print(f"viirscollector {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"viirscollector: unknown subcommand {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    if "--version" in rest:
        print(f"viirscollector {name} {__version__}")
        return 0
    return load(name).main(rest) or 0


def _program(name: str, module: str) -> int:
    """A console script (the names supervisord.conf and the crontab always used), which
    answers --version like every subcommand before its module is even imported."""
    if "--version" in sys.argv[1:]:
        print(f"{name} {__version__}")
        return 0
    return importlib.import_module(f"avoviirscollector.{module}").main() or 0


def mirror_gina() -> int:
    """The ``mirror_gina`` console script (cron starts it every few seconds)."""
    status = _program("mirror_gina", "mirror.mirror_gina")
    if "h5py" in sys.modules:  # a poll that checked files: leave without the teardown
        from avoviirscollector.mirror.mirror_gina import leave

        leave(status)
    return status


def task_broker() -> int:
    """The ``task_broker`` console script."""
    return _program("task_broker", "broker.task_broker")


def msg_publisher() -> int:
    """The ``msg_publisher`` console script."""
    return _program("msg_publisher", "pipeline.msg_publisher")


if __name__ == "__main__":
    sys.exit(main())
