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
from avoviirscollector.mirror import adoption

#: AF_UNIX socket paths hold at most 107 bytes (108 with the terminating NUL).
MAX_SOCKET_PATH = 107
SOCKET_NAME = "supervisor.sock"


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


def environment(settings: settings_module.Settings) -> dict[str, str]:
    """supervisord's environment: ours plus the absolute directories its config reads."""
    env = dict(os.environ)
    env["VIIRS_BASE_DIR"] = str(settings.base_dir.absolute())
    env["VIIRS_CONFIG_DIR"] = str(settings.config_dir.absolute())
    return env


def supervisord_command(conf: Path) -> list[str]:
    """The supervisord on PATH, or the one installed with this Python."""
    program = shutil.which("supervisord")
    if program:
        return [program, "-c", str(conf)]
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
    try:
        conf = prepare(settings)
    except RunError as error:
        print(f"viirscollector run: {error}", file=sys.stderr)
        return 1
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
