"""Stop a child process for sure: a test that fails half-way must not leave it running."""

from __future__ import annotations

import subprocess


def terminate_then_kill(process: subprocess.Popen, timeout: float = 15) -> int:
    """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL; return the exit status."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode
