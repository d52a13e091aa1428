"""The polling rules as pure functions: window, cadence from passes, validators, fallback, gate."""

from __future__ import annotations

import datetime as dt

from avoviirscollector.mirror import cadence_rules, listing_rules, poll_state
from avoviirscollector.mirror.cadence_rules import Intervals, Pass
from avoviirscollector.mirror.listing_rules import Validator

UTC = dt.UTC
NOON = dt.datetime(2026, 5, 30, 12, 0, tzinfo=UTC)
T = NOON.timestamp()
SNPP = "SVI05_npp_d20260530_t1200000_e1201243_b70000_c20260530121000000000_cspp_dev.h5"
NOAA20 = SNPP.replace("_npp_", "_j01_")


# -- window ---------------------------------------------------------------------------------


def test_first_listing_and_every_full_listing_interval_ask_the_whole_backfill_window():
    first = listing_rules.choose_window(NOON, 2, None, 600)
    assert (first.kind, first.reason) == ("wide", "first listing")
    assert (first.start, first.end) == (dt.date(2026, 5, 29), dt.date(2026, 5, 31))
    later = listing_rules.choose_window(NOON, 3, T - 600, 600)
    assert (later.kind, later.reason, later.start) == ("wide", "backfill", dt.date(2026, 5, 28))


def test_between_full_listings_only_today_is_asked_and_yesterday_in_the_first_hours():
    narrow = listing_rules.choose_window(NOON, 3, T - 599, 600)
    assert (narrow.kind, narrow.start, narrow.end) == ("narrow", NOON.date(), dt.date(2026, 5, 31))
    early = NOON.replace(hour=2)
    after_midnight = listing_rules.choose_window(early, 3, early.timestamp() - 60, 600)
    assert after_midnight.start == dt.date(2026, 5, 29), "yesterday's granules still arrive"


def test_a_start_or_an_outage_forces_the_whole_window():
    forced = listing_rules.choose_window(NOON, 2, T - 10, 600, "collector start")
    assert (forced.kind, forced.reason) == ("wide", "collector start")


def test_narrow_window_is_never_wider_than_the_backfill_window():
    early = NOON.replace(hour=1)
    window = listing_rules.choose_window(early, 1, early.timestamp() - 60, 600)
    assert window.start == early.date(), "GINA_BACKFILL_DAYS=1 never asks for yesterday"


def test_nothing_the_wide_query_finds_waits_longer_than_the_interval():
    """Over a simulated hour of 10 s polls, a wide listing happens at least every 600 s."""
    last_wide, gaps, now = None, [], T
    for _ in range(360):
        window = listing_rules.choose_window(dt.datetime.fromtimestamp(now, UTC), 2, last_wide, 600)
        if window.kind == "wide":
            if last_wide is not None:
                gaps.append(now - last_wide)
            last_wide = now
        now += 10
    assert gaps and max(gaps) <= 600


# -- validators -----------------------------------------------------------------------------


def test_validators_go_back_as_conditional_headers():
    validator = listing_rules.validator_from(
        {"etag": '"abc"', "last-modified": "Sat, 30 May 2026 11:00:00 GMT"}, T
    )
    assert listing_rules.conditional_headers(validator, T + 10, None) == [
        'If-None-Match: "abc"',
        "If-Modified-Since: Sat, 30 May 2026 11:00:00 GMT",
    ]
    assert listing_rules.validator_from({"content-type": "application/json"}, T) is None


def test_no_validator_is_sent_when_a_retry_is_due_or_it_is_older_than_an_hour():
    validator = Validator('"abc"', None, T)
    assert listing_rules.conditional_headers(validator, T + 10, retry_due=T + 5) == []
    assert listing_rules.conditional_headers(validator, T + 10, retry_due=T + 50) != []
    assert listing_rules.conditional_headers(validator, T + 3601, None) == []
    assert listing_rules.conditional_headers(None, T, None) == []


def test_validator_round_trips_through_the_state_file():
    validator = Validator('"abc"', "Sat, 30 May 2026 11:00:00 GMT", T)
    assert Validator.from_json(validator.to_json()) == validator


# -- fallback -------------------------------------------------------------------------------


def test_missing_satellites_are_found_from_the_names_platforms():
    assert listing_rules.missing_satellites(["snpp", "noaa20", "noaa21"], [SNPP, NOAA20]) == [
        "noaa21"
    ]


def test_fallback_only_when_a_missing_satellite_has_files_when_asked_alone():
    assert listing_rules.ignores_multi(["noaa20"], {"noaa20": 12})
    assert not listing_rules.ignores_multi(["noaa21"], {"noaa21": 0}), "simply no data"


def test_per_satellite_mode_tries_one_query_again_after_six_hours():
    assert listing_rules.use_multi("multi", None, T)
    assert not listing_rules.use_multi("per-satellite", T, T + 3600)
    assert listing_rules.use_multi("per-satellite", T, T + listing_rules.MULTI_RETRY_AFTER)


