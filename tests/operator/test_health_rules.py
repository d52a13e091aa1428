"""The rules that tell a crash loop and a dead thread from a healthy program (issue 11)."""

from __future__ import annotations

import time

from avoviirscollector.operator import health_rules


def log_line(when: float, text: str) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when)) + f",123 {text}\n"


NOW = time.time()


def crash_loop(name: str, times: list[float]) -> str:
    return "".join(
        log_line(t, f"WARN exited: {name} (exit status 1; not expected)")
        + log_line(t + 1, f"INFO spawned: '{name}' with pid 42")
        for t in times
    )


def test_two_unexpected_exits_in_ten_minutes_are_a_restart_loop():
    text = crash_loop("msg_publisher", [NOW - 300, NOW - 100]) + crash_loop(
        "nameserver", [NOW - 50]
    )
    assert health_rules.restarting(text, NOW) == ["msg_publisher exited 2 times in the last 10 min"]


def test_exits_before_the_window_and_expected_exits_do_not_count():
    text = (
        crash_loop("trollstalker", [NOW - 3600, NOW - 1800, NOW - 700])
        + log_line(NOW - 20, "INFO exited: supercronic (exit status 0; expected)")
        + log_line(NOW - 10, "INFO stopped: task_broker (terminated by SIGTERM)")
        + log_line(NOW - 5, "INFO exited: task_broker (exit status 0; expected)")
    )
    assert health_rules.restarting(text, NOW) == []


def test_a_signal_death_counts_as_an_unexpected_exit():
    text = "".join(
        log_line(t, "WARN exited: task_broker (terminated by SIGKILL; not expected)")
        for t in (NOW - 60, NOW - 30, NOW - 1)
    )
    assert health_rules.restarting(text, NOW) == ["task_broker exited 3 times in the last 10 min"]


def test_heartbeat_of_the_current_process_fresh_and_without_dead_threads_is_alive():
    record = {"pid": 7, "time": NOW - 4, "dead": []}
    assert health_rules.heartbeat_problem("nameserver", record, 7, 600, NOW) is None


def test_a_dead_thread_is_named():
    record = {"pid": 7, "time": NOW, "dead": ["thread AddressReceiver died: KeyError: 'x'"]}
    assert health_rules.heartbeat_problem("nameserver", record, 7, 600, NOW) == (
        "nameserver: thread AddressReceiver died: KeyError: 'x'"
    )


def test_a_stale_heartbeat_is_a_hung_process():
    record = {"pid": 7, "time": NOW - 95, "dead": []}
    assert health_rules.heartbeat_problem("task_broker", record, 7, 600, NOW) == (
        "task_broker has not beaten for 95 s (hung?)"
    )


def test_a_missing_or_previous_process_heartbeat_counts_only_after_the_grace():
    previous = {"pid": 6, "time": NOW, "dead": ["thread x died"]}
    assert health_rules.heartbeat_problem("msg_publisher", previous, 7, 3, NOW) is None
    assert health_rules.heartbeat_problem("msg_publisher", None, 7, 3, NOW) is None
    assert health_rules.heartbeat_problem("msg_publisher", previous, 7, 60, NOW) == (
        "msg_publisher writes no heartbeat"
    )


def test_supercronic_and_the_replay_listener_need_no_heartbeat():
    for name in ("supercronic", "replay_listener"):
        assert health_rules.heartbeat_problem(name, None, 7, 600, NOW) is None
