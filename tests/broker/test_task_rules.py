"""The queue rules and the request checks, tested directly (no database, no sockets)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from avoviirscollector.broker.task_rules import (
    KNOWN_PRODUCTS,
    MAX_REQUEST_BYTES,
    GranuleError,
    RequestError,
    RuleQueue,
    TaskRequest,
    dumps,
    file_stem,
    files_stem,
    granule_from_message,
    hand_out_key,
    joins,
    loads,
    merge_data,
    parse_request,
    product_of,
    stale_cutoff,
)

T0 = dt.datetime(2024, 3, 1, 12, 0, 0)


def granule(product="tir", orbit=1000, minutes=0.0, platform="NOAA-20", uids=None, **extra):
    """A granule message's data as segment_gatherer publishes it, turned into a Granule."""
    start = T0 + dt.timedelta(minutes=minutes)
    uids = uids or [f"SVI05_{product}_{orbit}_{minutes}.h5", f"GITCO_{orbit}_{minutes}.h5"]
    data = {
        "platform_name": platform,
        "orbit_number": orbit,
        "start_time": start,
        "end_time": start + dt.timedelta(seconds=86),
        "sensor": ["viirs"],
        "dataset": [{"uid": uid, "uri": f"/viirs/sdr/{uid}"} for uid in uids],
        **extra,
    }
    return granule_from_message(f"/AVO/viirs/granule/{product}", "dataset", data)


def test_product_is_last_element_of_subject():
    assert product_of("/AVO/viirs/granule/tir") == "tir"
    assert product_of("/AVO/viirs/granule/mir/") == "mir"


def test_granule_key_is_subject_platform_orbit():
    assert granule(orbit=41131).key == ("/AVO/viirs/granule/tir", "NOAA-20", 41131)


def test_aware_datetimes_become_naive_utc():
    aware = dt.datetime(2024, 3, 1, 14, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    g = granule_from_message(
        "/AVO/viirs/granule/tir",
        "dataset",
        {
            "platform_name": "NOAA-20",
            "orbit_number": "41131",
            "start_time": aware,
            "end_time": aware,
            "dataset": [{"uid": "a", "uri": "/a"}],
        },
    )
    assert g.start_time == dt.datetime(2024, 3, 1, 12, 0)
    assert g.data["end_time"].tzinfo is None
    assert g.orbit_number == 41131


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"platform_name": None}, "platform_name"),
        ({"orbit_number": "north"}, "orbit_number"),
        ({"orbit_number": True}, "orbit_number"),
        ({"start_time": "2024-03-01"}, "start_time"),
        ({"dataset": []}, "dataset"),
        ({"dataset": [{"uri": "/a"}]}, "uid"),
    ],
)
def test_granule_message_without_what_a_task_needs_is_refused_with_reason(change, reason):
    data = {
        "platform_name": "NOAA-20",
        "orbit_number": 1,
        "start_time": T0,
        "end_time": T0,
        "dataset": [{"uid": "a", "uri": "/a"}],
        **change,
    }
    with pytest.raises(GranuleError, match=reason):
        granule_from_message("/AVO/viirs/granule/tir", "dataset", data)


def test_joins_within_30_minutes_only():
    assert joins(T0, T0 + dt.timedelta(minutes=10))
    assert joins(T0 + dt.timedelta(minutes=29, seconds=59), T0)
    assert not joins(T0, T0 + dt.timedelta(minutes=30))
    assert not joins(T0, T0 + dt.timedelta(minutes=50))


def test_merge_takes_min_start_max_end_and_union_of_dataset_without_uid_twice():
    first, second = granule(minutes=5, uids=["a", "b"]), granule(minutes=0, uids=["b", "c"])
    merged = merge_data(first.data, second.data)
    assert merged["start_time"] == T0
    assert merged["end_time"] == T0 + dt.timedelta(minutes=5, seconds=86)
    assert [d["uid"] for d in merged["dataset"]] == ["a", "b", "c"]
    assert [d["uid"] for d in first.data["dataset"]] == ["a", "b"], "inputs are not changed"


def test_same_orbit_10_minutes_apart_merges_50_minutes_apart_splits():
    queue = RuleQueue()
    assert queue.add(granule(minutes=0)) == "queued"
    assert queue.add(granule(minutes=10)) == "merged"
    assert queue.add(granule(minutes=50)) == "queued"
    assert len(queue.tasks) == 2
    assert len(queue.tasks[0].data["dataset"]) == 4


def test_other_key_never_merges():
    queue = RuleQueue()
    queue.add(granule(orbit=1))
    assert queue.add(granule(orbit=2)) == "queued"
    assert queue.add(granule(product="mir", orbit=1)) == "queued"
    assert queue.add(granule(orbit=1, platform="Suomi-NPP")) == "queued"
    assert len(queue.tasks) == 4


