"""``viirscollector fetch-tle``: two-line elements of the NOAA weather satellites, when changed.

The workers that project VIIRS granules need current orbital elements; the crontab
runs this hourly. Like the original's ``wget -N`` it downloads only when Celestrak's
copy changed (If-Modified-Since from the local file's time, plus If-None-Match with
the ETag of the last download), and it never makes things worse:

- the text is checked before it replaces anything: every element set is a line 1
  and a line 2 of 69 characters with matching catalog numbers and correct modulo-10
  checksums, optionally preceded by a name line; an HTML error page, a truncated
  or corrupted download is refused;
- the new file is written beside the old one and renamed over it (atomic), with
  the server's Last-Modified as its mtime, as wget -N does;
- on any failure the old file stays. A failure is a WARNING while the file we have
  is younger than :data:`STALE_AFTER_HOURS`, an ERROR (e-mailed) after that, so a
  short Celestrak outage does not page anyone but stale elements do.

``TLE_URL`` overrides Celestrak's GP URL; ``TLE_CA_BUNDLE`` names a PEM bundle to
trust instead of the system's (for a TLS-inspecting proxy).
"""

from __future__ import annotations

import argparse
import email.utils
import hashlib
import json
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from avoviirscollector.redaction import redact

log = logging.getLogger("fetch-tle")

#: Name of the elements file under elements/ (what ``wget -N`` of Celestrak's noaa.txt made).
TLE_FILENAME = "noaa.txt"
#: Where the ETag and URL of the last download are kept, under state/.
META_FILENAME = "tle.json"
STALE_AFTER_HOURS = 48
MAX_BYTES = 5_000_000
CONNECT_TIMEOUT, READ_TIMEOUT = 10.0, 60.0
LINE_LENGTH = 69


class TleError(ValueError):
    """Text that is not a valid set of two-line elements."""


def checksum(line: str) -> int:
    """The TLE checksum of a line's first 68 characters: digits summed, '-' counts 1, mod 10."""
    total = 0
    for char in line[:68]:
        if char.isdigit():
            total += int(char)
        elif char == "-":
            total += 1
    return total % 10


def _check_line(line: str, number: str, where: int) -> None:
    if len(line) != LINE_LENGTH or not line.startswith(f"{number} "):
        raise TleError(f"line {where}: not a TLE line {number} of {LINE_LENGTH} characters")
    if not line[-1].isdigit() or int(line[-1]) != checksum(line):
        raise TleError(f"line {where}: checksum {line[-1]!r} does not match {checksum(line)}")


