"""The GINA stand-in answers like GINA and misbehaves exactly as ordered (real HTTP on loopback)."""

from __future__ import annotations

import datetime as dt
import hashlib
import http.client
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import urlencode

import h5py
import pytest

from avoviirscollector.netutil import free_port
from avoviirscollector.standins import synthetic_sdr
from avoviirscollector.standins.gina import GinaStandin, parse_range

START = dt.datetime(2024, 3, 1, 10, 0, 0)


@pytest.fixture
def files(tmp_path):
    directory = tmp_path / "gina"
    npp = synthetic_sdr.make_pass(directory, "npp", START, granules=1, segments=("GMTCO", "SVM15"))
    j01 = synthetic_sdr.make_pass(directory, "j01", START, granules=1, segments=("GITCO",))
    return directory, npp + j01


@pytest.fixture
def gina(files):
    with GinaStandin(files[0]) as standin:
        yield standin


def products(gina, **params):
    query = urlencode(params, doseq=True, safe="[]")
    with urllib.request.urlopen(f"{gina.url}?{query}", timeout=10) as answer:
        return json.loads(answer.read())


def fetch(url, headers=None):
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.status, dict(answer.headers), answer.read()


def test_synthetic_files_are_hdf5_of_the_requested_size_with_the_sdr_layout(tmp_path):
    path = synthetic_sdr.make_sdr_file(tmp_path, "SVI05", "j02", START, size=300_000)
    assert path.stat().st_size == 300_000
    with h5py.File(path) as h5:
        assert "All_Data/VIIRS-I5-SDR_All/BrightnessTemperature" in h5
        assert "Data_Products/VIIRS-I5-SDR/VIIRS-I5-SDR_Gran_0" in h5
    assert path.name.startswith("SVI05_j02_d20240301_t1000000_e1001253_b")
    assert not list(tmp_path.glob(".*")), "no temporary file is left behind"


def test_a_pass_is_consecutive_granules_of_one_platform_with_every_segment(tmp_path):
    paths = synthetic_sdr.make_pass(tmp_path, "npp", START, granules=3)
    assert len(paths) == 3 * len(synthetic_sdr.ALL_SEGMENTS)
    starts = sorted({p.name.split("_")[3] for p in paths})
    assert starts == ["t1000000", "t1001253", "t1002507"]


def test_products_json_filters_by_satellite_facility_and_dates_like_gina(gina, files):
    everything = products(gina)
    assert len(everything) == 3
    for entry in everything:
        path = files[0] / entry["url"].rsplit("/", 1)[1]
        assert entry["md5sum"] == hashlib.md5(path.read_bytes()).hexdigest()
        assert {"satellite", "facility", "size", "start_time"} <= set(entry)
    snpp = products(gina, **{"satellites[]": "snpp", "facilities[]": "gilmore"})
    assert {e["url"].rsplit("/", 1)[1][:5] for e in snpp} == {"GMTCO", "SVM15"}
    assert products(gina, **{"satellites[]": "noaa21"}) == []
    assert products(gina, **{"facilities[]": "uafgina"}) == []
    assert len(products(gina, start_date="2024-03-01", end_date="2024-03-02")) == 3
    assert products(gina, start_date="2024-03-02", end_date="2024-03-03") == []
    gina.set_facility(files[1][2].name, "uafgina")
    assert len(products(gina, **{"facilities[]": "uafgina"})) == 1


def test_files_added_while_running_are_listed_at_the_next_request(gina, files):
    assert len(products(gina)) == 3
    synthetic_sdr.make_sdr_file(files[0], "SVM16", "npp", START)
    assert len(products(gina)) == 4


def test_ranges_are_answered_with_206_content_range_and_416(gina, files):
    path = files[1][0]
    data, size = path.read_bytes(), path.stat().st_size
    status, headers, body = fetch(gina.file_url(path.name), {"Range": "bytes=100-199"})
    assert (status, headers["Content-Range"], body) == (206, f"bytes 100-199/{size}", data[100:200])
    assert fetch(gina.file_url(path.name), {"Range": "bytes=-10"})[2] == data[-10:]
    assert fetch(gina.file_url(path.name))[2] == data
    with pytest.raises(urllib.error.HTTPError) as refused:
        fetch(gina.file_url(path.name), {"Range": f"bytes={size}-"})
    assert refused.value.code == 416
    assert parse_range("bytes=5-", 10) == (5, 9)
    assert parse_range("items=1-2", 10) is None


