"""Fixtures of the system tests: the collector under its real supervisord.conf, and GINA.

Every test starts ``viirscollector run`` (supervisord with the repository's
supervisord.conf) on a short temporary base directory with ports of its own,
errors mailed to the real SMTP server of tests/conftest.py, and GINA_URL pointing
at a GINA stand-in when the test has one. The cron program is stopped unless a
test asks for it, so mirror_gina runs exactly when the test runs it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from avoviirscollector.operator.collector_process import PROGRAMS, CollectorProcess
from avoviirscollector.standins.gina import GinaStandin


@pytest.fixture
def short_dir():
    """A directory with a short path (supervisord's AF_UNIX socket holds 107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="vs", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def gina(short_dir):
    """A GINA stand-in serving ``short_dir/gina``."""
    (short_dir / "gina").mkdir()
    with GinaStandin(short_dir / "gina") as standin:
        yield standin


@pytest.fixture
def start_collector(short_dir, mail_env):
    """``start(base=None, gina=None, cron=False, preexec_fn=None, **env)``: a running
    collector, stopped after."""
    started: list[CollectorProcess] = []

    def start(
        base: Path | None = None,
        gina: GinaStandin | None = None,
        cron=False,
        preexec_fn=None,
        **extra,
    ):
        env = {**os.environ, **mail_env, **extra}
        if gina is not None:
            env["GINA_URL"] = gina.url
        collector = CollectorProcess(base or short_dir / "viirs", env=env, preexec_fn=preexec_fn)
        started.append(collector)
        collector.start(PROGRAMS, timeout=90)
        if not cron:
            collector.rpc().supervisor.stopProcess("supercronic", True)
        collector.wait_subscribed()
        return collector

    yield start
    for collector in started:
        collector.stop()
