"""The status page as a person sees it: the demo-sized flow, a real headless Chromium.

The real collector under the real supervisord.conf (recorder and web included), the
GINA stand-in serving the demo's pass (three granules each of Suomi-NPP and NOAA-20),
mirror_gina run once, plus a NOAA-21 granule that lacks its SVM15 file, then a worker
taking every task (one of them leased and acknowledged). Then Debian's Chromium opens
the page: a row per satellite, a dot per file on the delay plot, the queue plot, the
missing file shown as missing, no console error; /metrics' counters match what was
planted, and the JSON API says what the page shows.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
import zmq
from helpers.bus import wait_until
from helpers.chromium import Chromium, executable
from prometheus_client.parser import text_string_to_metric_families

from avoviirscollector.operator.collector_process import GATHERERS
from avoviirscollector.operator.demo import make_pass
from avoviirscollector.standins.synthetic_sdr import ALL_SEGMENTS
from avoviirscollector.standins.synthetic_sdr import make_pass as write_granules

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(executable() is None, reason="Debian's chromium is not installed"),
]

PRODUCTS = ("btd", "mir", "tir", "vis")


def get(url: str) -> tuple[int, bytes]:
    """Status and body, for 4xx/5xx too."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def take_every_task(port: int) -> int:
    """A worker: the first task with a lease (then acknowledged), the rest without."""
    context = zmq.Context()
    taken = 0
    try:
        while True:
            sock = context.socket(zmq.REQ)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.RCVTIMEO, 10000)
            sock.connect(f"tcp://127.0.0.1:{port}")
            request = {"desired products": list(PRODUCTS)}
            if taken == 0:
                request["lease"] = 60
            sock.send_json(request)
            reply = sock.recv()
            if not reply:
                sock.close()
                return taken
            if taken == 0:
                task_id = json.loads(reply.decode().split(" ", 6)[-1])["task_id"]
                sock.send_json({"ack": task_id})
                assert sock.recv() == b"ok"
            taken += 1
            sock.close()
    finally:
        context.term()


