"""Fixtures every test may use: a clean environment, a base directory, a real SMTP server."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from avoviirscollector import settings as settings_module
from avoviirscollector.netutil import free_port
from avoviirscollector.standins.smtp import SmtpStandin

#: Variables a developer's shell might export that would leak into tests.
_COLLECTOR_VARIABLES = (
    "VIIRS_BASE_DIR",
    "VIIRS_RETENTION",
    "NUM_GINA_CONNECTIONS",
    "GINA_BACKFILL_DAYS",
    "VIIRS_FACILITY",
    "GINA_URL",
    "TLE_URL",
    "TLE_CA_BUNDLE",
    "MAILHOST",
    "LOG_SENDER",
    "LOG_RECIPIENT",
    "VIIRS_MAIL_INTERVAL_MINUTES",
    "VIIRS_TASK_PORT",
    "VIIRS_STATE_PORT",
    "VIIRS_MESSAGE_PORT",
    "VIIRS_LISTEN_ADDRESS",
    "VIIRS_LOG_LEVEL",
    "GINA_POLL_FAST_SECONDS",
    "GINA_POLL_SLOW_SECONDS",
    "GINA_FULL_LISTING_MINUTES",
    "GINA_ARRIVAL_HOLD_SECONDS",
    "GINA_PASS_LATENCY_MINUTES",
    "GINA_FLOOR_RATE_KBPS",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """No test sees the collector variables of the shell that runs pytest."""
    for name in _COLLECTOR_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def base_dir(tmp_path, monkeypatch):
    """A temporary /viirs, with VIIRS_BASE_DIR pointing at it."""
    base = tmp_path / "viirs"
    base.mkdir()
    monkeypatch.setenv("VIIRS_BASE_DIR", str(base))
    return base


@pytest.fixture
def smtp_server():
    """A real SMTP server on loopback that records what it is sent."""
    server = SmtpStandin().start()
    yield server
    server.stop()


@pytest.fixture
def mail_env(smtp_server):
    """Environment variables that make programs e-mail their errors to ``smtp_server``."""
    return {
        "MAILHOST": smtp_server.address,
        "LOG_SENDER": "collector@example.org",
        "LOG_RECIPIENT": "duty@example.org,backup@example.org",
    }


@pytest.fixture
def make_settings():
    """Build Settings from a dict of variables, the way programs do from os.environ."""

    def make(**variables):
        env = {key: str(value) for key, value in variables.items()}
        return settings_module.load(env)

    return make


def pytest_configure(config):
    """Give this pytest session posttroll ports of its own and our message version.

    posttroll reads its settings from the environment when first imported; daemons
    started by tests inherit them, so concurrent test runs never share a nameserver.
    """
    os.environ.setdefault("POSTTROLL_MESSAGE_VERSION", "v1.01")
    for name in (
        "POSTTROLL_NAMESERVER_PORT",
        "POSTTROLL_ADDRESS_PUBLISH_PORT",
        "POSTTROLL_BROADCAST_PORT",
    ):
        os.environ.setdefault(name, str(free_port()))


@pytest.fixture(scope="module")
def module_base():
    """A base directory under /tmp with a short name, shared by one module's daemons.

    Short, so the paths of unix sockets below it stay under the 107-byte AF_UNIX limit.
    """
    path = Path(tempfile.mkdtemp(prefix="v"))
    for name in ("sdr", "tmp", "log"):
        (path / name).mkdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def module_nameserver(module_base):
    """The collector's posttroll nameserver, for one module's daemons."""
    # Imported here, not at the top: it imports posttroll, which reads its ports from the
    # environment once, and pytest_configure sets them only after this file is imported.
    from helpers.bus import Daemon, daemon_env, nameserver_argv

    daemon = Daemon(
        nameserver_argv(), daemon_env(module_base), module_base / "log" / "nameserver.log"
    )
    yield daemon
    daemon.stop()
