"""`viirscollector fetch-tle` against the Celestrak stand-in: only when changed, never worse."""

from __future__ import annotations

import datetime as dt
import email.utils
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.privileges import drop_capabilities, is_root

from avoviirscollector.jobs import tle
from avoviirscollector.standins.celestrak import TleStandin, element_set, sample_elements

EPOCH = dt.datetime(2024, 3, 2, tzinfo=dt.UTC)
CLI = [sys.executable, "-m", "avoviirscollector.cli"]
ISS = (
    "ISS (ZARYA)\n"
    "1 25544U 98067A   08264.51782528 -.00002182  00000-0 -11606-4 0  2927\n"
    "2 25544  51.6416 247.4627 0006703 130.5360 325.0288 15.72125391563537\n"
)


@pytest.fixture
def standin():
    server = TleStandin().start()
    yield server
    server.stop()


def fetch_tle(base: Path, url: str, **env):
    variables = {**os.environ, "VIIRS_BASE_DIR": str(base), "TLE_URL": url, **env}
    return subprocess.run(
        [*CLI, "fetch-tle"], env=variables, capture_output=True, text=True, timeout=60
    )


# -- the checks (pure) -----------------------------------------------------------------


def test_checksum_of_a_published_element_set():
    lines = ISS.splitlines()
    assert tle.checksum(lines[1]) == 7 and tle.checksum(lines[2]) == 7
    assert tle.validate(ISS) == 1


def test_stand_in_elements_are_valid_and_name_lines_are_optional():
    assert tle.validate(sample_elements()) == 6
    without_names = "\n".join(ln for ln in ISS.splitlines() if ln[0] in "12")
    assert tle.validate(without_names + "\r\n\n") == 1


@pytest.mark.parametrize(
    "text, reason",
    [
        (ISS.replace("2927", "2928"), "checksum"),
        (ISS.replace("  2927", " 2927"), "69 characters"),
        (
            element_set("A", 11111, EPOCH).splitlines()[1]
            + "\n"
            + element_set("A", 22222, EPOCH).splitlines()[2],
            "catalog numbers differ",
        ),
        ("<html><body>Service unavailable</body></html>", "neither a satellite name"),
        ("", "no element sets"),
        ("\n".join(ISS.splitlines()[:2]), "incomplete"),
    ],
)
def test_invalid_elements_are_refused_with_the_reason(text, reason):
    with pytest.raises(tle.TleError, match=reason):
        tle.validate(text)


# -- downloads ---------------------------------------------------------------------------


def test_first_fetch_writes_file_with_servers_time_then_conditional_requests_get_304(
    base_dir, standin
):
    standin.set_body(sample_elements(), last_modified=time.time() - 3600)
    first = fetch_tle(base_dir, standin.url)
    assert first.returncode == 0, first.stderr
    target = base_dir / "elements" / "noaa.txt"
    assert target.read_bytes() == standin.body
    assert target.stat().st_mtime == standin.last_modified  # as wget -N does
    assert "TLEs for 6 satellites written" in first.stderr
    inode = target.stat().st_ino

    second = fetch_tle(base_dir, standin.url)
    assert second.returncode == 0, second.stderr
    headers = standin.requests[-1]
    assert headers["If-None-Match"] == standin.etag
    assert email.utils.parsedate_to_datetime(headers["If-Modified-Since"]).timestamp() == (
        standin.last_modified
    )
    assert "unchanged" in second.stderr
    assert target.stat().st_ino == inode


def test_the_original_collector_s_noaa_txt_is_kept_and_used_until_celestrak_has_newer(
    base_dir, standin
):
    """The original's ``wget -N`` left elements/noaa.txt with Celestrak's Last-Modified as
    its mtime and no state/tle.json: the first fetch asks If-Modified-Since that time, gets
    304 and keeps the file as it is; only newer elements replace it."""
    target = base_dir / "elements" / "noaa.txt"
    target.parent.mkdir()
    target.write_bytes(standin.body)
    os.utime(target, (standin.last_modified, standin.last_modified))
    before = (target.read_bytes(), target.stat().st_mtime, target.stat().st_ino)

    kept = fetch_tle(base_dir, standin.url)

    assert kept.returncode == 0, kept.stderr
    assert "If-None-Match" not in standin.requests[-1]
    assert (target.read_bytes(), target.stat().st_mtime, target.stat().st_ino) == before
    assert "unchanged" in kept.stderr
    standin.set_body(sample_elements() + ISS, last_modified=time.time() + 5)
    assert fetch_tle(base_dir, standin.url).returncode == 0
    assert target.read_bytes() == standin.body


