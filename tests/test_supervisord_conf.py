"""supervisord.conf as supervisord itself reads it, and ``viirscollector run``'s checks.

The running collector is tested in test_pipeline.py; here supervisor's own parser
reads the real file, and ``viirscollector run`` is run for its error paths.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from supervisor.datatypes import RestartUnconditionally
from supervisor.options import EventListenerPoolConfig, ServerOptions

from avoviirscollector import run, settings

REPO = Path(__file__).resolve().parent.parent
CONF = REPO / "supervisord.conf"
PROGRAMS = {
    "nameserver": "viirscollector nameserver",
    "trollstalker": "viirscollector stalker",
    "segment_gatherer-viirs_tir": "viirscollector gatherer viirs_tir",
    "segment_gatherer-viirs_vis": "viirscollector gatherer viirs_vis",
    "segment_gatherer-viirs_btd": "viirscollector gatherer viirs_btd",
    "segment_gatherer-viirs_mir": "viirscollector gatherer viirs_mir",
    "task_broker": "task_broker",
    "msg_publisher": "msg_publisher",
    "supercronic": "viirscollector cron {config}/crontab",
    "recorder": "viirscollector recorder",
    "web": "viirscollector web",
}


@pytest.fixture
def short_base():
    """A base directory short enough for supervisord's AF_UNIX socket path."""
    path = Path(tempfile.mkdtemp(prefix="v"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def options(short_base, monkeypatch):
    """supervisord.conf as supervisord parses it, for a base directory with its layout."""
    for name in settings.LAYOUT:
        (short_base / name).mkdir()
    monkeypatch.setenv("VIIRS_BASE_DIR", str(short_base))
    monkeypatch.setenv("VIIRS_CONFIG_DIR", str(REPO))
    parsed = ServerOptions()
    parsed.realize(args=["-c", str(CONF)])
    return parsed


def programs(options) -> dict:
    return {
        p.name: p
        for group in options.process_group_configs
        if not isinstance(group, EventListenerPoolConfig)
        for p in group.process_configs
    }


def listeners(options) -> dict:
    return {
        group.name: group
        for group in options.process_group_configs
        if isinstance(group, EventListenerPoolConfig)
    }


def test_replay_listener_hears_every_restart_and_logs_its_stderr(options, short_base):
    """Event listeners' stdout is supervisord's protocol: their log is stderr, named."""
    assert sorted(listeners(options)) == ["replay_listener"]
    group = listeners(options)["replay_listener"]
    assert [e.__name__ for e in group.pool_events] == ["ProcessStateRunningEvent"]
    (listener,) = group.process_configs
    assert listener.command == "viirscollector replay-listener"
    assert listener.autorestart is RestartUnconditionally
    assert listener.umask == 0o022
    assert listener.stdout_logfile is None
    assert listener.stderr_logfile == str(short_base / "log" / "replay_listener.log")


def test_every_program_of_the_collector_is_configured(options):
    found = programs(options)
    assert sorted(found) == sorted(PROGRAMS)
    for name, command in PROGRAMS.items():
        assert found[name].command == command.format(config=REPO)


def test_every_program_restarts_and_logs_to_its_own_file(options, short_base):
    for name, program in programs(options).items():
        assert program.autorestart is RestartUnconditionally, name
        assert program.redirect_stderr, name
        assert program.stdout_logfile == str(short_base / "log" / f"{name}.log")
        assert program.environment["POSTTROLL_MESSAGE_VERSION"] == "v1.01"


def test_supervisor_issue_123_logs_are_named_explicitly_with_umask_022(options):
    """supervisord creates AUTO child logs 0600 whatever the umask (supervisor #123).

    Named logs are created under supervisord's umask: 022 gives 0644 (checked on a
    running collector in test_pipeline.py).
    """
    assert options.umask == 0o022
    for name, program in programs(options).items():
        assert program.stdout_logfile not in (None, "AUTO"), name
        assert program.umask == 0o022, name


def test_supervisord_runs_in_the_foreground_with_its_log_and_socket_under_the_base(
    options, short_base
):
    assert options.nodaemon is True
    assert options.logfile == str(short_base / "log" / "supervisord.log")
    assert options.logfile_maxbytes == 10 * 1024 * 1024
    assert options.logfile_backups == 3
    assert options.server_configs[0]["file"] == str(short_base / "tmp" / "supervisor.sock")


def test_gatherers_stop_on_signals_they_obey_at_once(options):
    for name, program in programs(options).items():
        assert program.stopsignal == signal.SIGTERM, name
        assert program.stopasgroup and program.killasgroup, name


def _run(base: Path, **env) -> subprocess.CompletedProcess:
    environment = dict(os.environ, VIIRS_BASE_DIR=str(base), **env)
    return subprocess.run(
        [sys.executable, "-m", "avoviirscollector.cli", "run"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_run_refuses_a_base_directory_it_cannot_write_in_one_line(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    result = _run(tmp_path / "file" / "viirs")
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "is not writable" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_says_which_supervisord_conf_is_missing(short_base, tmp_path):
    result = _run(short_base, VIIRS_CONFIG_DIR=str(tmp_path))
    assert result.returncode == 1
    assert f"{tmp_path / 'supervisord.conf'} is missing" in result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr


def test_run_refuses_a_socket_path_longer_than_af_unix_allows(tmp_path):
    long_base = tmp_path / ("x" * 120)
    result = _run(long_base)
    assert result.returncode == 1
    assert "longer than 107 bytes" in result.stderr


def test_run_rejects_a_bad_variable_with_the_settings_message(short_base):
    result = _run(short_base, VIIRS_MESSAGE_PORT="port")
    assert result.returncode == 2
    assert "VIIRS_MESSAGE_PORT='port' is not valid" in result.stderr


def test_prepare_creates_the_layout_and_environment_is_absolute(short_base, make_settings):
    config = make_settings(VIIRS_BASE_DIR=str(short_base / "viirs"))
    conf = run.prepare(config)
    assert conf == config.config_dir / "supervisord.conf"
    assert sorted(p.name for p in (short_base / "viirs").iterdir()) == sorted(settings.LAYOUT)
    env = run.environment(config)
    assert env["VIIRS_BASE_DIR"] == str(short_base / "viirs")
    assert Path(env["VIIRS_CONFIG_DIR"]).is_absolute()
