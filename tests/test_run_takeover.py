"""``viirscollector run`` on the original's volume: its tmp/ leftovers go, nothing else does,
and log files of another UID are moved aside instead of stopping supervisord.

The original's logs belong to UID 12345 (mode 0644, 0600). ``prepare`` runs in a child
without any capability (helpers.privileges), so "not writable" is the kernel's own
answer, as for the container's UID 2001 in production; tests run as root, for whom
every file would otherwise be writable.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from helpers.privileges import drop_capabilities, is_root

from avoviirscollector import filenames
from avoviirscollector.mirror.adoption_rules import is_our_log, our_log_names

REPO = Path(__file__).resolve().parent.parent
COLLECTOR_UID, OTHER_UID = 0, 12345  # 0 without capabilities, see helpers.privileges
PREPARE = "from avoviirscollector import run, settings; run.prepare(settings.load())"

needs_root = pytest.mark.skipif(not is_root(), reason="needs root to own files as another UID")


@pytest.fixture
def volume():
    """A base directory with the layout (the original's, before our first start)."""
    parent = Path(tempfile.mkdtemp(prefix="vt"))
    base = parent / "viirs"
    for name in ("sdr", "tmp", "log", "elements", "state"):
        (base / name).mkdir(parents=True)
    yield base
    shutil.rmtree(parent, ignore_errors=True)


def own(path: Path, uid: int, mode: int | None = None) -> Path:
    os.chown(path, uid, uid)
    if mode is not None:
        path.chmod(mode)
    return path


def prepare_as_collector(base: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "VIIRS_BASE_DIR": str(base), "VIIRS_CONFIG_DIR": str(REPO)}
    env["HOME"] = "/tmp"
    return subprocess.run(
        [sys.executable, "-c", PREPARE],
        env=env,
        preexec_fn=drop_capabilities,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_our_log_names_are_what_supervisord_conf_writes():
    names = our_log_names((REPO / "supervisord.conf").read_text(), "/viirs")
    assert {"supervisord.log", "trollstalker.log", "task_broker.log"} <= names
    assert "replay_listener.log" in names and "NONE" not in names
    assert is_our_log("supervisord.log.3", names) and not is_our_log("supervisord.log.x", names)
    assert not is_our_log("trollstalker-stdout---supervisor-abc.log", names)


@needs_root
def test_logs_of_another_uid_are_moved_aside_and_nothing_else_is_touched(volume):
    log = volume / "log"
    (log / "supervisord.log").write_text("the original's log\n")
    backup = log / "trollstalker.log.1"
    backup.write_text("rotated\n")
    own(backup, OTHER_UID, 0o600)
    foreign_auto = log / "trollstalker-stdout---supervisor-x1y2.log"
    foreign_auto.write_text("AUTO log of the original\n")
    own(foreign_auto, OTHER_UID, 0o600)
    own(log / "supervisord.log", OTHER_UID, 0o644)

    result = prepare_as_collector(volume)

    assert result.returncode == 0, result.stderr
    aside = log / f"supervisord.log.original-{OTHER_UID}"
    assert aside.read_text() == "the original's log\n" and not (log / "supervisord.log").exists()
    assert (log / f"trollstalker.log.1.original-{OTHER_UID}").exists()
    assert foreign_auto.read_text() == "AUTO log of the original\n", "not one of our names"
    lines = [line for line in result.stderr.splitlines() if "moved aside" in line]
    assert len(lines) == 2, result.stderr
    assert f"belongs to uid {OTHER_UID} and is not writable by uid {COLLECTOR_UID}" in lines[0]


@needs_root
def test_a_log_directory_of_another_uid_is_moved_aside_whole(volume):
    log = volume / "log"
    (log / "supervisord.log").write_text("old\n")
    own(log / "supervisord.log", OTHER_UID, 0o644)
    own(log, OTHER_UID, 0o755)

    result = prepare_as_collector(volume)

    assert result.returncode == 0, result.stderr
    assert (volume / f"log.original-{OTHER_UID}" / "supervisord.log").read_text() == "old\n"
    assert log.is_dir() and not list(log.iterdir())
    assert "moved aside" in result.stderr


@needs_root
def test_the_original_s_tmp_leftovers_go_and_nothing_of_ours_is_touched(volume):
    tmp = volume / "tmp"
    start = dt.datetime(2026, 11, 30, 21, 14, 3)
    partial = tmp / filenames.compose(
        "SVM15", "npp", start, start + dt.timedelta(seconds=85), 70012, start
    )
    partial.write_bytes(b"\x89HDF" + b"\0" * 1000)
    for name in ("viirs-moderate-snpp.lock", "noaa20_GITCO-SVI05.lock"):
        (tmp / name).write_text("4242\n")
    ours = [
        tmp / "mirror_gina-snpp-moderate.lock",
        tmp / "mirror_gina-snpp-moderate" / f"{partial.name}.part",
        tmp / "notes.lock",
    ]
    for path in ours:
        path.parent.mkdir(exist_ok=True)
        path.write_text("ours\n")
    (tmp / "link.lock").symlink_to(volume / "elements")

    result = prepare_as_collector(volume)

    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp.iterdir()) == [
        "link.lock",
        "mirror_gina-snpp-moderate",
        "mirror_gina-snpp-moderate.lock",
        "notes.lock",
    ]
    assert all(path.read_text() == "ours\n" for path in ours)
    assert "removed 3 leftover(s) of the original collector" in result.stderr