@pytest.mark.skipif(not is_root(), reason="needs root to own a file as another UID")
def test_an_unreadable_noaa_txt_of_another_uid_is_replaced_not_a_failure(base_dir, standin):
    target = base_dir / "elements" / "noaa.txt"
    target.parent.mkdir()
    target.write_text("the original's elements\n")
    older = standin.last_modified - 3600  # Celestrak has newer elements since
    os.utime(target, (older, older))
    os.chown(target, 12345, 12345)
    target.chmod(0o600)
    env = {**os.environ, "VIIRS_BASE_DIR": str(base_dir), "TLE_URL": standin.url}
    result = subprocess.run(
        [*CLI, "fetch-tle"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=drop_capabilities,  # reads the file as UID 2001 would: permission denied
    )
    assert result.returncode == 0, result.stderr
    assert target.read_bytes() == standin.body


def test_changed_elements_replace_the_file(base_dir, standin):
    assert fetch_tle(base_dir, standin.url).returncode == 0
    newer = sample_elements() + element_set("NOAA 99", 99999, EPOCH)
    standin.set_body(newer, last_modified=time.time() + 5)
    result = fetch_tle(base_dir, standin.url)
    assert result.returncode == 0, result.stderr
    assert (base_dir / "elements" / "noaa.txt").read_text() == newer
    assert "TLEs for 7 satellites written" in result.stderr


@pytest.mark.parametrize("fault", ["500", "truncated", "corrupt", "html", "stall"])
def test_any_failure_keeps_the_old_file_untouched(base_dir, standin, fault, monkeypatch):
    target = base_dir / "elements" / "noaa.txt"
    meta = base_dir / "state" / "tle.json"
    tle.fetch(standin.url, target, meta)
    before = (target.read_bytes(), target.stat().st_mtime, target.stat().st_ino)
    standin.set_body(sample_elements() + ISS, last_modified=time.time() + 60)  # a newer copy
    standin.fault = fault
    standin.stall_seconds = 3
    monkeypatch.setattr(tle, "READ_TIMEOUT", 1.0)
    with pytest.raises(Exception):  # noqa: B017 - each fault raises its own kind
        tle.fetch(standin.url, target, meta)
    assert (target.read_bytes(), target.stat().st_mtime, target.stat().st_ino) == before
    assert list(target.parent.glob(".*.part")) == []


def test_failure_is_a_warning_while_the_file_is_fresh_and_an_error_when_stale(base_dir, standin):
    assert fetch_tle(base_dir, standin.url).returncode == 0
    standin.fault = "500"
    fresh = fetch_tle(base_dir, standin.url)
    assert fresh.returncode == 1
    assert " WARNING " in fresh.stderr and "HTTP status 500" in fresh.stderr
    assert "keeping" in fresh.stderr and "Traceback" not in fresh.stderr
    target = base_dir / "elements" / "noaa.txt"
    old = time.time() - (tle.STALE_AFTER_HOURS + 1) * 3600
    os.utime(target, (old, old))
    stale = fetch_tle(base_dir, standin.url)
    assert stale.returncode == 1 and " ERROR " in stale.stderr


def test_unreachable_server_with_no_file_yet_is_one_error_line(base_dir):
    from avoviirscollector.netutil import free_port

    result = fetch_tle(base_dir, f"http://127.0.0.1:{free_port()}/gp.php")
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "none in" in errors[0]


def test_leftover_part_files_of_a_killed_run_are_removed(base_dir, standin):
    elements = base_dir / "elements"
    elements.mkdir()
    leftover = elements / ".noaa.txt.abc123.part"
    leftover.write_text("half")
    os.utime(leftover, (time.time() - 7200, time.time() - 7200))
    assert fetch_tle(base_dir, standin.url).returncode == 0
    assert not leftover.exists()


@pytest.fixture
def tls_standin(tmp_path):
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl command not installed: cannot make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost"]
        + ["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    server = TleStandin(certfile=cert, keyfile=key).start()
    yield server, cert
    server.stop()


def test_custom_ca_bundle_is_trusted_and_without_it_the_download_is_refused(base_dir, tls_standin):
    server, cert = tls_standin
    refused = fetch_tle(base_dir, server.url)
    assert refused.returncode == 1 and "SSL" in refused.stderr
    assert not (base_dir / "elements" / "noaa.txt").exists()
    trusted = fetch_tle(base_dir, server.url, TLE_CA_BUNDLE=str(cert))
    assert trusted.returncode == 0, trusted.stderr
    assert (base_dir / "elements" / "noaa.txt").read_bytes() == server.body
