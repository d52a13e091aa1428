"""The one way we talk to supervisord: XML-RPC over its unix socket, as supervisorctl does.

``viirscollector status`` and ``health``, the demo, tests and benchmarks all ask the
collector's supervisord (``<base>/tmp/supervisor.sock``) the same few things; they
do it here, so every call is bounded in time and fails the same way::

    infos = processes(sock)                # getAllProcessInfo, one dict per program
    call(sock, "supervisor.stopProcess", "msg_publisher")
    stop_all(sock, timeout=20)             # every program stops side by side

Every failure to get an answer (no socket, refused, timed out, a fault while
supervisord shuts down) is :class:`SupervisorUnavailable`, with a one-line reason.
"""

from __future__ import annotations

import socket
import time
import xmlrpc.client
from pathlib import Path

from supervisor.xmlrpc import SupervisorTransport, UnixStreamHTTPConnection

SOCKET_NAME = "supervisor.sock"
#: supervisord states of a program that has (or is about to have) a process.
ALIVE = frozenset({"RUNNING", "STARTING", "STOPPING", "BACKOFF"})
#: Seconds a call may take: supervisord answers in milliseconds unless it is wedged.
TIMEOUT = 5.0


class SupervisorUnavailable(Exception):
    """supervisord cannot answer: not running for this base, not answering, or refusing."""


class NoSupervisor(SupervisorUnavailable):
    """No socket: supervisord is not running for this base directory."""


class _Connection(UnixStreamHTTPConnection):
    """supervisor's unix-socket connection, with a timeout (it has none of its own)."""

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socketfile)


class _Transport(SupervisorTransport):
    """SupervisorTransport whose socket times out: a wedged supervisord must not hang a
    health check. A per-socket timeout, unlike socket.setdefaulttimeout, leaves the
    sockets other threads open (status reads its parts side by side) alone."""

    def __init__(self, socket_path: Path, timeout: float):
        super().__init__(None, None, f"unix://{socket_path}")
        self._get_connection = lambda: self._connect(socket_path, timeout)

    @staticmethod
    def _connect(socket_path: Path, timeout: float) -> _Connection:
        connection = _Connection("localhost", timeout=timeout)
        connection.socketfile = str(socket_path)
        return connection


def socket_of(base_dir: Path) -> Path:
    """supervisord's socket for a base directory (supervisord.conf puts it in tmp/)."""
    return Path(base_dir) / "tmp" / SOCKET_NAME


def proxy(socket_path: Path, timeout: float = TIMEOUT) -> xmlrpc.client.ServerProxy:
    """A raw XML-RPC proxy (``.supervisor.stopProcess(...)``) for callers that handle
    OSError and xmlrpc.client.Error themselves, e.g. tests driving supervisord."""
    return xmlrpc.client.ServerProxy(
        "http://localhost", transport=_Transport(Path(socket_path), timeout)
    )


def call(socket_path: Path, method: str, *args, timeout: float = TIMEOUT):
    """Call one method (e.g. ``supervisor.getAllProcessInfo``), bounded by ``timeout``."""
    socket_path = Path(socket_path)
    if not socket_path.exists():
        raise NoSupervisor(f"no socket {socket_path}: supervisord is not running for this base")
    transport = _Transport(socket_path, timeout)
    server = xmlrpc.client.ServerProxy("http://localhost", transport=transport)
    try:
        return getattr(server, method)(*args)
    except (OSError, xmlrpc.client.Error) as error:
        why = f"supervisord at {socket_path} did not answer: {error}"
        raise SupervisorUnavailable(why) from None
    finally:
        transport.close()


def processes(socket_path: Path, timeout: float = TIMEOUT) -> list[dict]:
    """supervisord's getAllProcessInfo: name, group, statename, pid, start, ... per program."""
    return call(socket_path, "supervisor.getAllProcessInfo", timeout=timeout)


def stop_all(socket_path: Path, timeout: float = 30) -> list[str]:
    """Stop every program side by side; return the ones still alive after ``timeout``.

    supervisord's own shutdown (SIGTERM) stops one group after the other, ~1 s each
    for ten programs. ``stopProcess(name, wait=False)`` for each running program
    sends each its configured stop signal at once (supervisord still SIGKILLs one
    that outlives its stopwaitsecs). It answers at once; stopAllProcesses answers
    only on supervisord's next one-second loop turn, even when told not to wait.
    """
    deadline = time.monotonic() + timeout
    server = proxy(socket_path, timeout)
    for info in processes(socket_path, timeout):
        if info["statename"] in ALIVE:
            try:
                server.supervisor.stopProcess(f"{info['group']}:{info['name']}", False)
            except xmlrpc.client.Fault:
                pass  # stopped meanwhile (NOT_RUNNING): the loop below checks them all
            except (OSError, xmlrpc.client.Error) as error:
                raise SupervisorUnavailable(f"supervisord at {socket_path}: {error}") from None
    while True:
        remaining = max(deadline - time.monotonic(), 0.1)
        infos = processes(socket_path, timeout=min(remaining, TIMEOUT))
        alive = [f"{i['name']} {i['statename']}" for i in infos if i["statename"] in ALIVE]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.1)  # supervisord has no event for "all stopped" but its slow answer
