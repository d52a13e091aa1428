"""replay_listener: which restarts make the gatherers replay, when, and that supervisord delivers.

The rules (events -> gatherers, the schedule) are tested directly; then a real
supervisord with the listener and two stand-in programs named like ours shows a
kill -9 of "task_broker" ending in a SIGUSR1 for each gatherer.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import xmlrpc.client
from pathlib import Path

import pytest
from helpers.bus import SUPERVISORD_HEAD, wait_until

from avoviirscollector import supervisor_client
from avoviirscollector.pipeline.replay_listener import (
    RestartTracker,
    gatherers_of,
    missing_links,
    replay_targets,
)

GATHERERS = ["segment_gatherer-viirs_mir", "segment_gatherer-viirs_tir"]


@pytest.mark.parametrize("trigger", ["task_broker", "nameserver", "trollstalker"])
def test_restart_of_broker_nameserver_or_stalker_makes_every_gatherer_replay(trigger):
    assert replay_targets(trigger, GATHERERS) == set(GATHERERS)


def test_gatherers_replay_at_their_own_start_and_other_programs_trigger_nothing():
    assert replay_targets("segment_gatherer-viirs_tir", GATHERERS) == set()
    assert replay_targets("msg_publisher", GATHERERS) == set()
    assert replay_targets("supercronic", GATHERERS) == set()


def test_gatherers_are_found_among_supervisords_programs():
    infos = [{"name": n} for n in ("task_broker", *reversed(GATHERERS), "supercronic")]
    assert gatherers_of(infos) == GATHERERS


def test_only_a_new_pid_is_a_restart_not_the_first_start_nor_the_same_process():
    tracker = RestartTracker({"task_broker": 100, "trollstalker": 0})
    assert not tracker.restarted("task_broker", 100), "the event of the process we saw start"
    assert not tracker.restarted("trollstalker", 200), "first start (no pid when we looked)"
    assert tracker.restarted("task_broker", 101)
    assert tracker.restarted("trollstalker", 201)
    assert not tracker.restarted("trollstalker", 201)


def test_replay_waits_for_stalker_to_gatherers_and_gatherers_to_broker():
    pids = {"trollstalker": 1, "task_broker": 2, GATHERERS[0]: 3, GATHERERS[1]: 4}
    links = {(3, 1), (4, 1), (2, 3)}

    missing = missing_links(pids, GATHERERS, lambda sub, pub: (sub, pub) in links)
    assert missing == ["task_broker->segment_gatherer-viirs_tir"]

    links.add((2, 4))
    assert missing_links(pids, GATHERERS, lambda sub, pub: (sub, pub) in links) == []
    del pids["task_broker"]  # not RUNNING
    assert len(missing_links(pids, GATHERERS, lambda sub, pub: True)) == 2


SUPERVISORD_CONF = (
    SUPERVISORD_HEAD
    + """\
[program:task_broker]
command={python} {base}/standin.py task_broker
startsecs=1
autorestart=true
[program:segment_gatherer-viirs_tir]
command={python} {base}/standin.py tir
startsecs=1
[program:segment_gatherer-viirs_mir]
command={python} {base}/standin.py mir
startsecs=1
[eventlistener:replay_listener]
command={python} -m avoviirscollector.cli replay-listener --timeout 0.5
events=PROCESS_STATE_RUNNING
stdout_logfile=NONE
stderr_logfile={base}/log/replay_listener.log
"""
)
#: A program that notes each SIGUSR1 it gets, as a gatherer replays on it.
STANDIN = """
import signal, sys, time
name = sys.argv[1]
def note(*_):
    with open(f"{sys.argv[0]}.{name}.usr1", "a") as f:
        f.write("replay\\n")
