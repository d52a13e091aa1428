"""A UID without a passwd entry (the container's user "2001") never crashes a daemon (issue 11).

posttroll's ``_getsender()`` calls ``pwd.getpwuid(os.getuid())``; in the container that
raised KeyError, six daemons crash-looped and the nameserver's address receiver thread died.
The daemons here run as real processes whose passwd lookup of their own UID fails exactly
as it does there (the interpreter lives under /root, out of reach of a real other UID).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
import zmq
from helpers.bus import Daemon, daemon_env, wait_until

from avoviirscollector import bus
from avoviirscollector.netutil import free_port

#: getpwuid failing for the process's own UID, as glibc's does for a UID /etc/passwd lacks.
NO_PASSWD_ENTRY = textwrap.dedent(
    """
    import os, pwd
    real = pwd.getpwuid
    def getpwuid(uid):
        if uid == os.getuid():
            raise KeyError(f"getpwuid(): uid not found: {uid}")
        return real(uid)
    pwd.getpwuid = getpwuid
    """
)


def nameless(module: str, *args: str) -> list[str]:
    """argv running ``module``'s main(args) (a daemon) as a UID without a passwd entry."""
    run = f"import importlib, sys; sys.exit(importlib.import_module({module!r}).main(sys.argv[1:]))"
    return [sys.executable, "-c", NO_PASSWD_ENTRY + run, *args]


@pytest.fixture
def base():
    path = Path(tempfile.mkdtemp(prefix="v"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_issue_11_message_sender_is_the_uid_number_when_the_uid_has_no_name():
    script = NO_PASSWD_ENTRY + textwrap.dedent(
        """
        import pwd
        try:
            pwd.getpwuid(os.getuid())
        except KeyError:
            pass
        else:
            raise SystemExit("the lookup did not fail")
        from avoviirscollector import bus
        m = bus.message("/test", "info", {})
        assert bus.Message.decode(m.encode()).sender == m.sender
        print(m.sender, os.getuid())
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    sender, uid = result.stdout.split()
    assert sender == f"{uid}@{socket.gethostname()}"


NAMESERVER = nameless("avoviirscollector.pipeline.nameserver")


def test_sender_is_user_at_host_for_a_named_uid():
    assert bus.sender().endswith(f"@{socket.gethostname()}")
    assert not bus.sender().startswith("@")


def test_issue_11_nameserver_without_a_user_name_keeps_its_address_receiver(base):
    """The nameserver stayed RUNNING while its receiver thread had died: registrations were
    never announced. Here it announces one, and its log has no traceback."""
    daemon = Daemon(NAMESERVER, daemon_env(base), base / "nameserver.log")
    try:
        wait_until(lambda: "re-announced every" in daemon.log(), 30, "the nameserver to start")
        with bus.publish("nameless_uid_test"):
            wait_until(
                lambda: "nameless_uid_test" in daemon.log(), 30, "the registration's announcement"
            )
        assert daemon.process.poll() is None, daemon.log()
        assert "KeyError" not in daemon.log() and "Traceback" not in daemon.log(), daemon.log()
    finally:
        daemon.stop()


def test_issue_11_msg_publisher_without_a_user_name_republishes_messages(base):
    """msg_publisher crash-looped at its first subscription; here it forwards a message."""
    port = free_port()
    env = daemon_env(base, VIIRS_MESSAGE_PORT=str(port))
    nameserver = Daemon(NAMESERVER, env, base / "nameserver.log")
    publisher = Daemon(
        nameless("avoviirscollector.pipeline.msg_publisher"), env, base / "msg_publisher.log"
    )
    context = zmq.Context()
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"pytroll://nameless")
    try:
        wait_until(lambda: "republishing" in publisher.log(), 30, "msg_publisher to start")
        sub.connect(f"tcp://127.0.0.1:{port}")
        received = None
        with bus.publish("nameless_uid_test") as source:
            deadline = time.monotonic() + 40
            while received is None and time.monotonic() < deadline:
                source.send(bus.message("/nameless/test", "info", {"n": 1}).encode())
                if sub.poll(500):
                    received = bus.Message.decode(sub.recv_string())
        assert received is not None, publisher.log()
        assert received.subject == "/nameless/test"
        assert publisher.process.poll() is None and "KeyError" not in publisher.log()
    finally:
        sub.close(linger=0)
        context.term()
        publisher.stop()
        nameserver.stop()
