"""``viirscollector run``: prepare the base directory and become supervisord.

The compose volume is ``nocopy``, so ``/viirs`` starts empty, and supervisord
refuses to start when its log directory is missing. This command creates the
layout, checks what would otherwise fail obscurely (a read-only volume, a socket
path too long for AF_UNIX, a missing supervisord.conf), exports the two variables
supervisord.conf reads, and execs supervisord so that it is PID 1 in the container
and receives docker's SIGTERM itself.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from avoviirscollector import settings as settings_module
from avoviirscollector import supervisor_client
from avoviirscollector.mirror import adoption
from avoviirscollector.netutil import port_taken

#: AF_UNIX socket paths hold at most 107 bytes (108 with the terminating NUL).
MAX_SOCKET_PATH = 107
SOCKET_NAME = "supervisor.sock"
#: posttroll's TCP ports (its defaults): the nameserver's requests, its address announcements.
POSTTROLL_PORTS = {
    "POSTTROLL_NAMESERVER_PORT": (5557, "posttroll nameserver"),
    "POSTTROLL_ADDRESS_PUBLISH_PORT": (16543, "posttroll address announcements"),
}


class Refused(Exception):
    """Starting would disturb another collector (or be disturbed by it): exit status 2."""


class RunError(Exception):
    """Something an operator must fix before the collector can start."""


def prepare(settings: settings_module.Settings) -> Path:
    """Create the layout under the base directory; return supervisord.conf's path."""
    base = settings.base_dir
    conf = settings.config_dir / "supervisord.conf"
    if not conf.is_file():
        raise RunError(f"{conf} is missing: set VIIRS_CONFIG_DIR to the directory that holds it")
    try:
        for name in settings_module.LAYOUT:
            (base / name).mkdir(parents=True, exist_ok=True)
        for line in adoption.take_over(settings.tmp_dir, settings.log_dir, conf, base):
            print(f"viirscollector run: {line}", file=sys.stderr)  # the original's leftovers
        with tempfile.TemporaryFile(dir=settings.log_dir):
            pass
    except OSError as error:
        raise RunError(
            f"base directory {base} is not writable by uid {os.getuid()}: "
            f"{error.strerror} ({error.filename or base})"
        ) from None
    socket = settings.tmp_dir / SOCKET_NAME
    if len(os.fsencode(socket)) > MAX_SOCKET_PATH:
        raise RunError(
            f"supervisord's socket path {socket} is longer than {MAX_SOCKET_PATH} bytes: "
            "use a shorter VIIRS_BASE_DIR"
        )
    return conf


def running_supervisord(settings: settings_module.Settings) -> int | None:
    """The pid of the supervisord that answers on this base directory's socket, if any."""
    sock = supervisor_client.socket_of(settings.base_dir)
    if not sock.exists():
        return None
    try:
        return int(supervisor_client.call(sock, "supervisor.getPID", timeout=5))
    except (supervisor_client.SupervisorUnavailable, TypeError, ValueError):
        return None  # a stale socket of a collector that died: supervisord replaces it


def needed_ports(settings: settings_module.Settings, env=None) -> dict[str, int]:
    """ "VARIABLE (what)" -> port, for every TCP port the collector's programs bind."""
    env = os.environ if env is None else env
    ports = {
        "VIIRS_TASK_PORT (tasks)": settings.task_port,
        "VIIRS_STATE_PORT (queue state)": settings.state_port,
        "VIIRS_MESSAGE_PORT (messages)": settings.message_port,
        "VIIRS_WEB_PORT (status page)": settings.web_port,
    }
    for name, (default, what) in POSTTROLL_PORTS.items():
        raw = env.get(name, "").strip()
        if raw and not raw.isdigit():
            raise Refused(f"{name}={raw!r} is not a port number")
        ports[f"{name} ({what})"] = int(raw) if raw else default
    return ports


def check_ports(settings: settings_module.Settings, env=None) -> None:
    """Refuse to start on a port that is taken, or on one port given twice.

    A second collector on taken posttroll ports would register its programs with the
    first one's nameserver, whose gatherers would then take its files; on taken
    collector ports its programs would crash-loop on "Address already in use".
    """
    ports = needed_ports(settings, env)
    seen: dict[int, str] = {}
    for what, port in ports.items():
        if port in seen:
            raise Refused(f"{what} and {seen[port]} are both port {port}")
        seen[port] = what
    taken = [f"{port} ({what})" for what, port in ports.items() if port_taken(port)]
    if taken:
        raise Refused(
            f"port(s) already in use: {', '.join(taken)}; another collector or program "
            "listens there: stop it or give this collector other ports"
        )


def environment(settings: settings_module.Settings) -> dict[str, str]:
    """supervisord's environment: ours plus the absolute directories its config reads."""
    env = dict(os.environ)
    env["VIIRS_BASE_DIR"] = str(settings.base_dir.absolute())
    env["VIIRS_CONFIG_DIR"] = str(settings.config_dir.absolute())
    return env


def supervisord_command(conf: Path) -> list[str]:
    """The supervisord of this Python: the script beside it, else ``python -m``.

    Not the first ``supervisord`` on PATH: in a virtual environment with system site
    packages that is pyenv's shim, which puts the system Python's scripts first on the
    PATH the programs inherit, so the collector would run another checkout's code.
    """
    beside = Path(sys.executable).parent / "supervisord"
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside), "-c", str(conf)]
    return [sys.executable, "-m", "supervisor.supervisord", "-c", str(conf)]


def main(argv: list[str] | None = None) -> int:
    """Create the layout and exec supervisord (never returns on success)."""
    parser = argparse.ArgumentParser(
        prog="viirscollector run",
        description="Create the base directory's layout and exec supervisord "
        "with $VIIRS_CONFIG_DIR/supervisord.conf.",
    )
    parser.parse_args(argv)
    settings = settings_module.load_or_exit()
    pid = running_supervisord(settings)
    if pid is not None:  # before prepare(): nothing of the running collector is touched
        print(f"viirscollector run: a collector already runs on {settings.base_dir} "
              f"(supervisord pid {pid}); nothing started", file=sys.stderr)  # fmt: skip
        return 2
    try:
        conf = prepare(settings)
    except RunError as error:
        print(f"viirscollector run: {error}", file=sys.stderr)
        return 1
    try:
        check_ports(settings)
    except Refused as refusal:
        print(f"viirscollector run: {refusal}; nothing started", file=sys.stderr)
        return 2
    if shutil.which("supercronic") is None:
        print(
            "viirscollector run: supercronic is not installed; "
            "the crontab runs with the built-in runner",
            file=sys.stderr,
        )
    command = supervisord_command(conf)
    print(
        f"viirscollector run: base {settings.base_dir}, starting {' '.join(command)}",
        file=sys.stderr,
    )
    sys.stderr.flush()
    os.execve(command[0], command, environment(settings))
    return 1  # not reached