signal.signal(signal.SIGUSR1, note)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    time.sleep(1)
"""


def start_supervisord(conf: str, standin: str):
    """supervisord on ``conf`` in a temporary base, the stand-in at {base}/standin.py;
    yields (base, rpc) and stops it."""
    base = Path(tempfile.mkdtemp(prefix="vr-", dir="/tmp"))
    for name in ("tmp", "log"):
        (base / name).mkdir()
    (base / "standin.py").write_text(standin)
    path = base / "supervisord.conf"
    path.write_text(conf.format(base=base, python=sys.executable))
    env = {**os.environ, "VIIRS_BASE_DIR": str(base)}
    output = open(base / "log" / "run.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        ["supervisord", "-c", str(path)],
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def rpc():  # a new connection per call: one that failed cannot be reused
        return supervisor_client.proxy(supervisor_client.socket_of(base)).supervisor

    yield base, rpc
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)
    output.close()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def supervisord():
    yield from start_supervisord(SUPERVISORD_CONF, STANDIN)


def listener_log(base: Path) -> str:
    path = base / "log" / "replay_listener.log"
    return path.read_text() if path.exists() else ""


def replays(base: Path, gatherer: str) -> int:
    path = base / f"standin.py.{gatherer}.usr1"
    return path.read_text().count("replay") if path.exists() else 0


def all_running(rpc, count: int = 4) -> bool:
    try:
        infos = rpc().getAllProcessInfo()
    except (OSError, xmlrpc.client.Error):
        return False
    return len(infos) == count and all(i["statename"] == "RUNNING" for i in infos)


def test_kill9_of_the_broker_makes_supervisord_send_usr1_to_every_gatherer(supervisord):
    base, rpc = supervisord
    wait_until(lambda: all_running(rpc), 30, "every program RUNNING")
    wait_until(lambda: "replay sdr/ after a restart" in listener_log(base), 15, "listener")
    wait_until(
        lambda: replays(base, "tir") == replays(base, "mir") == 1, 15, "the start's one replay"
    )
    assert "replayed after the collector's start" in listener_log(base)
    before = {g: replays(base, g) for g in ("tir", "mir")}
    old = rpc().getProcessInfo("task_broker")["pid"]

    os.kill(old, signal.SIGKILL)

    wait_until(
        lambda: all(replays(base, g) > before[g] for g in before), 20, "replay after the restart"
    )
    assert rpc().getProcessInfo("task_broker")["pid"] != old
    log = listener_log(base)
    assert "task_broker restarted" in log
    assert "replayed after the restart of task_broker: asked the gatherers of mir, tir" in log


#: The pipeline's links made real: trollstalker and each gatherer listen on a port;
#: the gatherers connect to trollstalker's, and task_broker to each gatherer's, but
#: only once {base}/broker-connects exists (a broker that comes up late).
LINKED_STANDIN = (
    STANDIN.split("while True:")[0]
    + """
import os, socket
base = os.path.dirname(sys.argv[0])
server = socket.create_server(("127.0.0.1", 0))
with open(os.path.join(base, name + ".port.tmp"), "w") as f:
    f.write(str(server.getsockname()[1]))
os.replace(os.path.join(base, name + ".port.tmp"), os.path.join(base, name + ".port"))
peers = {"stalker": [], "tir": ["stalker"], "mir": ["stalker"], "task_broker": ["tir", "mir"]}
wanted, links = peers[name], []
while True:
    gate = name != "task_broker" or os.path.exists(os.path.join(base, "broker-connects"))
    for peer in [p for p in wanted if gate and os.path.exists(os.path.join(base, p + ".port"))]:
        with open(os.path.join(base, peer + ".port")) as f:
            links.append(socket.create_connection(("127.0.0.1", int(f.read()))))
        wanted.remove(peer)
    time.sleep(0.1)
"""
)
LINKED_CONF = SUPERVISORD_CONF.replace(
    "[program:task_broker]",
    "[program:trollstalker]\ncommand={python} {base}/standin.py stalker\nstartsecs=1\n"
    "[program:task_broker]",
).replace("replay-listener --timeout 0.5", "replay-listener --timeout 0.5 --recheck 0.2")


@pytest.fixture
def linked_supervisord():
    yield from start_supervisord(LINKED_CONF, LINKED_STANDIN)


def test_a_link_that_comes_back_after_the_wait_gets_one_more_replay_once_it_is_up(
    linked_supervisord,
):
    """Replaying before the broker is subscribed would lose what it missed: not the end of it."""
    base, rpc = linked_supervisord
    wait_until(lambda: all_running(rpc, count=5), 30, "every program RUNNING")
    wait_until(lambda: "replaying anyway" in listener_log(base), 15, "the start's replay")
    wait_until(lambda: replays(base, "tir") == replays(base, "mir") == 1, 15, "one replay")
    log = listener_log(base)
    assert "task_broker->segment_gatherer-viirs_mir" in log, "only the broker's links"

    (base / "broker-connects").touch()

    wait_until(lambda: replays(base, "tir") == replays(base, "mir") == 2, 15, "again")
    assert "replayed after the collector's start (again: every link is back)" in (
        listener_log(base)
    )