def test_connections_are_kept_alive_and_bytes_counted(gina, files):
    path = files[1][0]
    connection = http.client.HTTPConnection(gina.host, gina.port, timeout=10)
    for _ in range(3):
        connection.request("GET", f"/data/{path.name}", headers={"Range": "bytes=0-9"})
        assert len(connection.getresponse().read()) == 10
    connection.close()
    assert gina.connections_opened == 1
    assert gina.requests[path.name] == 3
    assert gina.wait_for_bytes(30, timeout=5), "counted once sent, maybe after the client read"
    assert gina.bytes_served == 30


def test_http_errors_are_served_n_times_then_the_file(gina, files):
    path = files[1][1]
    gina.fault("error", path.name, times=2, status=503)
    for _ in range(2):
        with pytest.raises(urllib.error.HTTPError) as failed:
            fetch(gina.file_url(path.name))
        assert failed.value.code == 503
    assert fetch(gina.file_url(path.name))[2] == path.read_bytes()


def test_cut_connection_sends_fewer_bytes_than_announced(gina, files):
    path = files[1][0]
    gina.fault("cut", path.name, times=1, after=1000)
    with pytest.raises(http.client.IncompleteRead) as cut:
        fetch(gina.file_url(path.name))
    assert len(cut.value.partial) == 1000


def test_corrupt_bytes_keep_the_length_but_not_the_md5(gina, files):
    path = files[1][0]
    gina.fault("corrupt")  # every file, every time
    body = fetch(gina.file_url(path.name))[2]
    assert len(body) == path.stat().st_size and body != path.read_bytes()


def test_not_hdf5_file_has_its_own_md5_announced(gina, files, tmp_path):
    path = files[1][0]
    gina.fault("not_hdf5", path.name)
    body = fetch(gina.file_url(path.name))[2]
    entry = next(e for e in products(gina) if e["url"].endswith(path.name))
    assert entry["md5sum"] == hashlib.md5(body).hexdigest()
    copy = tmp_path / "copy.h5"
    copy.write_bytes(body)
    with pytest.raises(OSError):
        h5py.File(copy, "r")


def test_server_ignoring_range_answers_200_with_the_whole_file(gina, files):
    path = files[1][0]
    gina.fault("no_range", path.name)
    status, headers, body = fetch(gina.file_url(path.name), {"Range": "bytes=100-199"})
    assert status == 200 and "Accept-Ranges" not in headers and body == path.read_bytes()


def test_rate_limit_and_slow_fault_pace_each_connection(files):
    path = files[1][0]  # 256 kB
    with GinaStandin(files[0], rate=1_000_000) as gina:
        began = time.monotonic()
        fetch(gina.file_url(path.name))
        assert 0.2 <= time.monotonic() - began < 1.0
        gina.fault("slow", path.name, rate=2_000_000)
        began = time.monotonic()
        fetch(gina.file_url(path.name))
        assert 0.1 <= time.monotonic() - began < 0.5


def test_stall_sends_some_bytes_then_nothing(gina, files):
    path = files[1][0]
    gina.fault("stall", path.name, after=500, seconds=0.5)
    began = time.monotonic()
    with pytest.raises(http.client.IncompleteRead) as stalled:
        fetch(gina.file_url(path.name))
    assert len(stalled.value.partial) == 500 and time.monotonic() - began >= 0.5


@pytest.mark.parametrize("kind", ["malformed", "not_list", "bad_entry", "error"])
def test_products_json_faults(gina, kind):
    gina.catalog_fault(kind, times=1)
    if kind == "error":
        with pytest.raises(urllib.error.HTTPError):
            products(gina)
    else:
        with urllib.request.urlopen(gina.url, timeout=10) as answer:
            text = answer.read()
        if kind == "malformed":
            with pytest.raises(ValueError):
                json.loads(text)
        elif kind == "not_list":
            assert isinstance(json.loads(text), dict)
        else:
            assert any("md5sum" not in entry for entry in json.loads(text))
    assert len(products(gina)) == 3, "the fault was for one request only"


def test_cli_serves_a_directory_until_terminated(files):
    port = free_port()
    command = [sys.executable, "-m", "avoviirscollector.cli", "gina-standin"]
    process = subprocess.Popen(
        [*command, "--dir", str(files[0]), "--port", str(port), "--rate", "50M"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert "3 files" in process.stdout.readline()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/products.json", timeout=10) as a:
            assert len(json.loads(a.read())) == 3
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
