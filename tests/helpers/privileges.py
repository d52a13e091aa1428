"""Children that meet file permissions as an ordinary user does, though the tests run as root.

Root ignores file permissions because of its capabilities (CAP_DAC_OVERRIDE and
friends), not because of its UID. A child whose capability bounding set is emptied
before it execs runs as UID 0 with no capability at all: a file of UID 12345 with mode
0644 is then read-only to it, exactly as to the container's UID 2001. (Switching to UID
2001 itself is not possible on machines whose Python lives under /root, mode 0700.)
"""

from __future__ import annotations

import ctypes
import errno
import os
from pathlib import Path

PR_CAPBSET_DROP = 24


def drop_capabilities() -> None:
    """``preexec_fn``: empty the bounding set, so the exec'd program has no capability."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in range(64):
        if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            if ctypes.get_errno() == errno.EINVAL:  # past the kernel's last capability
                break
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def effective_capabilities(pid: int) -> int:
    """The CapEff mask of a running process (0: none)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    raise AssertionError(f"no CapEff for pid {pid}")


def is_root() -> bool:
    """Only root can own files as another UID and drop capabilities for a child."""
    return os.geteuid() == 0
