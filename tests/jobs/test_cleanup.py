"""`viirscollector cleanup`: deletes what is old, and nothing it must not, on a real filesystem."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from avoviirscollector.jobs import cleanup, retention

CLI = [sys.executable, "-m", "avoviirscollector.cli"]
FIXTURES = Path(__file__).parent / "fixtures"
DAY = 86400


def make(path: Path, days_old: float, size: int = 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    age(path, days_old)
    return path


def age(path: Path, days_old: float) -> None:
    stamp = time.time() - days_old * DAY
    os.utime(path, (stamp, stamp), follow_symlinks=False)


def run_cleanup(base: Path, *args: str, retention: str | None = "7"):
    env = {**os.environ, "VIIRS_BASE_DIR": str(base)}
    env.pop("VIIRS_RETENTION", None)
    if retention is not None:
        env["VIIRS_RETENTION"] = retention
    return subprocess.run(
        [*CLI, "cleanup", *args], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def layout(base_dir):
    for name in ("sdr", "tmp", "log", "elements", "state"):
        (base_dir / name).mkdir()
    return base_dir


def test_unset_retention_deletes_nothing_and_says_so(layout):
    old = make(layout / "sdr" / "old.h5", 400)
    result = run_cleanup(layout, retention=None)
    assert result.returncode == 0
    assert old.exists()
    assert "VIIRS_RETENTION is not set" in result.stderr


def test_every_old_file_anywhere_goes_recent_ones_stay_and_counts_and_bytes_are_reported(layout):
    old = [
        make(layout / "sdr" / "SVI05_npp_old.h5", 8, 1_000_000),
        make(layout / "log" / "supervisord.log.3", 8, 2_000_000),
        make(layout / "elements" / "noaa.txt", 8, 500_000),
        make(layout / "tmp" / "queue" / ".partial", 30, 500_000),
        make(layout / "something-unexpected", 10, 1_000_000),
    ]
    recent = [make(layout / "sdr" / "new.h5", 6.9), make(layout / "log" / "today.log", 0)]
    age(layout / "tmp" / "queue", 30)
    result = run_cleanup(layout)
    assert result.returncode == 0, result.stderr
    assert not any(p.exists() for p in old)
    assert all(p.exists() for p in recent)
    assert not (layout / "tmp" / "queue").exists(), "emptied old directory left behind"
    assert all((layout / name).is_dir() for name in ("sdr", "tmp", "log", "elements", "state"))
    assert "deleted 5 file(s) older than 7 day(s), freed 5.0 MB, removed 1 empty" in result.stderr


def test_regression_original_cron_line_ran_the_retention_number_as_a_command(layout):
    """The original line never deleted anything; ours deletes the same old file."""
    line = (FIXTURES / "original-cron-cleanup").read_text().splitlines()[-1]
    old = make(layout / "sdr" / "old.h5", 30)
    env = {**os.environ, "VIIRS_RETENTION": "7", "VIIRS_BASE_DIR": str(layout)}
    legacy = subprocess.run(["sh", "-c", line], env=env, capture_output=True, text=True)
    assert legacy.returncode == 127 and "7" in legacy.stderr  # "7: not found"
    assert old.exists()
    assert run_cleanup(layout, retention="7").returncode == 0
    assert not old.exists()


@pytest.mark.parametrize("retention, survives", [("7", False), (None, True)])
def test_regression_inverted_test_set_deletes_unset_keeps(layout, retention, survives):
    """A later original inverted the test and deleted nothing when set: both directions."""
    old = make(layout / "log" / "old.log", 30)
    assert run_cleanup(layout, retention=retention).returncode == 0
    assert old.exists() is survives


def test_old_file_held_open_by_a_running_process_is_kept(layout):
    database = make(layout / "state" / "tasks.sqlite", 30)
    log_file = make(layout / "log" / "task_broker.log", 30)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys,time; a=open(sys.argv[1],'rb'); b=open(sys.argv[2],'ab'); "
            "print('open', flush=True); time.sleep(60)",
            str(database),
            str(log_file),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        result = run_cleanup(layout)
    finally:
        holder.kill()
        holder.wait()
    assert database.exists() and log_file.exists()
    assert "kept state/tasks.sqlite: older than the retention but open" in result.stderr
    assert "2 kept as in use" in result.stderr


def test_symlinks_are_never_followed_and_nothing_outside_the_base_is_touched(layout, tmp_path):
    outside_dir = tmp_path / "outside"
    outside_file = make(outside_dir / "precious.h5", 100)
    age(outside_dir, 100)
    file_link = layout / "sdr" / "link.h5"
    file_link.symlink_to(outside_file)
    age(file_link, 30)
    dir_link = layout / "tmp" / "linked-dir"
    dir_link.symlink_to(outside_dir)  # recent link: stays, and is not descended into
    result = run_cleanup(layout)
    assert result.returncode == 0, result.stderr
    assert not file_link.is_symlink(), "old symlink itself should be deleted"
    assert outside_file.exists() and outside_dir.is_dir()
    assert dir_link.is_symlink()


def test_sockets_are_never_deleted(layout):
    path = layout / "tmp" / "s.sock"
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(path))
        age(path, 30)
        assert run_cleanup(layout).returncode == 0
        assert path.exists()
    finally:
        server.close()


def test_dry_run_lists_and_deletes_nothing(layout):
    old = make(layout / "sdr" / "old.h5", 30, 1234)
    result = run_cleanup(layout, "--dry-run")
    assert result.returncode == 0
    assert old.exists()
    assert f"would delete {old}  (1234 bytes)" in result.stdout
    assert "dry run: 1 file(s)" in result.stderr


def test_a_file_changed_after_the_scan_is_kept(layout):
    """Between plan and delete a file was rewritten: the re-check keeps it."""
    path = make(layout / "tmp" / "reused.lock", 30)
    entries = cleanup.scan(layout, set())
    plan = retention.plan(entries, time.time(), 7)
    path.write_text("rewritten now")
    files, _, _ = cleanup.execute(layout, plan)
    assert files == 0 and path.exists()


def test_missing_base_directory_is_an_error_not_a_traceback(tmp_path):
    result = run_cleanup(tmp_path / "nope")
    assert result.returncode == 2
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr


def test_bad_retention_value_is_one_line_status_2(layout):
    result = run_cleanup(layout, retention="seven")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "VIIRS_RETENTION" in result.stderr


def one_refusal(result) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    return lines[0]


def test_cleanup_refuses_the_root_directory_in_one_line_status_2():
    assert "/ is never a base directory" in one_refusal(run_cleanup(Path("/"), "--dry-run"))


def test_cleanup_refuses_a_dotdot_path_that_resolves_to_a_directory_without_the_layout(
    layout, tmp_path
):
    unrelated = make(tmp_path / "unrelated" / "old.txt", 400)
    dotdot = layout / "sdr" / ".." / ".."  # is tmp_path, which holds no collector layout
    line = one_refusal(run_cleanup(dotdot, retention="1"))
    assert f"(that is {tmp_path})" in line and "not a collector's base directory" in line
    assert unrelated.exists()


def test_cleanup_refuses_a_directory_without_the_collectors_layout(tmp_path):
    (tmp_path / "sdr").mkdir()
    keep = make(tmp_path / "sdr" / "old.h5", 400)
    line = one_refusal(run_cleanup(tmp_path, retention="1"))
    assert "it has no tmp/, log/, state/" in line
    assert keep.exists()


def test_a_directory_that_fails_part_way_is_skipped_with_a_warning_and_the_rest_cleaned(
    layout, monkeypatch, caplog
):
    old = [make(layout / "sdr" / f"old{i}.h5", 30) for i in range(3)]
    old_log = make(layout / "log" / "old.log", 30)
    real_scandir = os.scandir

    class Failing:
        """sdr/'s listing: one entry, then EIO (a failing disk or a stale NFS handle)."""

        def __init__(self, path):
            self.inner = real_scandir(path)
            self.given = 0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.inner.close()

        def __iter__(self):
            return self

        def __next__(self):
            if self.given == 1:
                raise OSError(5, "Input/output error")
            self.given += 1
            return next(self.inner)

    def scandir(path):
        return Failing(path) if Path(path).name == "sdr" else real_scandir(path)

    monkeypatch.setattr(cleanup.os, "scandir", scandir)
    with caplog.at_level("WARNING", logger="cleanup"):
        assert cleanup.cleanup(layout, 7) == 0
    assert "reading " in caplog.text and "failed part way (" in caplog.text
    assert not old_log.exists(), "the other directories were cleaned"
    assert sum(path.exists() for path in old) == 2, "what was read of sdr/ was cleaned"


def test_an_unreadable_subdirectory_is_skipped_with_a_warning_and_the_rest_cleaned(
    layout, monkeypatch, caplog
):
    make(layout / "sdr" / "locked" / "old.h5", 30)
    old_log = make(layout / "log" / "old.log", 30)
    real_scandir = os.scandir

    def scandir(path):
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(cleanup.os, "scandir", scandir)
    with caplog.at_level("WARNING", logger="cleanup"):
        assert cleanup.cleanup(layout, 7) == 0
    assert "cannot read " in caplog.text and "locked" in caplog.text
    assert not old_log.exists()