def test_one_answer_is_split_per_queue_by_platform():
    shares = listing_rules.split([SNPP, NOAA20], {"snpp-imagery": "snpp", "noaa21-m": "noaa21"})
    assert shares == {"snpp-imagery": [SNPP], "noaa21-m": []}


# -- cadence --------------------------------------------------------------------------------

FAST = Intervals(fast=10, slow=120, hold=180, latency=1800)
PASS = Pass("noaa20", rise=T + 1000, fall=T + 1800, max_elevation=60.0)


def test_quiet_without_passes_or_arrivals_polls_slowly():
    assert cadence_rules.cadence(T, [], {}, FAST) == cadence_rules.Cadence(120, False, "quiet")


def test_fast_from_a_passes_rise_until_latency_after_it_set():
    assert not cadence_rules.cadence(PASS.rise - 1, [PASS], {}, FAST).fast
    during = cadence_rules.cadence(PASS.rise, [PASS], {}, FAST)
    assert (during.interval, during.reason, during.until) == (10, "pass noaa20", T + 3600)
    assert cadence_rules.cadence(T + 3599, [PASS], {}, FAST).fast, "data may still come"
    assert not cadence_rules.cadence(T + 3600, [PASS], {}, FAST).fast


def test_a_pass_whose_data_stopped_arriving_ends_fast_polling_early():
    arrived = {"noaa20": PASS.fall + 60}
    assert cadence_rules.cadence(PASS.fall + 200, [PASS], arrived, FAST).fast, "still holding"
    later = cadence_rules.cadence(PASS.fall + 60 + 180, [PASS], arrived, FAST)
    assert not later.fast, "arrived since the rise, none for the hold time, satellite set"


def test_arrivals_keep_polling_fast_without_any_prediction():
    fast = cadence_rules.cadence(T + 100, [], {"snpp": T}, FAST)
    assert (fast.fast, fast.reason, fast.until) == (True, "arrivals", T + 180)
    assert not cadence_rules.cadence(T + 180, [], {"snpp": T}, FAST).fast


def test_slow_interval_wakes_up_for_the_next_pass():
    due, current = cadence_rules.next_poll(PASS.rise - 30, [PASS], {}, FAST)
    assert due == PASS.rise and not current.fast
    due, _ = cadence_rules.next_poll(T, [PASS], {}, FAST)
    assert due == T + 120


def test_several_requests_per_poll_stretch_the_fast_interval():
    assert cadence_rules.cadence(PASS.rise, [PASS], {}, FAST, requests_per_poll=3).interval == 30


def test_never_more_than_360_polls_an_hour_whatever_the_passes():
    passes = [Pass(s, T + i * 600, T + i * 600 + 700, 30.0) for i, s in
              enumerate(["snpp", "noaa20", "noaa21"] * 3)]  # fmt: skip
    now, polls = T, []
    while now < T + 3600:
        polls.append(now)
        now, _ = cadence_rules.next_poll(now, passes, {"snpp": now}, FAST)
    assert len(polls) <= 360


def test_next_pass_is_the_one_in_progress_or_the_next():
    later = Pass("noaa20", T + 9000, T + 9600, 20.0)
    assert cadence_rules.next_pass([later, PASS], "noaa20", T) == PASS
    assert cadence_rules.next_pass([later, PASS], "noaa20", PASS.fall + 1) == later
    assert cadence_rules.next_pass([PASS], "snpp", T) is None


# -- the gate of a cron start ---------------------------------------------------------------


def test_a_start_polls_when_due_after_a_collector_start_or_without_state():
    state = poll_state.PollState(next_poll_at=T + 60, collector_started=T - 100)
    assert poll_state.due(None, T, None) == "first run"
    assert poll_state.due(state, T, T - 100) is None
    assert poll_state.due(state, T + 58.5, T - 100) == "due", "within the grace of a slot"
    assert poll_state.due(state, T, T - 5) == "collector start"


def test_poll_due_is_a_pure_rule_of_the_schedule_and_the_collectors_start():
    assert cadence_rules.poll_due(None, None, None, T, have_state=False) == "first run"
    assert cadence_rules.poll_due(T + 60, T - 100, T - 100, T) is None
    assert cadence_rules.poll_due(T + 60, T - 100, T - 10, T) == "collector start"
    assert cadence_rules.poll_due(T + 60, None, None, T + 58.2) == "due"
    assert cadence_rules.poll_due(T + 60, None, None, T + 57.9) is None
    assert cadence_rules.poll_due(None, None, None, T) == "due"


def test_polls_on_cron_5_s_slots_stay_10_s_apart_whatever_the_start_lag():
    """The gate's grace must never let two polls of a 10 s cadence fall on slots 5 s apart."""
    import random

    rng, slot, due, slots = random.Random(1), T, T, []
    for _ in range(2000):
        lag = rng.uniform(0, 3)  # a busy machine's start-up before the poll takes its time
        if cadence_rules.poll_due(due, None, None, slot) == "due":
            slots.append(slot)
            due = slot + lag + 10
        slot += 5
    gaps = [b - a for a, b in zip(slots, slots[1:], strict=False)]
    assert min(gaps) >= 10 and sum(g == 10 for g in gaps) > 0.5 * len(gaps)
