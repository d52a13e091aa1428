"""`viirscollector cron`: supercronic when installed, else a runner with supercronic's semantics.

Real processes: the command runs as a subprocess with a crontab written to tmp_path,
its jobs are real shell commands, and signals are real signals.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "avoviirscollector.cli"]


def wait_for(predicate, timeout=10.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


@pytest.fixture
def start_cron(tmp_path):
    """Start `viirscollector cron` on a crontab; stopped (and reaped) after the test."""
    started = []

    def start(crontab_text, *extra, env=None):
        crontab = tmp_path / "crontab"
        crontab.write_text(crontab_text)
        process = subprocess.Popen(
            [*CLI, "cron", *extra, str(crontab)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_runner_runs_seven_field_job_every_second_with_inherited_env_and_output_to_our_stdout(
    tmp_path, start_cron
):
    out = tmp_path / "runs"
    process = start_cron(
        f'GREETING="hello from the crontab"\n'
        f'* * * * * * * echo "$INHERITED $GREETING" >> {out}; echo job-stdout-line\n',
        "--no-supercronic",
        env={"INHERITED": "from-parent"},
    )
    assert wait_for(lambda: len(lines(out)) >= 2), "job did not run twice within 10 s"
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=10)
    assert process.returncode == 0
    assert lines(out)[0] == "from-parent hello from the crontab"
    assert "job-stdout-line" in stdout
    assert "supercronic is not installed" in stderr
    assert len([ln for ln in stderr.splitlines() if "supercronic is not installed" in ln]) == 1


def test_runner_never_overlaps_a_job_that_outlasts_its_slot(tmp_path, start_cron):
    out = tmp_path / "intervals"
    process = start_cron(
        f"* * * * * * * echo start $(date +%s.%N) >> {out}; sleep 1.5; "
        f"echo end $(date +%s.%N) >> {out}\n",
        "--no-supercronic",
    )
    assert wait_for(lambda: len(lines(out)) >= 4, timeout=15)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=10)
    events = [line.split() for line in lines(out)]
    kinds = [kind for kind, _ in events]
    # start/end strictly alternate: a second run never begins before the first ends.
    assert kinds[: len(kinds) // 2 * 2] == ["start", "end"] * (len(kinds) // 2)
    # A job that runs every few seconds skips slots while it runs: that is no warning.
    assert "ran past its slot" not in stderr and "WARNING" not in stderr


def test_sigterm_waits_for_the_running_job_then_exits_zero(tmp_path, start_cron):
    began, finished = tmp_path / "began", tmp_path / "finished"
    process = start_cron(
        f"* * * * * * * touch {began}; sleep 2; touch {finished}\n", "--no-supercronic"
    )
    assert wait_for(began.exists)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=15)
    assert process.returncode == 0
    assert finished.exists(), "runner exited before its running job finished"
    assert "waiting for running ones" in stderr


def test_failing_and_missing_commands_are_logged_and_the_runner_goes_on(tmp_path, start_cron):
    ran = tmp_path / "ran"
    process = start_cron(
        f"* * * * * * * exit 3\n* * * * * * * no-such-command-xyz\n* * * * * * * touch {ran}\n",
        "--no-supercronic",
    )
    assert wait_for(ran.exists)
    stderr = ""
    with open(process.stderr.fileno(), closefd=False) as stream:
        os.set_blocking(stream.fileno(), False)
        deadline = time.monotonic() + 10
        while not ("status 127" in stderr and "status 3 " in stderr):
            if time.monotonic() > deadline:
                break
            stderr += stream.read() or ""
            time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=10)
    assert process.returncode == 0
    assert "failed with status 3" in stderr
    assert "'no-such-command-xyz' was not found (status 127)" in stderr


def test_bad_crontab_is_one_line_and_status_2(tmp_path, start_cron):
    process = start_cron("# fine\n* * * * nope\n")
    stdout, stderr = process.communicate(timeout=10)
    assert process.returncode == 2
    assert len(stderr.strip().splitlines()) == 1
    assert "line 2" in stderr and "Traceback" not in stderr


def test_supercronic_on_path_is_execd_with_the_crontab(tmp_path, start_cron):
    """In the container supercronic is installed: the command becomes it (same PID)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "supercronic"
    fake.write_text('#!/bin/sh\necho "supercronic pid $$ args: $*"\n')
    fake.chmod(0o755)
    process = start_cron(
        "* * * * * true\n", env={"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    )
    stdout, _ = process.communicate(timeout=10)
    assert process.returncode == 0
    assert stdout.strip() == (
        f"supercronic pid {process.pid} args: -quiet -passthrough-logs {tmp_path / 'crontab'}"
    )
