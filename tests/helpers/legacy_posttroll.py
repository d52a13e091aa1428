"""Decode messages the way the clients in the field do: with posttroll 1.5.1 (2019).

Why this exists: the workers that ask the task broker on 19091 and the subscribers of
29092 run posttroll 1.5.x, which only accepts message version v1.01 and parses the
header time and every date in the data with ``datetime.strptime`` on naive ISO
strings. posttroll 1.13 (what we run) writes v1.2 with time zones by default, which
those clients refuse ("Invalid Message version"). A test that decodes with the
current posttroll proves nothing about them, so tests decode with the real 1.5.1.

posttroll 1.5.1 cannot be imported next to today's posttroll, so it is installed
(once, lazily, from PyPI) into ``<repo>/.legacy/posttroll-1.5.1`` (gitignored) and run
in a subprocess whose PYTHONPATH puts it first. Use :func:`decode_many_with_posttroll_1_5`
(one subprocess for many messages) or the ``posttroll_1_5`` fixture when decoding more
than one message.

Each decoded message is a dict: subject, type, sender, time, version, binary, data
(datetimes as ISO strings) and ``datetimes``: the paths (``"start_time"``,
``"dataset/0/uri"``...) of the values that posttroll 1.5.1 turned into datetime objects,
so a test can tell that the old client really got a datetime and not a string.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

LEGACY_VERSION = "1.5.1"
REPO = Path(__file__).resolve().parents[2]
LEGACY_DIR = REPO / ".legacy" / f"posttroll-{LEGACY_VERSION}"
_COMPLETE = LEGACY_DIR / ".complete"
INSTALL_TIMEOUT = 300
DECODE_TIMEOUT = 60

# Runs under posttroll 1.5.1: reads base64 raw messages as JSON on stdin, writes results.
_DECODER = r"""
import base64, datetime, json, sys
import posttroll, posttroll.message
from posttroll.message import Message

legacy = sys.argv[1]
if not posttroll.__file__.startswith(legacy):
    sys.exit("wrong posttroll imported: " + posttroll.__file__)

def plain(value, path, found):
    if isinstance(value, datetime.datetime):
        found.append(path)
        return value.isoformat()
    if isinstance(value, dict):
        return {k: plain(v, f"{path}/{k}" if path else str(k), found) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v, f"{path}/{i}" if path else str(i), found) for i, v in enumerate(value)]
    return value

results = []
for item in json.load(sys.stdin):
    raw = base64.b64decode(item)
    try:
        msg = Message.decode(raw)
    except Exception as error:
        results.append({"error": f"{type(error).__name__}: {error}"})
        continue
    found = []
    data = plain(msg.data, "", found)
    results.append({
        "subject": msg.subject, "type": msg.type, "sender": msg.sender,
        "time": msg.time.isoformat(), "version": msg.version, "binary": msg.binary,
        "data": data, "datetimes": found,
    })
json.dump(results, sys.stdout)
"""


class LegacyDecodeError(AssertionError):
    """posttroll 1.5.1 refused a message: a client in the field would refuse it too."""


def ensure_installed() -> Path:
    """Install posttroll 1.5.1 (and six, its one pure dependency) once; return its directory.

    A file lock and an install-then-rename keep concurrent test sessions from seeing a
    half-installed directory.
    """
    if _COMPLETE.exists():
        return LEGACY_DIR
    LEGACY_DIR.parent.mkdir(parents=True, exist_ok=True)
    with open(LEGACY_DIR.parent / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _COMPLETE.exists():
            return LEGACY_DIR
        staging = Path(tempfile.mkdtemp(prefix="posttroll-", dir=LEGACY_DIR.parent))
        try:
            subprocess.run(
                [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
                + ["--no-deps", "--target", str(staging), f"posttroll=={LEGACY_VERSION}", "six"],
                check=True,
                timeout=INSTALL_TIMEOUT,
                capture_output=True,
                text=True,
            )
        except subprocess.CalledProcessError as error:
            shutil.rmtree(staging, ignore_errors=True)
            msg = f"could not install posttroll {LEGACY_VERSION}: {error.stderr}"
            raise RuntimeError(msg) from None
        (staging / ".complete").touch()
        shutil.rmtree(LEGACY_DIR, ignore_errors=True)
        staging.rename(LEGACY_DIR)
    return LEGACY_DIR


def _as_bytes(raw: bytes | str) -> bytes:
    return raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)


def decode_many_with_posttroll_1_5(raws: list[bytes | str], *, strict: bool = True) -> list[dict]:
    """Decode many raw messages in one posttroll 1.5.1 subprocess.

    ``strict``: raise LegacyDecodeError if any message is refused; otherwise a refused
    message's entry is ``{"error": "MessageError: ..."}``.
    """
    legacy = ensure_installed()
    payload = json.dumps([base64.b64encode(_as_bytes(raw)).decode("ascii") for raw in raws])
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTTROLL_")}
    env["PYTHONPATH"] = str(legacy)
    done = subprocess.run(
        [sys.executable, "-c", _DECODER, str(legacy)],
        input=payload,
        capture_output=True,
        text=True,
        env=env,
        timeout=DECODE_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"posttroll {LEGACY_VERSION} decoder failed: {done.stderr.strip()}")
    results = json.loads(done.stdout)
    if strict:
        refused = [(i, r["error"]) for i, r in enumerate(results) if "error" in r]
        if refused:
            raise LegacyDecodeError(f"posttroll {LEGACY_VERSION} refused messages: {refused}")
    return results


def decode_with_posttroll_1_5(raw: bytes | str) -> dict:
    """Decode one raw message with posttroll 1.5.1's ``Message.decode``.

    Raises LegacyDecodeError when posttroll 1.5.1 refuses it.
    """
    return decode_many_with_posttroll_1_5([raw])[0]


@pytest.fixture(scope="session")
def posttroll_1_5():
    """The decoder of many messages, with posttroll 1.5.1 installed before the first test.

    Use from a test module with
    ``from helpers.legacy_posttroll import posttroll_1_5  # noqa: F401``.
    """
    ensure_installed()
    return decode_many_with_posttroll_1_5
