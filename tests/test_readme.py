"""Issue 14.4: what the README says is what the collector does.

The Configuration table lists exactly the variables settings.py reads; every
``viirscollector`` command the README shows exists, with the options it shows; the
supervisorctl commands it gives work from any directory, as in the container.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from avoviirscollector import cli, settings
from avoviirscollector.operator.collector_process import PROGRAMS, CollectorProcess

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()


def table_after(heading: str) -> list[list[str]]:
    """The rows of the first table after ``heading`` (cells stripped)."""
    text = README[README.index(heading) :]
    rows, started = [], False
    for line in text.splitlines()[1:]:
        if line.startswith("|"):
            started = True
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not set(cells[0]) <= {"-", " "}:
                rows.append(cells)
        elif started:
            break
    return rows[1:]  # without the header


def names_in(cell: str) -> set[str]:
    return set(re.findall(r"`([A-Z][A-Z0-9_]+)`", cell))


def test_configuration_table_lists_exactly_the_variables_settings_reads():
    read = set(re.findall(r'env, "([A-Z][A-Z0-9_]+)"', Path(settings.__file__).read_text()))
    assert len(read) >= 15, "the pattern no longer finds settings.py's variables"
    documented = set().union(*(names_in(row[0]) for row in table_after("## Configuration")))
    assert read - documented == set(), "read by settings.py, missing from the README's table"
    assert documented - read == set(), "in the README's table, never read by settings.py"


def test_posttroll_ports_are_documented_with_their_defaults():
    rows = {row[0].strip("`"): row[1].strip("`") for row in table_after("posttroll's own ports")}
    assert rows == {
        "POSTTROLL_NAMESERVER_PORT": "5557",
        "POSTTROLL_ADDRESS_PUBLISH_PORT": "16543",
        "POSTTROLL_BROADCAST_PORT": "21200",
    }


def readme_commands() -> list[list[str]]:
    """Every ``viirscollector ...`` command line of the README (code blocks and spans)."""
    found = []
    for block in re.findall(r"```sh\n(.*?)```", README, re.S):
        for line in block.splitlines():
            words = line.split("#")[0].split()
            while words and "=" in words[0]:  # VIIRS_BASE_DIR=... viirscollector run
                words.pop(0)
            if words[:1] == ["viirscollector"]:
                found.append(words)
    for span in re.findall(r"`(viirscollector [^`]+)`", README):
        found.append(span.split())
    return found


def help_of(words: list[str]) -> str:
    """The --help of the (sub)command that ``words`` runs."""
    name = words[1]
    argv = ["viirscollector", name]
    if name == "sniff" and len(words) > 2 and words[2] in ("sdr", "queue"):
        argv.append(words[2])
    done = subprocess.run([*argv, "--help"], capture_output=True, text=True, timeout=60)
    return done.stdout


def test_every_viirscollector_command_in_the_readme_exists_with_the_options_shown():
    commands = readme_commands()
    assert len(commands) >= 15
    unknown = [" ".join(w) for w in commands if len(w) > 1 and w[1] not in cli.SUBCOMMANDS
               and not w[1].startswith("-")]  # fmt: skip
    assert unknown == []
    bad = []
    helps: dict[tuple, str] = {}
    for words in commands:
        if len(words) < 2 or words[1].startswith("-") or words[1] == "ctl":
            continue
        key = tuple(words[:3]) if words[1] == "sniff" else tuple(words[:2])
        text = helps.setdefault(key, help_of(words))
        for option in (w.split("=")[0] for w in words[2:] if w.startswith("--")):
            if option not in text:
                bad.append(f"{' '.join(words)}: {option}")
    assert bad == [], "options the README shows that the command does not take"


@pytest.fixture
def short_base():
    path = Path(tempfile.mkdtemp(prefix="v"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_the_readmes_supervisorctl_commands_work_from_another_directory(short_base, tmp_path):
    assert "viirscollector ctl status" in README
    assert "supervisorctl -c /opt/avoviirscollector/supervisord.conf" in README
    with CollectorProcess(short_base).start(PROGRAMS) as collector:
        env = {**collector.env}
        env.pop("VIIRS_CONFIG_DIR", None)
        ctl = subprocess.run(["viirscollector", "ctl", "status"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=60)  # fmt: skip
        conf = REPO / "supervisord.conf"
        plain = subprocess.run(["supervisorctl", "-c", str(conf), "status"], cwd=short_base,
                               env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    for done in (ctl, plain):
        assert done.returncode == 0, done.stdout + done.stderr
        assert all(re.search(rf"^{name}\s+RUNNING", done.stdout, re.M) for name in PROGRAMS), (
            done.stdout
        )
