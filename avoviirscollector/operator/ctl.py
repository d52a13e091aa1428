"""``viirscollector ctl [SUPERVISORCTL ARGS]``: supervisorctl for this collector, from anywhere.

supervisorctl needs ``-c`` with the path of supervisord.conf, and that file reads
``VIIRS_BASE_DIR`` for the socket's path (without it supervisorctl lists every
environment variable name as "not found"). In the container the working directory is
/viirs, not the configuration's, so ``supervisorctl -c supervisord.conf`` fails there.
This command finds both from the settings and runs supervisorctl, e.g.::

    docker compose exec viirscollector viirscollector ctl status
    viirscollector ctl restart task_broker
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def command(settings, args: list[str]) -> tuple[list[str], dict[str, str]]:
    """The supervisorctl command line and its environment."""
    conf = settings.config_dir / "supervisord.conf"
    beside = Path(sys.executable).parent / "supervisorctl"
    program = [str(beside)] if beside.is_file() else None
    if program is None:
        found = shutil.which("supervisorctl")
        program = [found] if found else [sys.executable, "-m", "supervisor.supervisorctl"]
    env = dict(os.environ)
    env["VIIRS_BASE_DIR"] = str(settings.base_dir.absolute())
    env["VIIRS_CONFIG_DIR"] = str(settings.config_dir.absolute())
    return [*program, "-c", str(conf), *args], env


def main(argv: list[str] | None = None) -> int:
    """Exec supervisorctl with this collector's supervisord.conf and base directory."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] in (["-h"], ["--help"]):
        print("usage: viirscollector ctl [SUPERVISORCTL ARGS]   (default: status)\n")
        print(__doc__.strip().replace("``", "").split("\n", 2)[2])
        return 0
    from avoviirscollector.settings import load_or_exit

    line, env = command(load_or_exit(), argv or ["status"])
    sys.stdout.flush()
    os.execve(line[0], line, env)
    return 1  # not reached
