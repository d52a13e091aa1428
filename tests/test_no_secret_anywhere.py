"""Issue 12.7: no credential of a URL setting reaches a log, error, mail, state file, status
or the status page.

The programs that use a URL (mirror_gina with GINA_URL, fetch-tle with TLE_URL) run
against the real stand-ins with a password and a token in every URL, through a failure
(an ERROR that is logged and mailed, naming the URL) and a success; then ``status`` and
the status page (``viirscollector web``: the page, its JSON API and /metrics) read what
they left. Every byte they wrote or served anywhere is searched for the secrets.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
import urllib.request

import pytest
from helpers.processes import terminate_then_kill

from avoviirscollector.netutil import free_port
from avoviirscollector.standins import synthetic_sdr
from avoviirscollector.standins.celestrak import TleStandin
from avoviirscollector.standins.gina import GinaStandin

CLI = [sys.executable, "-m", "avoviirscollector.cli"]
SECRETS = ("hunter2", "tok3nvalue", "s3cr3tpw", "BEARERTOKEN42")


@pytest.fixture
def gina(tmp_path):
    directory = tmp_path / "gina"
    synthetic_sdr.make_pass(directory, "npp", granules=1, segments=("GITCO", "SVI05"), size=50_000)
    with GinaStandin(directory) as standin:
        yield standin


@pytest.fixture
def celestrak():
    server = TleStandin().start()
    yield server
    server.stop()


def with_credentials(url: str, userinfo: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{userinfo}@{rest}"


def run(command: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *command], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_no_credential_in_logs_state_files_mails_or_status_output(
    base_dir, gina, celestrak, smtp_server, mail_env
):
    for name in ("state", "log", "sdr", "tmp", "elements"):
        (base_dir / name).mkdir()
    env = {
        **os.environ,
        **mail_env,
        "VIIRS_BASE_DIR": str(base_dir),
        "GINA_URL": with_credentials(gina.url, "gina:hun@ter2") + "?token=tok3nvalue",
        "TLE_URL": with_credentials(celestrak.url, "BEARERTOKEN42") + "&password=s3cr3tpw",
    }
    outputs = []
    gina.catalog_fault("error", status=503)
    outputs.append(run(["mirror"], env))  # an ERROR naming the URL, mailed
    gina.clear_faults()
    outputs.append(run(["mirror"], env))
    celestrak.fault = "500"
    outputs.append(run(["fetch-tle"], env))  # no TLE yet: an ERROR, mailed
    celestrak.fault = None
    outputs.append(run(["fetch-tle"], env))
    outputs.append(run(["status", "--socket", str(base_dir / "tmp" / "none.sock")], env))
    assert outputs[3].returncode == 0, outputs[3].stderr
    assert len(smtp_server.wait_for(2)) >= 2, "the failures were mailed"

    texts = {f"output of {o.args[3:]}": o.stdout + o.stderr for o in outputs}
    texts.update(status_page(env))
    assert "<title>VIIRS collector status</title>" in texts["page /"]
    assert "# TYPE " in texts["page /metrics"] and texts["page /api/status"].startswith("{")
    texts.update({f"mail {m['Subject']}": m.as_string() for m in smtp_server.messages})
    for path in base_dir.rglob("*"):
        if path.is_file():
            texts[str(path)] = path.read_bytes().decode("utf-8", "replace")
    assert "://***@127.0.0.1:" in texts[str(base_dir / "state" / "tle.json")], "kept redacted"
    leaks = [(where, s) for where, text in texts.items() for s in SECRETS if s in text]
    assert leaks == []
    meta = base_dir / "state" / "tle.json"
    assert stat.S_IMODE(meta.stat().st_mode) == 0o600, "state/tle.json is not world-readable"


def status_page(env: dict) -> dict[str, str]:
    """What ``viirscollector web`` serves on this base directory: page, API, metrics."""
    port = free_port()
    web = subprocess.Popen(
        [*CLI, "web"], env={**env, "VIIRS_WEB_PORT": str(port)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    served = {}
    try:
        for path in ("/", "/api/status", "/metrics"):
            served[f"page {path}"] = fetch(f"http://127.0.0.1:{port}{path}", web)
    finally:
        terminate_then_kill(web)
    served["output of web"] = web.stdout.read()
    return served


def fetch(url: str, web: subprocess.Popen, timeout: float = 30) -> str:
    """The body at ``url`` once the web program answers (it starts in about a second)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                return answer.read().decode("utf-8", "replace")
        except OSError:
            if web.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.1)  # the server offers no readiness event but its port