@pytest.fixture
def flow(short_dir, gina, start_collector):
    """The collector after the demo's pass, a NOAA-21 granule without SVM15, and a worker."""
    planted = {"npp": 0, "j01": 0, "j02": 0}
    for path in make_pass(gina.directory):
        planted[path.name.split("_")[1]] += 1
    collector = start_collector(gina=gina, VIIRS_RETENTION="7")
    collector.wait_subscribed(
        {"trollstalker": ("recorder",), **{g: ("recorder",) for g in GATHERERS}}
    )
    start = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0) - dt.timedelta(minutes=40)
    segments = tuple(s for s in ALL_SEGMENTS if s != "SVM15")
    for path in write_granules(
        collector.base_dir / "tmp", "j02", start, granules=1, segments=segments, size=20_000
    ):
        os.replace(path, collector.sdr_dir / path.name)
        planted["j02"] += 1
    mirror = subprocess.run(
        [sys.executable, "-m", "avoviirscollector.cli", "mirror"],
        env=collector.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert mirror.returncode == 0, mirror.stdout + mirror.stderr
    api = f"{collector.wait_web()}api/status"

    def recorded() -> dict | None:
        status, body = get(api)
        model = json.loads(body) if status == 200 else {}
        return model if len(model.get("delays", [])) == sum(planted.values()) else None

    wait_until(recorded, 60, "every planted file in the history")
    # every granule published (the broker then holds its tasks), then the worker takes them
    wait_until(
        lambda: sum(g["published"] for p in recorded()["passes"] for g in _cells(p)) >= 24,
        60,
        "the gatherers' granule messages",
    )
    wait_until(lambda: (recorded()["queue"]["now"] or {}).get("length"), 60, "a queue sample")
    taken = wait_until(lambda: take_every_task(collector.task_port), 30, "tasks for the worker")
    wait_until(
        lambda: sum(t["tasks_handed_out"] for t in recorded()["tasks"].values()) == taken,
        60,
        "the hand-outs in the history",
    )
    wait_until(lambda: recorded()["mirror"]["runs"], 30, "the mirror run in the history")
    # the queue empty again (sampled on change): the page and the API then agree on it
    wait_until(lambda: recorded()["queue"]["now"]["length"] == 0, 90, "the empty queue sampled")
    return collector, planted, taken


def _cells(one_pass: dict):
    for granule in one_pass["granules"]:
        yield from granule["products"].values()


def dots_per_series(browser) -> dict:
    return browser.evaluate(
        "Object.fromEntries([...document.querySelectorAll('#delay-plot path.pts')].map("
        "p => [p.dataset.series, (p.getAttribute('d').match(/M/g) || []).length]))"
    )


def test_the_page_shows_every_satellite_each_file_the_queue_and_a_missing_file(flow, tmp_path):
    collector, planted, taken = flow
    model = json.loads(get(f"{collector.web_url}api/status")[1])
    with Chromium(tmp_path) as browser:
        seconds = browser.open(collector.web_url)
        rows = browser.evaluate(
            "[...document.querySelectorAll('tr.satellite')].map(r => "
            "[r.dataset.satellite, ...[...r.cells].map(c => c.innerText)])"
        )
        dots = dots_per_series(browser)
        queue_lines = browser.evaluate(
            "[...document.querySelectorAll('#queue-plot polyline.series')].map(p => "
            "[p.dataset.series, p.getAttribute('points').split(' ').length])"
        )
        missing = browser.evaluate(
            "[...document.querySelectorAll('td.missing')].filter(c => c.offsetParent !== null)"
            ".map(c => c.innerText)"
        )
        queue_now = browser.evaluate("document.getElementById('queue-now').innerText")
        tasks = browser.evaluate(
            "Object.fromEntries([...document.querySelectorAll('#tasks-table tr[data-product]')]"
            ".map(r => [r.dataset.product, +r.cells[2].innerText]))"
        )
        shot = browser.screenshot(tmp_path / "status-page.png")
        errors = browser.errors
    assert errors == [], errors
    assert shot.stat().st_size > 20_000
    assert seconds < 5
    # a row per satellite, with what the API says
    assert [row[0] for row in rows] == ["npp", "j01", "j02"]
    for row, satellite in zip(rows, model["satellites"], strict=True):
        assert row[1] == satellite["name"]
        assert int(row[4]) == satellite["files_in_window"] == planted[row[0]]
        assert row[-1] == satellite["last_file"]
    # a dot per planted file, per satellite
    assert dots == planted
    assert len(model["delays"]) == sum(planted.values())
    # the queue over time, a line per product
    assert sorted(series for series, _ in queue_lines) == list(PRODUCTS)
    assert all(points >= 2 for _, points in queue_lines), queue_lines
    assert queue_now.startswith(f"{model['queue']['now']['length']} task(s) waiting")
    # the NOAA-21 granule lacks SVM15: btd is missing it, and nothing else is missing
    assert missing == ["missing SVM15"]
    assert tasks == {p: t["tasks_handed_out"] for p, t in model["tasks"].items()}
    assert sum(tasks.values()) == taken
    assert_metrics_count_what_was_planted(collector, planted, taken)


def assert_metrics_count_what_was_planted(collector, planted, taken):
    """/metrics parses with prometheus_client's own parser; its counters are the planted."""
    status, body = get(f"{collector.web_url}metrics")
    assert status == 200
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    files = {s.labels["satellite"]: s.value for s in families["viirscollector_files"].samples}
    assert files == planted
    delays = families["viirscollector_acquisition_delay_seconds"].samples
    counts = {s.labels["satellite"]: s.value for s in delays if s.name.endswith("_count")}
    assert counts == planted
    handed = families["viirscollector_tasks_handed_out"].samples
    assert sum(s.value for s in handed) == taken
    listing = {
        s.labels["result"]: s.value
        for s in families["viirscollector_gina_listing_requests"].samples
    }
    assert listing["ok"] >= 1 and listing["failed"] == 0
    up = {s.labels["program"]: s.value for s in families["viirscollector_program_up"].samples}
    assert up["web"] == up["recorder"] == up["trollstalker"] == 1
    assert families["viirscollector_disk_used_bytes"].samples[0].value > 0
    assert "example.org" not in body.decode() and "127.0.0.1" not in body.decode()
