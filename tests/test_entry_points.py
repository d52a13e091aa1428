"""The users' interface survives the package's layout: every command that supervisord.conf,
the crontab, the Dockerfile and `viirscollector -h` name starts and answers ``--help``."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from avoviirscollector import cli
from avoviirscollector.jobs import crontab_rules

REPO = Path(__file__).resolve().parents[1]


def supervisord_commands() -> list[str]:
    conf = configparser.RawConfigParser()
    conf.read(REPO / "supervisord.conf")
    return [conf[s]["command"] for s in conf.sections() if "command" in conf[s]]


def crontab_commands() -> list[str]:
    return [job.command for job in crontab_rules.parse((REPO / "crontab").read_text()).jobs]


def dockerfile_commands() -> list[str]:
    text = (REPO / "Dockerfile").read_text()
    return [" ".join(re.findall(r'"([^"]+)"', m)) for m in re.findall(r"CMD (\[.*\])", text)]


def help_argv(command: str) -> list[str]:
    """The command's program and subcommand, with --help instead of its arguments."""
    words = command.split()
    if words[0] == "viirscollector":
        return ["viirscollector", words[1], "--help"]
    return [words[0], "--help"]


SHIPPED = sorted(
    {
        " ".join(help_argv(c))
        for c in supervisord_commands() + crontab_commands() + dockerfile_commands()
    }
)
SUBCOMMANDS = sorted(f"viirscollector {name} --help" for name in cli.SUBCOMMANDS)


def test_the_shipped_files_name_the_programs_they_always_named():
    assert "viirscollector nameserver --help" in SHIPPED
    assert "mirror_gina --help" in SHIPPED and "task_broker --help" in SHIPPED
    assert "viirscollector health --help" in SHIPPED and "viirscollector run --help" in SHIPPED


@pytest.mark.parametrize("command", sorted(set(SHIPPED) | set(SUBCOMMANDS)))
def test_every_shipped_command_and_subcommand_answers_help(command):
    argv = command.split()
    assert shutil.which(argv[0]), f"{argv[0]} is not installed"
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "usage:" in done.stdout.lower(), done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def test_viirscollector_help_lists_every_subcommand():
    done = subprocess.run(["viirscollector", "-h"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    for name in cli.SUBCOMMANDS:
        assert f"  {name} " in done.stdout


def test_python_dash_m_runs_the_cli_as_the_benchmarks_call_it():
    done = subprocess.run(
        [sys.executable, "-m", "avoviirscollector.cli", "status", "--help"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0 and "usage: viirscollector status" in done.stdout


VERSIONED = ["viirscollector", *(f"viirscollector {name}" for name in cli.SUBCOMMANDS),
             "mirror_gina", "task_broker", "msg_publisher"]  # fmt: skip


@pytest.mark.parametrize("command", VERSIONED)
def test_every_program_answers_version_with_the_package_version(command):
    from avoviirscollector import __version__

    result = subprocess.run([*command.split(), "--version"], capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{command} {__version__}\n"


def test_sniff_without_argument_names_what_it_can_sniff_sdr_or_queue():
    result = subprocess.run(["viirscollector", "sniff"], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.startswith("usage: viirscollector sniff {sdr | queue}")
    assert "what" not in result.stderr.split()


def test_sniff_sdr_help_offers_only_what_sdr_takes_and_cron_help_has_no_rst_markup():
    sdr = subprocess.run(["viirscollector", "sniff", "sdr", "-h"], capture_output=True, text=True)
    assert "--length" not in sdr.stdout
    cron = subprocess.run(["viirscollector", "cron", "-h"], capture_output=True, text=True)
    assert "``" not in cron.stdout and "viirscollector cron CRONTAB" in cron.stdout