def validate(text: str) -> int:
    """Check every element set; return how many there are. TleError says what is wrong."""
    lines = [line.rstrip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    count, index = 0, 0
    while index < len(lines):
        if not lines[index].startswith("1 "):  # a name line (satellite name, <= 24 characters)
            if len(lines[index]) > 24 or not lines[index]:
                raise TleError(f"line {index + 1}: neither a satellite name nor a TLE line")
            index += 1
        if index + 1 >= len(lines):
            raise TleError(f"line {index + 1}: element set is incomplete")
        first, second = lines[index], lines[index + 1]
        _check_line(first, "1", index + 1)
        _check_line(second, "2", index + 2)
        if first[2:7] != second[2:7]:
            raise TleError(f"lines {index + 1}-{index + 2}: catalog numbers differ")
        count += 1
        index += 2
    if count == 0:
        raise TleError("no element sets at all")
    return count


@dataclass
class Result:
    """What one fetch did: ``changed`` replaced the file, else it was already current."""

    changed: bool
    satellites: int = 0


def _conditional_headers(target: Path, meta: dict, url: str) -> dict[str, str]:
    headers = {"User-Agent": "avoviirscollector fetch-tle"}
    if target.exists():
        headers["If-Modified-Since"] = email.utils.formatdate(target.stat().st_mtime, usegmt=True)
        if meta.get("url_sha256") == _fingerprint(url) and meta.get("etag"):
            headers["If-None-Match"] = meta["etag"]
    return headers


def _read_meta(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _fingerprint(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()


def _write_atomically(
    target: Path, data: bytes, mtime: float | None = None, mode: int = 0o644
) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, mode)
        if mtime is not None:
            os.utime(temporary, (mtime, mtime))
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _download(url: str, headers: dict, verify) -> tuple[int, bytes, dict]:
    import requests

    timeout = (CONNECT_TIMEOUT, READ_TIMEOUT)
    with requests.get(url, headers=headers, timeout=timeout, verify=verify, stream=True) as reply:
        if reply.status_code != 200:
            return reply.status_code, b"", dict(reply.headers)
        body = bytearray()
        for chunk in reply.iter_content(65536):
            body += chunk
            if len(body) > MAX_BYTES:
                raise TleError(f"more than {MAX_BYTES} bytes: not a TLE file")
        return 200, bytes(body), dict(reply.headers)


def _holds(target: Path, body: bytes) -> bool:
    """True when the file already holds ``body``. One we may not read (the original
    collector's, written 0600 by another UID) does not: it is replaced, not a failure."""
    try:
        return target.read_bytes() == body
    except OSError:
        return False


def fetch(url: str, target: Path, meta_path: Path, ca_bundle: Path | None = None) -> Result:
    """Download when changed, check, replace atomically. Raises on any failure (file kept)."""
    meta = _read_meta(meta_path)
    headers = _conditional_headers(target, meta, url)
    status, body, reply_headers = _download(url, headers, str(ca_bundle) if ca_bundle else True)
    if status == 304:
        return Result(changed=False)
    if status != 200:
        raise TleError(f"HTTP status {status}")
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise TleError("not ASCII text") from None
    satellites = validate(text)
    modified = reply_headers.get("Last-Modified")
    mtime = email.utils.parsedate_to_datetime(modified).timestamp() if modified else None
    changed = not _holds(target, body)
    if changed:
        _write_atomically(target, body, mtime)
    # TLE_URL may carry a credential: the file keeps it redacted, plus a hash to tell
    # whether the ETag belongs to the URL of today's settings, and only its owner reads it.
    new_meta = {"url": redact(url), "url_sha256": _fingerprint(url),
                "etag": reply_headers.get("ETag"), "last_modified": modified}  # fmt: skip
    _write_atomically(meta_path, json.dumps(new_meta, indent=1).encode(), mode=0o600)
    return Result(changed=changed, satellites=satellites)


def _remove_leftovers(directory: Path) -> None:
    """Delete .part files a killed run left (older than an hour, so never a running one's)."""
    for part in directory.glob(f".{TLE_FILENAME}.*.part"):
        try:
            if part.stat().st_mtime < time.time() - 3600:
                part.unlink()
        except OSError:
            pass


def _report_failure(target: Path, url: str, reason: str) -> None:
    if target.exists():
        hours = (time.time() - target.stat().st_mtime) / 3600
        level = logging.ERROR if hours > STALE_AFTER_HOURS else logging.WARNING
        log.log(
            level,
            "could not update TLEs from %s: %s; keeping %s (%.0f h old), next try at the next run",
            url,
            reason,
            target,
            hours,
        )
    else:
        log.error("could not download TLEs from %s: %s; none in %s yet", url, reason, target)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``viirscollector fetch-tle``."""
    argparse.ArgumentParser(
        prog="viirscollector fetch-tle",
        description="Download the NOAA satellites' two-line elements into elements/ when changed.",
    ).parse_args(argv)
    from avoviirscollector import logs, settings

    config = settings.load_or_exit()
    logs.setup("fetch-tle", config)
    target = config.elements_dir / TLE_FILENAME
    config.elements_dir.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(config.elements_dir)
    started = time.monotonic()
    try:
        result = fetch(config.tle_url, target, config.state_dir / META_FILENAME, config.ca_bundle)
    except Exception as error:  # any failure: keep the old file, say why, try next hour
        _report_failure(target, config.tle_url, _describe(error))
        return 1
    seconds = time.monotonic() - started
    if result.changed:
        log.info(
            "TLEs for %d satellites written to %s in %.1f s", result.satellites, target, seconds
        )
    else:
        log.info("TLEs unchanged at %s; %s kept", config.tle_url, target)
    return 0


def _describe(error: Exception) -> str:
    """One line: requests' exception texts run long and nest their causes."""
    lines = str(error).splitlines()
    text = lines[0][:300] if lines else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


if __name__ == "__main__":
    sys.exit(main())
