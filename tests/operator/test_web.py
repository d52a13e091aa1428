"""The status page's parts without a collector: rules, history store, recorder, server.

The whole page in a real browser over a real collector is tests/system/
test_system_status_page.py; here each part is checked directly and fast.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from avoviirscollector import settings as settings_module
from avoviirscollector.broker import task_store
from avoviirscollector.mirror import poll_state
from avoviirscollector.operator.web import history_rules as rules
from avoviirscollector.operator.web import history_store, recorder, server, views
from avoviirscollector.operator.web.history_rules import FileEvent

REPO = Path(__file__).resolve().parents[2]
T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC).timestamp()
PRODUCTS = {"tir": {"GITCO", "SVI05"}, "btd": {"GMTCO", "SVM15", "SVM16"}}


def event(segment: str, start: float, platform="j01", orbit=1, arrival_after=1200.0):
    name = f"{segment}_{platform}_{orbit}_{start:.0f}.h5"
    return FileEvent(name, platform, segment, orbit, start, start + arrival_after)


# ----------------------------------------------------------------- rules


def test_granules_say_per_product_which_files_are_missing():
    files = [event(s, T0) for s in ("GITCO", "SVI05", "GMTCO", "SVM16")]
    (granule,) = rules.granules_of(files, PRODUCTS, [("tir", "j01", 1, T0)])
    assert granule.missing == {"tir": [], "btd": ["SVM15"]}
    assert granule.published == {"tir"}


def test_granules_of_one_satellite_within_15_minutes_are_one_pass_newest_pass_first():
    starts = [T0, T0 + 85, T0 + 170, T0 + 6000, T0 + 6085]
    granules = rules.granules_of([event("GITCO", s, orbit=i) for i, s in enumerate(starts)], {})
    passes = rules.passes_of(granules)
    assert [len(p.granules) for p in passes] == [2, 3]
    assert passes[0].start == T0 + 6000


def test_gaps_are_pauses_over_three_hours_and_the_longest_counts_time_since_the_last_file():
    arrivals = [T0, T0 + 600, T0 + 600 + 4 * 3600]
    assert rules.gaps(arrivals) == [(T0 + 600, T0 + 600 + 4 * 3600)]
    assert rules.longest_gap(arrivals, until=arrivals[-1] + 5 * 3600) == 5 * 3600


def test_delay_buckets_are_prometheus_cumulative_buckets():
    counts = {}
    for delay in (30, 700, 700, 50000):
        bucket = rules.delay_bucket(delay)
        counts[bucket] = counts.get(bucket, 0) + 1
    cumulative = dict(rules.cumulative(counts))
    assert (cumulative["60"], cumulative["900"], cumulative["21600"]) == (1, 3, 3)
    assert cumulative["+Inf"] == 4


@pytest.mark.parametrize("raw", ["abc", "0", "-1", "2.5", "745"])
def test_bad_hours_are_refused_with_the_allowed_range(raw):
    with pytest.raises(rules.BadParameter, match="expected a whole number of hours from 1 to"):
        rules.parse_hours(raw, 24)


def test_the_recorder_reads_the_files_the_mirror_and_the_broker_write():
    assert recorder.MIRROR_LAST_RUN == poll_state.LAST_RUN_FILE
    assert recorder.BROKER_DB == task_store.DB_NAME


# ----------------------------------------------------------------- the store


def test_history_is_trimmed_by_age_and_counters_never_go_down(tmp_path):
    store = history_store.HistoryStore(tmp_path / "h.sqlite")
    store.begin()
    for day in range(10):
        store.add_file(event("GITCO", T0 - day * 86400, orbit=day), 1000)
    store.commit()
    assert store.trim(days=3, now=T0 + 1300) == 7
    reader = history_store.HistoryReader(tmp_path / "h.sqlite")
    assert len(reader.files(0)) == 3
    files = [v for name, labels, v in reader.totals() if name == "files"]
    assert files == [10]


def test_history_over_its_size_bound_loses_its_oldest_rows_first(tmp_path):
    store = history_store.HistoryStore(tmp_path / "h.sqlite", max_bytes=200_000)
    store.begin()
    for index in range(5000):
        store.add_file(event("GITCO", T0 + index * 10, orbit=index), 1000)
    store.commit()
    assert store.live_bytes() > 200_000
    store.trim(days=365, now=T0 + 50000)
    assert store.live_bytes() <= 200_000
    kept = history_store.HistoryReader(tmp_path / "h.sqlite").files(0)
    assert 0 < len(kept) < 5000
    assert kept[-1].orbit == 4999, "the newest rows stay"


def test_gina_is_failing_since_the_first_failed_run_after_the_last_answered_one(tmp_path):
    store = history_store.HistoryStore(tmp_path / "h.sqlite")
    store.begin()
    for offset, failed in ((0, []), (30, ["snpp-imagery"]), (60, ["snpp-imagery"])):
        store.add_mirror_run(
            {
                "finished": T0 + offset,
                "seconds": 1,
                "found": 0,
                "wanted": 0,
                "fetched": 0,
                "failed": 0,
                "bytes": 0,
                "queues": 1,
                "listing_failed": failed,
                "listing_ok": int(not failed),
                "listing_failures": int(bool(failed)),
                "listing_bytes": 0,
            }
        )
    store.commit()
    reader = history_store.HistoryReader(tmp_path / "h.sqlite")
    assert reader.gina_state() == (T0 + 60, T0, T0 + 30)
    model = views.mirror(reader, 0)
    assert model["gina"] == {"answering": False, "failing_since": views.iso(T0 + 30),
                             "last_run": views.iso(T0 + 60)}  # fmt: skip


# ----------------------------------------------------------------- the recorder


def file_data(path: Path, start: dt.datetime) -> dict:
    return {"uid": path.name, "uri": str(path), "orig_platform_name": "npp", "segment": "SVI05",
            "orbit_number": 7, "start_time": start, "platform_name": "Suomi-NPP"}  # fmt: skip


def test_a_broken_history_store_costs_a_log_line_and_recording_resumes_after(tmp_path, caplog):
    settings = settings_module.load({"VIIRS_BASE_DIR": str(tmp_path)})
    settings.state_dir.mkdir()
    (settings.state_dir / history_store.DB_NAME).mkdir()  # a directory: sqlite cannot open it
    rec = recorder.Recorder(settings)
    start = dt.datetime(2026, 12, 1, 9, 0)
    sdr = tmp_path / "SVI05_npp_a.h5"
    sdr.write_bytes(b"x" * 10)
    with caplog.at_level(logging.ERROR, logger="recorder"):
        for _ in range(3):
            rec.offer("file", ("/AVO/viirs/sdr", file_data(sdr, start), time.time()))
            assert rec.write(rec._drain()) == 0
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1, "rate-limited: one line, not one per batch"
    assert "1 event(s) not recorded" in lines[0] and "pipeline is not affected" in lines[0]
    (settings.state_dir / history_store.DB_NAME).rmdir()
    rec.offer("file", ("/AVO/viirs/sdr", file_data(sdr, start), time.time()))
    assert rec.write(rec._drain()) == 1
    (recorded,) = history_store.HistoryReader(rec.path).files(0)
    assert recorded.delay == pytest.approx(
        sdr.stat().st_mtime - start.replace(tzinfo=dt.UTC).timestamp()
    )


def test_a_slow_store_makes_the_recorder_drop_events_never_wait(tmp_path, monkeypatch):
    settings = settings_module.load({"VIIRS_BASE_DIR": str(tmp_path)})
    monkeypatch.setattr(recorder, "MAX_PENDING", 2)
    rec = recorder.Recorder(settings)
    rec.pending.maxsize = 2
    started = time.monotonic()
    for _ in range(100):
        rec.offer("queue", (time.time(), {"queue length": 0}))
    assert time.monotonic() - started < 0.5
    assert rec.pending.qsize() == 2


def test_a_mirror_summary_becomes_a_run_with_its_listing_requests_and_bytes():
    run = recorder.mirror_run({
        "finished": "2026-12-01T09:00:00Z", "seconds": 2.0, "found": 5, "wanted": 4,
        "fetched": 3, "failed": 1, "bytes": 4_000_000,
        "listing": [{"status": 200, "wire_bytes": 900}, {"status": 304, "wire_bytes": 300}],
        "queues": [{"queue": "snpp-imagery", "status": "ok"},
                   {"queue": "noaa20-imagery", "status": "busy"}],
    })  # fmt: skip
    assert run["finished"] == T0
    assert (run["listing_ok"], run["listing_failures"], run["listing_bytes"]) == (2, 0, 1200)
    assert run["listing_failed"] == []


def test_a_poll_whose_listing_failed_is_one_failed_request_naming_its_queues():
    run = recorder.mirror_run({
        "finished": "2026-12-01T09:00:00Z", "seconds": 0.5, "listing": [],
        "queues": [{"queue": "snpp-imagery", "status": "failed", "error": "timed out"},
                   {"queue": "snpp-moderate", "status": "failed", "error": "timed out"}],
    })  # fmt: skip
    assert (run["listing_ok"], run["listing_failures"]) == (0, 1)
    assert run["listing_failed"] == ["snpp-imagery", "snpp-moderate"]


# ----------------------------------------------------------------- the server


@pytest.fixture
def web(tmp_path):
    """The server on an empty history (no collector): the base URL."""
    context = views.Context(
        base_dir=tmp_path,
        history=tmp_path / "state" / history_store.DB_NAME,
        products=views.products_of(REPO / "etc" / "segment_gatherer.ini"),
        retention_days=7,
        socket=tmp_path / "tmp" / "supervisor.sock",
    )
    httpd = server.make_server(context, 0, "127.0.0.1")
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def request(url: str, method: str = "GET") -> tuple[int, str]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.mark.parametrize(
    "query, reason",
    [
        ("hours=abc", "hours='abc': expected a whole number of hours from 1 to 168"),
        ("hours=0", "expected a whole number of hours from 1 to 168"),
        ("hours=169", "expected a whole number of hours from 1 to 168"),
        ("colour=red", "unknown parameter 'colour' (allowed: hours)"),
        ("hours=1&hours=2", "parameter 'hours' given more than once"),
    ],
)
def test_a_bad_query_parameter_is_a_400_with_its_reason_never_a_traceback(web, query, reason):
    for path in ("/", "/api/status"):
        status, body = request(f"{web}{path}?{query}")
        assert status == 400
        assert reason in body
        assert "Traceback" not in body


def test_the_server_is_read_only_and_says_so(web):
    assert request(f"{web}/", "POST") == (405, "read-only: only GET and HEAD\n")
    assert request(f"{web}/nothing")[0] == 404


def test_an_empty_history_gives_a_page_an_api_and_metrics_that_parse(web):
    status, page = request(f"{web}/")
    assert status == 200 and "no file in this window" in page
    model = json.loads(request(f"{web}/api/status")[1])
    assert [s["satellite"] for s in model["satellites"]] == ["npp", "j01", "j02"]
    assert model["programs"]["error"].startswith("no socket")
    families = {f.name: f for f in text_string_to_metric_families(request(f"{web}/metrics")[1])}
    assert {s.labels["satellite"]: s.value for s in families["viirscollector_files"].samples} == {
        "npp": 0,
        "j01": 0,
        "j02": 0,
    }


def test_history_reader_never_writes(tmp_path):
    path = tmp_path / "h.sqlite"
    history_store.HistoryStore(path).close()
    reader = history_store.HistoryReader(path)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader._db.execute("DELETE FROM files")


def test_a_dense_series_draws_a_shared_pixel_once_and_still_counts_every_point():
    from avoviirscollector.operator.web import charts

    points = [(T0 + 60.0, 600.0)] * (charts.DEDUPLICATE_ABOVE + 1)
    svg = charts.scatter("p", "t", {"npp": points}, (T0, T0 + 3600), x_label="x", y_label="y",
                         names={})  # fmt: skip
    assert f'data-count="{len(points)}"' in svg
    assert svg.count("h0") == 1
    sparse = charts.scatter("p", "t", {"npp": points[:50]}, (T0, T0 + 3600), x_label="x",
                            y_label="y", names={})  # fmt: skip
    assert sparse.count("h0") == 50


def test_a_program_whose_start_time_changes_counts_one_restart_in_the_last_day(tmp_path):
    store = history_store.HistoryStore(tmp_path / "h.sqlite")
    store.begin()
    assert not store.program_started("trollstalker", T0, T0 + 5)  # first seen: not a restart
    assert not store.program_started("trollstalker", T0, T0 + 10)
    assert store.program_started("trollstalker", T0 + 60, T0 + 65)
    store.commit()
    reader = history_store.HistoryReader(tmp_path / "h.sqlite")
    assert reader.restarts(T0) == {"trollstalker": 1}
    assert reader.restarts(T0 + 100) == {}
    totals = {(name, json.dumps(labels)): value for name, labels, value in reader.totals()}
    assert totals[("restarts", '{"program": "trollstalker"}')] == 1