def test_merged_task_keeps_its_place_and_oldest_is_handed_out_first():
    queue = RuleQueue()
    queue.add(granule(orbit=1))
    queue.add(granule(orbit=2))
    queue.add(granule(orbit=1, minutes=3))
    assert [t.key[2] for t in queue.tasks] == [1, 2]
    assert queue.take(["tir"]).key[2] == 1
    assert queue.take(["mir"]) is None
    assert queue.take(["mir", "tir"]).key[2] == 2


def test_granule_published_again_after_hand_out_is_a_duplicate_unless_reprocessed():
    queue = RuleQueue()
    queue.add(granule())
    queue.take(["tir"])
    assert queue.add(granule()) == "duplicate"
    assert queue.add(granule(reprocess="2024-03-02T10:00:00")) == "queued"
    queue.take(["tir"])
    assert queue.add(granule(reprocess="2024-03-02T10:00:00")) == "duplicate"
    assert queue.add(granule()) == "duplicate"
    assert queue.add(granule(reprocess="2024-03-03T08:00:00")) == "queued"


def test_granule_published_again_while_queued_merges_without_duplicates():
    queue = RuleQueue()
    queue.add(granule(minutes=0))
    queue.add(granule(minutes=25))
    queue.add(granule(minutes=-20))  # start moves back: the 25-min granule is now 45 min away
    assert queue.add(granule(minutes=25)) == "merged"
    assert len(queue.tasks) == 1
    uids = [d["uid"] for d in queue.tasks[0].data["dataset"]]
    assert len(uids) == len(set(uids)) == 6


granules = st.builds(
    granule,
    product=st.sampled_from(["tir", "mir"]),
    orbit=st.integers(1, 3),
    minutes=st.integers(-90, 90).map(float),
    uids=st.lists(st.sampled_from("abcdef"), min_size=1, max_size=3),
)


@given(st.lists(granules, max_size=30))
@settings(max_examples=200, deadline=None)
def test_every_file_is_in_exactly_one_task_and_task_times_span_its_granules(items):
    queue = RuleQueue()
    for item in items:
        queue.add(item)
    for task in queue.tasks:
        uids = [d["uid"] for d in task.data["dataset"]]
        assert len(uids) == len(set(uids))
    for item in items:
        holders = [t for t in queue.tasks if item.granule_id in t.granules]
        assert len(holders) == 1
        task = holders[0]
        assert task.key == item.key
        assert task.data["start_time"] <= item.start_time
        assert task.data["end_time"] >= item.end_time
        assert set(item.uids) <= {d["uid"] for d in task.data["dataset"]}


@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.text()
        | st.datetimes(min_value=dt.datetime(1970, 1, 1)),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
        max_leaves=10,
    )
)
def test_stored_json_keeps_datetimes_and_everything_else(value):
    assert loads(dumps({"v": value})) == {"v": value}


# --- requests ---------------------------------------------------------------------


def test_original_request_is_accepted():
    raw = json.dumps({"desired products": ["tir", "mir"], "just testing": False}).encode()
    assert parse_request(raw) == TaskRequest(products=("tir", "mir"))


def test_just_testing_is_optional_and_lease_and_ack_are_read():
    assert parse_request(b'{"desired products": ["tir"]}').just_testing is False
    request = parse_request(b'{"desired products": ["vis"], "lease": 30}')
    assert request.lease == 30.0
    assert parse_request(b'{"ack": "7-abc"}') == TaskRequest(ack="7-abc")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"tir please", "not JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b'["tir"]', "JSON object"),
        (b"{}", "'desired products' is missing"),
        (b'{"desired products": []}', "empty"),
        (b'{"desired products": "tir"}', "list of strings"),
        (b'{"desired products": ["tir", 5]}', "not a product name"),
        (b'{"desired products": [""]}', "not a product name"),
        (b'{"desired products": ["tir"], "just testing": "yes"}', "true or false"),
        (b'{"desired products": ["tir"], "lease": -1}', "over 0"),
        (b'{"desired products": ["tir"], "lease": true}', "number of seconds"),
        (b'{"desired products": ["tir"], "lease": 5, "just testing": true}', "exclude"),
        (b'{"ack": 5}', "task id"),
        (b'{"desired products": ["tir"], "pad": "' + b"x" * MAX_REQUEST_BYTES + b'"}', "limit"),
    ],
)
def test_bad_request_is_refused_with_a_clear_reason(raw, reason):
    with pytest.raises(RequestError, match=reason):
        parse_request(raw)


@given(st.binary(max_size=200))
def test_any_bytes_give_a_request_or_a_reason_never_a_crash(raw):
    try:
        parse_request(raw)
    except RequestError as error:
        assert str(error)


@given(
    st.recursive(
        st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=5),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(
                st.sampled_from(["desired products", "just testing", "lease", "ack", "x"]),
                inner,
                max_size=4,
            )
        ),
        max_leaves=8,
    )
)
def test_any_json_gives_a_request_or_a_reason_never_a_crash(value):
    try:
        request = parse_request(json.dumps(value).encode())
    except RequestError as error:
        assert str(error)
    else:
        assert request.products or request.ack
        assert all(isinstance(p, str) and p for p in request.products)


