"""Small network helpers shared by stand-ins, programs and tests: a free port, a --port
option's type, and whether one process is connected to another (Linux /proc)."""

from __future__ import annotations

import argparse
import os
import socket
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (for stand-ins and test daemons)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_taken(port: int) -> bool:
    """True when something listens on TCP ``port`` (tried the way ZMQ binds: all addresses,
    SO_REUSEADDR, so connections of a collector that just stopped do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("", port))
        except OSError:
            return True
    return False


def connected(subscriber_pid: int | None, publisher_pid: int | None) -> bool:
    """True when process ``subscriber_pid`` has a TCP connection to a port ``publisher_pid``
    listens on (Linux /proc; a posttroll publisher listens on its one publishing port)."""
    listening, established = _tcp_sockets()
    ports = set(_owned(listening, publisher_pid))
    return bool(ports & set(_owned(established, subscriber_pid)))


def _tcp_sockets() -> tuple[dict[int, int], dict[int, int]]:
    """(listening: inode -> local port, established: inode -> remote port) on this host."""
    listening, established = {}, {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], int(fields[9])
            if state == "0A":
                listening[inode] = int(local.rsplit(":", 1)[1], 16)
            elif state == "01":
                established[inode] = int(remote.rsplit(":", 1)[1], 16)
    return listening, established


def _owned(sockets: dict[int, int], pid: int | None) -> list[int]:
    """The ports of the sockets in ``sockets`` that process ``pid`` holds."""
    if not pid:
        return []
    found = []
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return []
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inode = int(target[8:-1])
            if inode in sockets:
                found.append(sockets[inode])
    return found


def port_number(text: str) -> int:
    """argparse type of the operator commands' --port options."""
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1-65535)")
    return port
