"""The mirror's rules: GINA's query, what its answer means, what to fetch in which order."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from avoviirscollector import filenames
from avoviirscollector.mirror import gina_catalog
from avoviirscollector.mirror.gina_catalog import CatalogError, Product, Queue, QueueConfigError

REPO = Path(__file__).resolve().parents[2]
MODERATE = ("GMTCO", "SVM03", "SVM04", "SVM05", "SVM15", "SVM16")
QUEUE = Queue("snpp-moderate", "snpp", MODERATE)
MD5 = "0123456789abcdef0123456789abcdef"


def name(segment, start, platform="npp", orbit=70000):
    end = start + dt.timedelta(seconds=85)
    return filenames.compose(segment, platform, start, end, orbit, start + dt.timedelta(minutes=9))


def product(file_name):
    return Product(f"http://gina.example/data/{file_name}", MD5, file_name)


def test_query_is_the_original_query_with_backfill_window_ending_tomorrow():
    params = gina_catalog.query(QUEUE, "gilmore", 2, dt.date(2024, 3, 1))
    assert params == [
        ("action", "index"),
        ("commit", "Get Products"),
        ("controller", "products"),
        ("start_date", "2024-02-29"),
        ("end_date", "2024-03-02"),
        ("sensors[]", "viirs"),
        ("processing_levels[]", "level1"),
        ("facilities[]", "gilmore"),
        ("satellites[]", "snpp"),
    ]


def test_query_leaves_facility_out_for_any():
    params = dict(gina_catalog.query(QUEUE, "any", 0, dt.date(2024, 3, 1)))
    assert "facilities[]" not in params
    assert params["start_date"] == params["end_date"] == "2024-03-02"


def test_query_url_keeps_brackets_and_encodes_the_rest():
    params = gina_catalog.query(QUEUE, "uafgina", 1, dt.date(2024, 3, 1))
    url = gina_catalog.query_url("http://nrt-status.gina.alaska.edu/products.json", params)
    assert "commit=Get+Products" in url and "satellites[]=snpp" in url
    assert parse_qsl(urlsplit(url).query) == [(k, v) for k, v in params]


def test_products_answer_with_extra_fields_is_parsed_and_duplicates_dropped():
    entry = {"url": "http://g/data/a.h5", "md5sum": MD5.upper(), "size": 5, "facility": "gilmore"}
    products, problems = gina_catalog.parse_products(json.dumps([entry, entry]))
    assert products == [Product("http://g/data/a.h5", MD5, "a.h5")]
    assert problems == []


@pytest.mark.parametrize(
    "body, message",
    [
        (b"<html>502 Bad Gateway</html>", "not JSON"),
        (b'[{"url": "http://g/a.h5", ', "not JSON"),
        (b'{"error": "database down"}', "not a list"),
        (b"\xff\xfe", "not JSON"),
    ],
)
def test_answer_that_is_not_a_json_list_fails_the_queue_with_a_clear_message(body, message):
    with pytest.raises(CatalogError, match=message):
        gina_catalog.parse_products(body)


def test_one_bad_entry_is_skipped_with_a_problem_and_the_rest_goes_on():
    entries = [
        {"url": "http://g/data/good.h5", "md5sum": MD5},
        {"url": "http://g/data/no-md5.h5"},
        {"url": "http://g/data/short-md5.h5", "md5sum": "abc"},
        {"md5sum": MD5},
        {"url": "ftp://g/data/x.h5", "md5sum": MD5},
        {"url": "http://g/", "md5sum": MD5},
        "not an object",
    ]
    products, problems = gina_catalog.parse_products(json.dumps(entries))
    assert [p.name for p in products] == ["good.h5"]
    assert len(problems) == 6
    assert any("no-md5.h5 without a usable md5sum" in p for p in problems)
    assert any("without a usable url" in p for p in problems)


def test_select_keeps_queue_bands_missing_from_sdr_newest_granule_first_geolocation_first():
    old, new = dt.datetime(2024, 3, 1, 10, 0, 0), dt.datetime(2024, 3, 1, 10, 1, 25)
    names = [
        name("SVM15", old),
        name("GMTCO", old),
        name("SVI05", new),  # imagery: not this queue's
        name("SVM03", new),
        name("GMTCO", new),
        name("SVM16", new),
    ]
    present = [name("SVM16", new)]
    wanted, problems = gina_catalog.select([product(n) for n in names], QUEUE, present)
    assert [w.name[:5] for w in wanted] == ["GMTCO", "SVM03", "GMTCO", "SVM15"]
    assert [filenames.parse(w.name).start for w in wanted] == [new, new, old, old]
    assert problems == []


def test_select_reports_a_wanted_band_with_an_unparsable_name():
    wanted, problems = gina_catalog.select([product("SVM15_garbage.h5")], QUEUE, [])
    assert wanted == []
    assert "does not match" in problems[0]


starts = st.datetimes(min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2030, 1, 1)).map(
    lambda t: t.replace(microsecond=0)
)


@given(st.lists(st.tuples(st.sampled_from(MODERATE), starts), max_size=30))
def test_every_granule_is_ordered_newest_first_with_its_geolocation_before_its_bands(files):
    products = [product(name(segment, start)) for segment, start in files]
    wanted, _ = gina_catalog.select(products, QUEUE, [])
    parsed = [filenames.parse(w.name) for w in wanted]
    assert [p.start for p in parsed] == sorted((p.start for p in parsed), reverse=True)
    for before, after in zip(parsed, parsed[1:], strict=False):
        if before.granule == after.granule:
            assert before.is_geolocation or not after.is_geolocation


def test_shipped_queue_file_has_moderate_and_imagery_queues_for_three_satellites():
    queues = gina_catalog.parse_queues(yaml.safe_load((REPO / "etc/gina_queues.yaml").read_text()))
    assert {(q.satellite, q.bands) for q in queues} == {
        (sat, bands)
        for sat in ("snpp", "noaa20", "noaa21")
        for bands in (MODERATE, ("GITCO", "SVI01", "SVI04", "SVI05"))
    }
    assert all(q.enabled for q in queues)
    assert {q.platform for q in queues} == {"npp", "j01", "j02"}


@pytest.mark.parametrize(
    "document, message",
    [
        ({}, "top-level 'queues:' list"),
        ({"queues": [{"name": "a", "satellite": "metop", "bands": ["SVM15"]}]}, "'satellite'"),
        ({"queues": [{"name": "a", "satellite": "snpp", "bands": "SVM15"}]}, "'bands'"),
        ({"queues": [{"name": "a", "satellite": "snpp", "bands": ["M15"]}]}, "'bands'"),
        (
            {"queues": [{"name": "a", "satellite": "snpp", "bands": ["SVM15"], "enabled": "no"}]},
            "'enabled'",
        ),
        (
            {"queues": [{"name": "a", "satellite": "snpp", "bands": ["SVM15"], "band": 1}]},
            "unknown",
        ),
        ({"queues": [{"name": "a b", "satellite": "snpp", "bands": ["SVM15"]}]}, "'name'"),
        (
            {"queues": [{"name": "a", "satellite": "snpp", "bands": ["SVM15"]}] * 2},
            "used twice",
        ),
    ],
)
def test_bad_queue_file_is_refused_naming_the_queue_and_field(document, message):
    with pytest.raises(QueueConfigError, match=message):
        gina_catalog.parse_queues(document)


def test_disabled_queue_is_parsed_as_disabled():
    queues = gina_catalog.parse_queues(
        {"queues": [{"name": "a", "satellite": "noaa21", "bands": ["GITCO"], "enabled": False}]}
    )
    assert queues == [Queue("a", "noaa21", ("GITCO",), enabled=False)]
    assert queues[0].wants(name("GITCO", dt.datetime(2024, 1, 1), "j02"))
    assert not queues[0].wants(name("SVI05", dt.datetime(2024, 1, 1), "j02"))