@pytest.mark.parametrize("raw", [b"[" * 60000, b'{"desired products": ' + b"[" * 30000 + b"}"])
def test_deeply_nested_json_under_the_size_limit_is_refused_not_raised(raw):
    """Regression: RecursionError escaped parse_request and failed the broker's whole batch."""
    assert len(raw) < MAX_REQUEST_BYTES
    with pytest.raises(RequestError, match="nested too deeply"):
        parse_request(raw)


def test_unknown_product_is_refused_naming_the_known_ones():
    """Regression (issue 14.3): ["tri"] was an empty reply ("nothing to do") forever."""
    with pytest.raises(RequestError) as refused:
        parse_request(b'{"desired products": ["tir", "tri"], "just testing": true}')
    assert str(refused.value) == "unknown product 'tri' (known: tir, vis, btd, mir)"
    assert parse_request(b'{"desired products": ["btd", "vis"]}').products == ("btd", "vis")


def test_known_products_are_the_gatherers_publish_topics_in_order():
    import configparser
    from pathlib import Path

    ini = configparser.ConfigParser(interpolation=None)
    ini.read(Path(__file__).resolve().parents[2] / "etc" / "segment_gatherer.ini")
    topics = [ini[section]["publish_topic"] for section in ini.sections()]
    assert tuple(product_of(topic) for topic in topics) == KNOWN_PRODUCTS


# --- log lines: the files' stem -------------------------------------------------------

REAL = "_j01_d20240301_t1200003_e1201245_b32000_c20240301121510123456_cspp_dev.h5"


def test_stem_is_what_a_granules_files_share_between_segment_and_creation_time():
    assert file_stem("SVI05" + REAL) == "j01_d20240301_t1200003_e1201245_b32000"
    other = "GITCO" + REAL.replace("c20240301121510123456", "c20240301121512999999")
    assert files_stem(["SVI05" + REAL, other]) == "j01_d20240301_t1200003_e1201245_b32000"
    later = "SVI05" + REAL.replace("t1200003_e1201245", "t1201258_e1202500")
    assert files_stem(["SVI05" + REAL, later]) == "j01_d20240301_t1200003_e1201245_b32000 +1"
    assert file_stem("GITCO_odd_name.h5") == "odd_name"
    assert len(files_stem(["SVI05_" + "x" * 300 + ".h5"])) == 60


# --- which task is handed out next -----------------------------------------------------

NOW = dt.datetime(2024, 3, 1, 18, 0, 0)


def test_fresh_tasks_go_in_queue_order_stale_ones_behind_them_newest_first():
    """Issue 17: a backlog older than VIIRS_STALE_TASK_HOURS waits behind the current passes."""
    cutoff = stale_cutoff(NOW, 3)
    assert cutoff == dt.datetime(2024, 3, 1, 15, 0)
    hours_ago = {1: 1, 2: 0.2, 3: 30, 4: 5, 5: 26, 6: 2}  # position -> hours since start
    order = sorted(
        hours_ago,
        key=lambda pos: hand_out_key(NOW - dt.timedelta(hours=hours_ago[pos]), pos, cutoff),
    )
    assert order == [1, 2, 6, 4, 5, 3]


def test_no_stale_hours_keeps_the_original_order():
    assert stale_cutoff(NOW, 0) is None and stale_cutoff(NOW, None) is None
    keys = [hand_out_key(NOW - dt.timedelta(days=d), p, None) for p, d in ((1, 9), (2, 1), (3, 5))]
    assert sorted(keys) == keys


def test_rule_queue_hands_out_the_current_pass_before_yesterdays_backlog():
    queue = RuleQueue(stale_hours=3)
    queue.add(granule(orbit=1, minutes=0))  # 2024-03-01 12:00, 6 h before NOW: stale
    queue.add(granule(orbit=2, minutes=100))  # 13:40: stale, newer
    queue.add(granule(orbit=4, minutes=350))  # 17:50: fresh
    queue.add(granule(orbit=3, minutes=300))  # 17:00: fresh, queued after orbit 4
    taken = [queue.take(["tir"], NOW).key[2] for _ in range(4)]
    assert taken == [4, 3, 2, 1]
    assert queue.take(["tir"], NOW) is None


@given(st.lists(st.floats(0, 48), min_size=1, max_size=20))
@settings(max_examples=100, deadline=None)
def test_every_fresh_task_is_handed_out_before_any_stale_one(ages):
    queue = RuleQueue(stale_hours=3)
    for orbit, age in enumerate(ages):
        queue.add(granule(orbit=orbit, minutes=360 - age * 60))
    taken = []
    while (task := queue.take(["tir"], NOW)) is not None:
        taken.append(ages[task.key[2]])
    fresh = [age for age in ages if NOW - dt.timedelta(hours=age) >= stale_cutoff(NOW, 3)]
    assert taken[: len(fresh)] == fresh, "fresh ones first, in queue order"
    assert taken[len(fresh) :] == sorted(taken[len(fresh) :]), "then stale ones, newest first"
