"""The durable queue: the rules as the in-memory model applies them, plus what only it does.

Crash safety is proved end to end in test_task_broker.py (kill -9 of the real daemon);
here the database is reopened to show the queue is what was committed.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_task_rules import granule

from avoviirscollector import bus
from avoviirscollector.broker.task_rules import RuleQueue
from avoviirscollector.broker.task_store import (
    DB_NAME,
    HANDED_OUT_MEMORY,
    TaskStore,
    fresh_sql,
    oldest_sql,
    open_store,
    stale_sql,
)


class Clock:
    """A clock the test moves by hand (leases and memory are measured in epoch seconds)."""

    def __init__(self, now: float = 1_700_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(tmp_path, clock):
    store = TaskStore(tmp_path / "state" / DB_NAME, clock=clock)
    yield store
    store.close()


def uids(task):
    return [d["uid"] for d in task.data["dataset"]]


def test_queue_survives_reopening_exactly(tmp_path, clock):
    path = tmp_path / DB_NAME
    first = TaskStore(path, clock=clock)
    for orbit in (3, 1, 2):
        first.add(granule(orbit=orbit))
    first.add(granule(orbit=3, minutes=5))
    first.take(["tir"], lease=60)
    before = [(t.id, t.position, t.data) for t in first.queued()]
    first.close()
    second = TaskStore(path, clock=clock)
    assert [(t.id, t.position, t.data) for t in second.queued()] == before
    assert second.state()["tasks leased"] == 1
    second.add(granule(orbit=9))
    assert second.queued()[-1].orbit_number == 9, "new tasks still go to the tail"
    second.close()


def test_oldest_task_is_chosen_through_the_index_not_a_scan(store):
    for orbit in range(200):
        store.add(granule(product=("tir", "vis", "mir")[orbit % 3], orbit=orbit))
    store._db.execute("ANALYZE")
    plan = store._db.execute("EXPLAIN QUERY PLAN " + oldest_sql(3), ("tir", "mir", "btd"))
    details = [row[-1] for row in plan]
    assert sum("USING INDEX tasks_waiting (product=?)" in d for d in details) == 3, details
    assert not any(d.startswith("SCAN tasks") for d in details), details
    assert store.next_task(["mir", "btd"]).orbit_number == 2


def test_oldest_of_several_desired_products_is_handed_out(store):
    store.add(granule(product="vis", orbit=1))
    store.add(granule(product="mir", orbit=2))
    store.add(granule(product="tir", orbit=3))
    assert store.take(["tir", "mir"]).product == "mir"
    assert store.take(["tir", "mir"]).product == "tir"
    assert store.take(["tir", "mir"]) is None
    assert store.state()["products waiting"] == ["vis"]


def test_republished_granule_after_hand_out_is_a_replay_until_memory_expires(store, clock):
    store.add(granule())
    store.take(["tir"])
    assert store.add(granule()).outcome == "replay"
    assert store.state()["queue length"] == 0
    clock.now += HANDED_OUT_MEMORY + 1
    assert store.forget_handed_out() == 1
    assert store.add(granule()).outcome == "queued"


def test_reprocess_request_queues_a_handed_out_granule_once(store):
    store.add(granule())
    store.take(["tir"])
    assert store.add(granule(reprocess="2024-03-02T10:00:00Z")).outcome == "queued"
    assert store.add(granule(reprocess="2024-03-02T10:00:00Z")).outcome == "merged"
    task = store.take(["tir"])
    assert task.data["reprocess"] == "2024-03-02T10:00:00Z"
    assert store.add(granule(reprocess="2024-03-02T10:00:00Z")).outcome == "replay"
    assert store.add(granule()).outcome == "replay"


def test_lease_hides_task_until_it_expires_then_task_is_at_the_head(store, clock):
    store.add(granule(orbit=1))
    store.add(granule(orbit=2))
    leased = store.take(["tir"], lease=30)
    assert leased.orbit_number == 1
    assert bus.Message.decode(leased.reply().decode()).data["task_id"] == leased.lease_id
    assert [t.orbit_number for t in store.queued()] == [2]
    clock.now += 29
    assert store.expire_leases() == []
    clock.now += 2
    assert [t.orbit_number for t in store.expire_leases()] == [1]
    assert [t.orbit_number for t in store.queued()] == [1, 2]
    assert store.ack(leased.lease_id) is None, "a late ack is refused: the task is queued again"
    again = store.take(["tir"])
    assert "task_id" not in bus.Message.decode(again.reply().decode()).data
    assert again.data == leased.data


def test_expired_leases_return_in_their_original_order(store, clock):
    for orbit in (1, 2, 3, 4):
        store.add(granule(orbit=orbit))
    store.take(["tir"], lease=10)
    store.take(["tir"], lease=10)
    store.take(["tir"], lease=10)
    clock.now += 11
    store.expire_leases()
    assert [t.orbit_number for t in store.queued()] == [1, 2, 3, 4]


def test_ack_finishes_a_leased_task_and_remembers_its_granules(store, clock):
    store.add(granule(minutes=0))
    store.add(granule(minutes=2))
    leased = store.take(["tir"], lease=30)
    assert store.add(granule(minutes=2)).outcome == "with worker"
    acked = store.ack(leased.lease_id)
    assert acked.id == leased.id and len(acked.granule_ids) == 2
    assert store.ack(leased.lease_id) is None
    clock.now += 60
    assert store.expire_leases() == []
    assert store.add(granule(minutes=0)).outcome == "replay"
    assert store.state()["queue length"] == 0


def test_new_granule_of_a_leased_tasks_pass_becomes_its_own_task(store):
    store.add(granule(minutes=0))
    store.take(["tir"], lease=30)
    assert store.add(granule(minutes=3)).outcome == "queued"
    assert store.add(granule(minutes=0, reprocess="r1")).outcome == "merged"


def test_task_put_back_after_failed_reply_is_served_again_whole(store):
    store.add(granule(orbit=1, minutes=0))
    store.add(granule(orbit=1, minutes=1))
    store.add(granule(orbit=2))
    task = store.take(["tir"])
    store.put_back(task)
    assert [t.orbit_number for t in store.queued()] == [1, 2]
    assert store.add(granule(orbit=1, minutes=1)).outcome == "merged", "granules held again"
    leased = store.take(["tir"], lease=5)
    store.put_back(leased)
    assert store.take(["tir"]).data == task.data


def test_failed_savepoint_undoes_only_its_own_work(store):
    with store.transaction():
        store.add(granule(orbit=1))
        with pytest.raises(RuntimeError), store.transaction():
            store.add(granule(orbit=2))
            raise RuntimeError("one request fails")
        store.add(granule(orbit=3))
    assert [t.orbit_number for t in store.queued()] == [1, 3]


def test_state_counts_per_product_and_oldest_age(store, clock):
    assert store.state() == {
        "queue length": 0,
        "products waiting": [],
        "tasks per product": {},
        "oldest task age": None,
        "tasks leased": 0,
    }
    store.add(granule(product="tir", orbit=1))
    clock.now += 90
    store.add(granule(product="mir", orbit=1))
    store.add(granule(product="mir", orbit=2))
    store.take(["mir"], lease=10)
    state = store.state()
    assert state["queue length"] == 2
    assert state["products waiting"] == ["mir", "tir"]
    assert state["tasks per product"] == {"mir": 1, "tir": 1}
    assert state["oldest task age"] == 90.0
    assert state["tasks leased"] == 1


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda path: path.write_bytes(b"this is no database\n" * 500), id="garbage"),
        pytest.param(
            lambda path: path.write_bytes(path.read_bytes()[:100] + b"\x00" * 5000), id="torn"
        ),
    ],
)
def test_corrupt_database_is_moved_aside_and_queue_starts_empty(tmp_path, caplog, damage):
    path = tmp_path / DB_NAME
    store = TaskStore(path)
    for orbit in range(50):
        store.add(granule(orbit=orbit))
    store.close()
    damage(path)
    damaged = path.read_bytes()
    with caplog.at_level(logging.ERROR):
        store = open_store(path, logging.getLogger("test"))
    assert store.state()["queue length"] == 0
    store.add(granule())
    assert store.take(["tir"]) is not None
    store.close()
    aside = [p for p in tmp_path.iterdir() if ".corrupt-" in p.name and not p.name.endswith("m")]
    assert len(aside) == 1 and aside[0].read_bytes() == damaged
    assert "moved it to" in caplog.text and str(aside[0]) in caplog.text


def test_database_of_an_unknown_schema_is_moved_aside_not_overwritten(tmp_path, caplog):
    path = tmp_path / DB_NAME
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version=99")
    store = open_store(path, logging.getLogger("test"))
    store.close()
    assert "schema version 99" in caplog.text


# --- the store follows the rules: checked against the in-memory model -------------------

operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("add"),
            st.builds(
                granule,
                product=st.sampled_from(["tir", "mir"]),
                orbit=st.integers(1, 2),
                minutes=st.integers(-60, 60).map(float),
                uids=st.lists(st.sampled_from("abcd"), min_size=1, max_size=2),
                reprocess=st.sampled_from([None, None, None, "r1", "r2"]),
            ),
        ),
        st.tuples(st.just("take"), st.sampled_from([("tir",), ("mir",), ("mir", "tir")])),
    ),
    max_size=25,
)


def _view(task):
    return (task.subject, task.data)


@given(operations)
@settings(max_examples=60, deadline=None)
def test_store_hands_out_what_the_rules_say_in_the_same_order(ops):
    model = RuleQueue()
    with tempfile.TemporaryDirectory() as directory:
        store = TaskStore(Path(directory) / DB_NAME)
        try:
            for op, arg in ops:
                if op == "add":
                    expected = model.add(arg)
                    outcome = store.add(arg).outcome
                    assert {"replay": "duplicate"}.get(outcome, outcome) == expected
                else:
                    expected, task = model.take(arg), store.take(arg)
                    assert (task and _view(task)) == (expected and _view(expected))
            assert [_view(t) for t in store.queued()] == [_view(t) for t in model.tasks]
        finally:
            store.close()


# --- newest granule first for stale tasks (issue 17) -----------------------------------

#: 2024-03-01T18:00:00Z, six hours after the test granules' T0.
NOW = dt.datetime(2024, 3, 1, 18, tzinfo=dt.UTC)

stale_operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("add"),
            st.builds(
                granule,
                product=st.sampled_from(["tir", "mir"]),
                orbit=st.integers(1, 3),
                minutes=st.integers(0, 12 * 60).map(float),  # 6 h stale .. 6 h ahead
                uids=st.lists(st.sampled_from("abcd"), min_size=1, max_size=2),
            ),
        ),
        st.tuples(st.just("take"), st.sampled_from([("tir",), ("mir",), ("mir", "tir")])),
        st.tuples(st.just("wait"), st.integers(1, 4 * 3600)),
    ),
    max_size=30,
)


@given(stale_operations)
@settings(max_examples=80, deadline=None)
def test_store_hands_out_stale_tasks_behind_fresh_ones_as_the_rules_say(ops):
    clock = Clock(NOW.timestamp())
    model = RuleQueue(stale_hours=3)
    with tempfile.TemporaryDirectory() as directory:
        store = TaskStore(Path(directory) / DB_NAME, clock=clock, stale_hours=3)
        try:
            for op, arg in ops:
                if op == "add":
                    outcome = store.add(arg).outcome
                    assert {"replay": "duplicate"}.get(outcome, outcome) == model.add(arg)
                elif op == "wait":
                    clock.now += arg
                else:
                    now = dt.datetime.fromtimestamp(clock.now, dt.UTC).replace(tzinfo=None)
                    # the store compares whole seconds: so does the model here
                    now = now.replace(microsecond=0)
                    expected, task = model.take(arg, now), store.take(arg)
                    assert (task and _view(task)) == (expected and _view(expected))
        finally:
            store.close()


def test_stale_and_fresh_choices_are_index_seeks_not_scans(store):
    for orbit in range(300):
        store.add(granule(product=("tir", "vis", "mir")[orbit % 3], orbit=orbit, minutes=orbit))
    store._db.execute("ANALYZE")
    params = ("tir", "2024-03-01T14:00:00", "mir", "2024-03-01T14:00:00")
    for sql, op in ((fresh_sql(2), ">"), (stale_sql(2), "<")):
        details = [row[-1] for row in store._db.execute("EXPLAIN QUERY PLAN " + sql, params)]
        wanted = f"USING INDEX tasks_by_start (product=? AND start_time{op}?)"
        assert sum(wanted in d for d in details) == 2, details
        assert not any(d.startswith("SCAN tasks") for d in details), details


def test_put_back_stale_task_still_waits_behind_fresh_ones(tmp_path):
    clock = Clock(NOW.timestamp())
    store = TaskStore(tmp_path / DB_NAME, clock=clock, stale_hours=3)
    store.add(granule(orbit=1, minutes=0))  # 12:00, stale at 18:00
    store.add(granule(orbit=2, minutes=330))  # 17:30, fresh
    assert store.next_task(["tir"]).orbit_number == 2
    stale = store.take(["tir"], lease=10)
    assert stale.orbit_number == 2
    clock.now += 11
    assert [t.orbit_number for t in store.expire_leases()] == [2]
    assert store.take(["tir"]).orbit_number == 2, "expired lease: back at the head"
    assert store.take(["tir"]).orbit_number == 1
    store.close()


def test_database_of_the_first_version_gets_the_start_index_and_keeps_its_tasks(tmp_path):
    path = tmp_path / DB_NAME
    first = TaskStore(path)
    first.add(granule(orbit=1))
    first._db.execute("DROP INDEX tasks_by_start")  # as a database of the first version
    first.close()
    second = TaskStore(path, stale_hours=3)
    indexes = {row[0] for row in second._db.execute("SELECT name FROM sqlite_master")}
    assert "tasks_by_start" in indexes
    assert second.take(["tir"]).orbit_number == 1
    second.close()
