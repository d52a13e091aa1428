"""A local GINA: products.json and the SDR files, over real HTTP/1.1, with faults on demand.

The mirror's tests, the demo and the benchmarks talk to this server exactly as
mirror_gina talks to GINA: the same query (``satellites[]``, ``facilities[]``,
dates), a JSON list of ``{"url", "md5sum", ...}``, files with Range support and
keep-alive. What GINA does on a bad day can be ordered per file or for all files:
HTTP errors, connections cut mid-body, corrupted bytes, a non-HDF5 file with the
right MD5, Range ignored, slow or stalled transfers, a malformed products.json.
A per-connection rate limit and a per-request delay stand in for the network.

Like any web server it may offer gzip (``Accept-Encoding``) and validators (an ETag
and Last-Modified, answering 304 to a matching If-None-Match / If-Modified-Since);
``gzip=False`` and ``validators="none"`` make it a server that ignores them, and
``multi_satellite=False`` one that answers a query for several ``satellites[]`` with
the first one's files only. ``catalog_days=N`` makes its listing GINA-sized: about
100 granules a day per satellite over N days, each with the 17 band and
geolocation files the collector does not mirror (listed, never fetched).

It serves every ``*.h5`` file of one directory and rescans it at each products.json
request, so files can be added while it runs (write them under a hidden name and
rename, as :mod:`synthetic_sdr` does). ``/_standin/stats`` gives its counters to
other processes (the benchmarks). Bodies go out with ``sendfile``, so a
2-core machine serves well over 40 MB/s on several connections.
"""

from __future__ import annotations

import argparse
import datetime as dt
import email.utils
import gzip as gzip_module
import hashlib
import json
import logging
import os
import re
import select
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from avoviirscollector import filenames
from avoviirscollector.filenames import SATELLITE_PLATFORMS

log = logging.getLogger(__name__)

#: Faults a file can be given (see :meth:`GinaStandin.fault`).
FILE_FAULTS = ("error", "cut", "corrupt", "not_hdf5", "no_range", "slow", "stall")
#: Faults products.json can be given (see :meth:`GinaStandin.catalog_fault`).
CATALOG_FAULTS = ("error", "malformed", "not_list", "bad_entry", "slow")
_PLATFORM_SATELLITES = {platform: sat for sat, platform in SATELLITE_PLATFORMS.items()}
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
#: The band and geolocation files of a granule the collector does not mirror.
UNWANTED_SEGMENTS = (
    "SVM01", "SVM02", "SVM06", "SVM07", "SVM08", "SVM09", "SVM10", "SVM11", "SVM12",
    "SVM13", "SVM14", "SVI02", "SVI03", "SVDNB", "GMODO", "GIMGO", "GDNBO",
)  # fmt: skip
VALIDATORS = ("both", "etag", "last-modified", "none")


@dataclass
class Fault:
    """One fault: what, how many more requests it applies to (None: all), parameters."""

    kind: str
    times: int | None = None
    status: int = 500
    after: int = 0
    rate: float = 0.0
    seconds: float = 3600.0


@dataclass(frozen=True)
class _Entry:
    name: str
    path: Path
    md5: str
    size: int
    mtime: float
    facility: str


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    standin: GinaStandin


class GinaStandin:
    """The stand-in server. ``with GinaStandin(dir) as gina: ... gina.url ...``.

    ``rate``: bytes/s per connection (None: as fast as possible); ``delay``: seconds
    before each answer (a round trip); ``facility``: the facility of every file
    unless :meth:`set_facility` says otherwise.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        rate: float | None = None,
        delay: float = 0.0,
        facility: str = "gilmore",
        gzip: bool = True,
        validators: str = "both",
        multi_satellite: bool = True,
        catalog_days: int = 0,
        granules_per_day: int = 100,
    ):
        if validators not in VALIDATORS:
            raise ValueError(f"validators must be one of {', '.join(VALIDATORS)}")
        self.directory = Path(directory)
        self.host, self.rate, self.delay, self.facility = host, rate, delay, facility
        self.gzip, self.validators, self.multi_satellite = gzip, validators, multi_satellite
        self._filler = _filler_entries(catalog_days, granules_per_day, facility)
        self._requested_port = port
        self._lock = threading.Lock()
        self._served = threading.Condition(self._lock)
        self._entries: dict[str, _Entry] = {}
        self._facilities: dict[str, str] = {}
        self._overrides: dict[str, tuple[Path, str]] = {}
        self._faults: dict[str | None, list[Fault]] = {}
        self._catalog_faults: list[Fault] = []
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._twins = Path(tempfile.mkdtemp(prefix="gina-standin-"))
        self.requests: Counter = Counter()
        self.bytes_served = 0
        self.catalog_bytes = 0
        self.connections_opened = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> GinaStandin:
        """Listen and serve in a background thread; returns self."""
        self._server = _Server((self.host, self._requested_port), _Handler)
        self._server.standin = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, drop open connections, remove the fault files."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            with self._lock:
                connections = list(self._connections)
            for connection in connections:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._server.server_close()
            self._server = None
        shutil.rmtree(self._twins, ignore_errors=True)

    def __enter__(self) -> GinaStandin:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port it listens on (picked by the kernel when 0 was asked)."""
        assert self._server is not None, "start() first"
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        """``http://host:port``."""
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The products.json URL, for GINA_URL."""
        return f"{self.base_url}/products.json"

    def file_url(self, name: str) -> str:
        """Where a file is served."""
        return f"{self.base_url}/data/{name}"

    # -- what it serves --------------------------------------------------------------------

    def set_facility(self, name: str, facility: str) -> None:
        """Say that one file was received at another facility (gilmore, uafgina)."""
        with self._lock:
            self._facilities[name] = facility
            self._entries.pop(name, None)

    def md5(self, name: str) -> str:
        """The MD5 products.json announces for a file."""
        entry = self._lookup(name)
        if entry is None:
            raise KeyError(name)
        return entry[1]

    def scan(self) -> list[str]:
        """Pick up files added, changed or removed in the directory; names served."""
        found = {}
        for path in self.directory.glob("*.h5"):
            if path.name.startswith("."):
                continue
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            found[path.name] = (path, stat)
        with self._lock:
            known = dict(self._entries)
        entries = {}
        for name, (path, stat) in found.items():
            old = known.get(name)
            if old and old.size == stat.st_size and old.mtime == stat.st_mtime:
                entries[name] = old
                continue
            facility = self._facilities.get(name, self.facility)
            md5 = _md5sum(path)
            entries[name] = _Entry(name, path, md5, stat.st_size, stat.st_mtime, facility)
        with self._lock:
            self._entries = entries
        return sorted(entries)

    def _lookup(self, name: str) -> tuple[Path, str, int] | None:
        with self._lock:
            entry = self._entries.get(name)
            override = self._overrides.get(name)
        if entry is None:
            self.scan()
            with self._lock:
                entry = self._entries.get(name)
        if entry is None:
            return None
        if override:
            return override[0], override[1], entry.size
        return entry.path, entry.md5, entry.size

    def catalog(self, params: dict[str, list[str]]) -> list[dict]:
        """The products.json answer for a query (parsed as ``parse_qs`` does)."""
        self.scan()
        with self._lock:
            entries = sorted(self._entries.values(), key=lambda e: e.name)
            overrides = dict(self._overrides)
        if not self.multi_satellite and len(params.get("satellites[]", [])) > 1:
            params = {**params, "satellites[]": params["satellites[]"][:1]}
        answer = []
        for entry in entries:
            try:
                parsed = filenames.parse(entry.name)
            except filenames.FilenameError:
                continue
            if not _matches(parsed, entry.facility, params):
                continue
            md5 = overrides[entry.name][1] if entry.name in overrides else entry.md5
            answer.append(self._json_entry(entry, parsed, md5))
        for parsed, facility, document in self._filler:
            if _matches(parsed, facility, params):
                answer.append({**document, "url": self.file_url(document["url"])})
        return answer

    def last_modified(self) -> float:
        """Epoch seconds of the newest entry (what Last-Modified says)."""
        with self._lock:
            times = [e.mtime for e in self._entries.values()]
        return max(times, default=0.0)

    def _json_entry(self, entry: _Entry, parsed: filenames.SdrName, md5: str) -> dict:
        return {
            "id": int(md5[:7], 16),
            "url": self.file_url(entry.name),
            "md5sum": md5,
            "satellite": _PLATFORM_SATELLITES.get(parsed.platform, parsed.platform),
            "sensor": "viirs",
            "processing_level": "level1",
            "facility": entry.facility,
            "start_time": parsed.start.isoformat() + "Z",
            "end_time": parsed.end.isoformat() + "Z",
            "size": entry.size,
            "created_at": dt.datetime.fromtimestamp(entry.mtime, dt.UTC).isoformat(),
        }

    # -- faults ----------------------------------------------------------------------------

    def fault(self, kind: str, name: str | None = None, times: int | None = None, **params):
        """Make ``name`` (None: every file) misbehave for ``times`` requests (None: always).

        Kinds: ``error`` (HTTP ``status``, default 500), ``cut`` (close the connection
        after ``after`` body bytes), ``corrupt`` (wrong bytes, right length),
        ``not_hdf5`` (content replaced by non-HDF5 bytes and products.json announces
        their MD5; permanent, ``name`` required), ``no_range`` (ignore Range, answer
        200), ``slow`` (``rate`` bytes/s), ``stall`` (send ``after`` bytes, then nothing
        for ``seconds``).
        """
        if kind not in FILE_FAULTS:
            raise ValueError(f"unknown file fault {kind!r}; known: {', '.join(FILE_FAULTS)}")
        if kind == "not_hdf5":
            self._make_not_hdf5(name)
            return
        with self._lock:
            self._faults.setdefault(name, []).append(Fault(kind, times, **params))

    def catalog_fault(self, kind: str, times: int | None = None, **params) -> None:
        """Make products.json misbehave: ``error`` (HTTP status), ``malformed`` (cut JSON),
        ``not_list`` (a JSON object), ``bad_entry`` (one entry without md5sum added),
        ``slow`` (answer after ``seconds``)."""
        if kind not in CATALOG_FAULTS:
            raise ValueError(f"unknown catalog fault {kind!r}; known: {', '.join(CATALOG_FAULTS)}")
        with self._lock:
            self._catalog_faults.append(Fault(kind, times, **params))

    def clear_faults(self) -> None:
        """Back to a healthy GINA."""
        with self._lock:
            self._faults.clear()
            self._catalog_faults.clear()
            self._overrides.clear()

    def _make_not_hdf5(self, name: str | None) -> None:
        if name is None or self._lookup(name) is None:
            raise ValueError(f"not_hdf5 needs the name of a served file, got {name!r}")
        source, _, size = self._lookup(name)
        twin = self._twins / name
        with open(source, "rb") as src, open(twin, "wb") as dst:
            shutil.copyfileobj(src, dst)
            dst.seek(0)
            dst.write(b"this is not HDF5 " * min(256, size // 17))
        with self._lock:
            self._overrides[name] = (twin, _md5sum(twin))

    def _take(self, faults: list[Fault]) -> Fault | None:
        """The first active fault of a list, one use consumed (call with the lock held)."""
        while faults:
            fault = faults[0]
            if fault.times is None:
                return fault
            if fault.times > 0:
                fault.times -= 1
                if fault.times == 0:
                    faults.pop(0)
                return fault
            faults.pop(0)
        return None

    def _file_fault(self, name: str) -> Fault | None:
        with self._lock:
            return self._take(self._faults.get(name, [])) or self._take(self._faults.get(None, []))

    def _catalog_fault(self) -> Fault | None:
        with self._lock:
            return self._take(self._catalog_faults)

    # -- counters --------------------------------------------------------------------------

    def stats(self) -> dict:
        """Counters so far (also served at ``/_standin/stats`` for other processes)."""
        with self._lock:
            return {
                "catalog_requests": self.requests["catalog"],
                "catalog_not_modified": self.requests["catalog_304"],
                "catalog_bytes": self.catalog_bytes,
                "file_requests": self.requests["file"],
                "bytes_served": self.bytes_served,
                "connections_opened": self.connections_opened,
            }

    def _count(self, nbytes: int) -> None:
        with self._served:
            self.bytes_served += nbytes
            self._served.notify_all()

    def wait_for_bytes(self, nbytes: int, timeout: float) -> bool:
        """Block until at least ``nbytes`` body bytes were served in all; False on timeout."""
        with self._served:
            return self._served.wait_for(lambda: self.bytes_served >= nbytes, timeout)

    def _opened(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.add(connection)
            self.connections_opened += 1

    def _closed(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)


def _matches(parsed: filenames.SdrName, facility: str, params: dict[str, list[str]]) -> bool:
    """GINA's filters: satellites[], facilities[], sensors[], processing_levels[], dates."""
    satellites = params.get("satellites[]")
    if satellites and _PLATFORM_SATELLITES.get(parsed.platform) not in satellites:
        return False
    facilities = params.get("facilities[]")
    if facilities and facility not in facilities:
        return False
    if "viirs" not in params.get("sensors[]", ["viirs"]):
        return False
    if "level1" not in params.get("processing_levels[]", ["level1"]):
        return False
    day = parsed.start.date().isoformat()
    start, end = params.get("start_date", [""])[0], params.get("end_date", [""])[0]
    return not (start and day < start) and not (end and day > end)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """(first, last) byte of a single Range; None to serve everything; "416" if unsatisfiable."""
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if not match or match.groups() == ("", ""):
        return None  # a Range we do not understand is ignored, as RFC 9110 allows
    first, last = match.groups()
    if first == "":
        count = int(last)
        return (max(0, size - count), size - 1) if count and size else "416"
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        return "416"
    return start, end


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "GINA-standin/2.0"
    timeout = 60  # an idle keep-alive connection is closed after this
    server: _Server

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.standin._opened(self.connection)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.standin._closed(self.connection)

    def log_message(self, format, *args):  # noqa: A002 - BaseHTTPRequestHandler's name
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self):  # noqa: N802 - http.server's name
        self._answer(send_body=True)

    def do_HEAD(self):  # noqa: N802 - http.server's name
        self._answer(send_body=False)

    def _answer(self, send_body: bool):
        standin = self.server.standin
        if standin.delay:
            time.sleep(standin.delay)
        url = urlsplit(self.path)
        if url.path == "/products.json":
            with standin._lock:
                standin.requests["catalog"] += 1
            self._catalog(parse_qs(url.query, keep_blank_values=True), send_body)
        elif url.path == "/_standin/stats":
            self._plain(200, json.dumps(standin.stats()), "application/json")
        elif url.path.startswith("/data/"):
            name = unquote(url.path[len("/data/") :])
            with standin._lock:
                standin.requests["file"] += 1
                standin.requests[name] += 1
            self._file(name, send_body)
        else:
            self._plain(404, "not found\n")

    def _plain(self, status: int, text: str, content_type: str = "text/plain", extra=()):
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in extra:
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _catalog(self, params: dict[str, list[str]], send_body: bool):
        standin = self.server.standin
        fault = standin._catalog_fault()
        if fault and fault.kind == "slow":
            standin._stopping.wait(fault.seconds)
        if fault and fault.kind == "error":
            self._plain(fault.status, "<html>Internal Server Error</html>\n", "text/html")
            return
        entries = standin.catalog(params)
        if fault and fault.kind == "bad_entry":
            entries.append({"url": standin.file_url("SVM15_npp_broken.h5"), "satellite": "snpp"})
        text = json.dumps(entries)
        if fault and fault.kind == "malformed":
            text = text[: max(1, len(text) // 2)] + "<html>"
        elif fault and fault.kind == "not_list":
            text = json.dumps({"error": "query failed", "products": len(entries)})
        self._listing(text.encode(), standin)

    def _listing(self, body: bytes, standin: GinaStandin):
        """The answer with the validators and encoding this server offers; 304 when unchanged."""
        extra = []
        etag = f'"{hashlib.md5(body).hexdigest()[:20]}"'
        modified = email.utils.formatdate(standin.last_modified(), usegmt=True)
        if standin.validators in ("both", "etag"):
            extra.append(("ETag", etag))
        if standin.validators in ("both", "last-modified"):
            extra.append(("Last-Modified", modified))
        if self._not_modified(standin, etag, modified):
            with standin._lock:
                standin.requests["catalog_304"] += 1
            self.send_response(304)
            for key, value in extra:
                self.send_header(key, value)
            self.send_header("Content-Length", "0")
            self._count_catalog(self._end_headers_counted())
            return
        if standin.gzip and "gzip" in self.headers.get("Accept-Encoding", ""):
            body = gzip_module.compress(body, compresslevel=6)
            extra += [("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding")]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in extra:
            self.send_header(key, value)
        head = self._end_headers_counted()
        if self.command != "HEAD":
            self.wfile.write(body)
        self._count_catalog(head + len(body))

    def _not_modified(self, standin: GinaStandin, etag: str, modified: str) -> bool:
        if standin.validators in ("both", "etag"):
            wanted = self.headers.get("If-None-Match")
            if wanted is not None:
                return etag in [tag.strip() for tag in wanted.split(",")]
        if standin.validators in ("both", "last-modified"):
            since = self.headers.get("If-Modified-Since")
            if since:
                try:
                    when = email.utils.parsedate_to_datetime(since).timestamp()
                except (TypeError, ValueError):
                    return False
                return int(standin.last_modified()) <= when
        return False

    def _end_headers_counted(self) -> int:
        """end_headers(), returning the bytes of the status line and headers sent."""
        head = sum(len(line) for line in getattr(self, "_headers_buffer", [])) + 2
        self.end_headers()
        return head

    def _count_catalog(self, nbytes: int):
        """Listing bytes on the wire (status line, headers and body as sent)."""
        standin = self.server.standin
        with standin._lock:
            standin.catalog_bytes += nbytes

    def _file(self, name: str, send_body: bool):
        standin = self.server.standin
        found = standin._lookup(name)
        if found is None:
            self._plain(404, f"no such file {name}\n")
            return
        path, _, size = found
        fault = standin._file_fault(name)
        if fault and fault.kind == "error":
            self._plain(fault.status, f"fault: HTTP {fault.status} for {name}\n")
            return
        ignore_range = bool(fault and fault.kind == "no_range")
        wanted = None if ignore_range else parse_range(self.headers.get("Range"), size)
        if wanted == "416":
            unsatisfiable = [("Content-Range", f"bytes */{size}")]
            self._plain(416, "range not satisfiable\n", extra=unsatisfiable)
            return
        start, end = wanted if wanted else (0, size - 1)
        self.send_response(206 if wanted else 200)
        self.send_header("Content-Type", "application/x-hdf5")
        self.send_header("Content-Length", str(end - start + 1))
        if wanted:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        if not ignore_range:
            self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if send_body and end >= start:
            _Body(self, path, start, end - start + 1, fault).send()


class _Body:
    """One response body: sendfile in paced chunks, with the fault that applies."""

    def __init__(self, handler: _Handler, path: Path, start: int, length: int, fault):
        self.handler, self.path, self.start, self.length, self.fault = (
            handler,
            path,
            start,
            length,
            fault,
        )
        self.standin = handler.server.standin
        self.sock = handler.connection
        rate = fault.rate if fault and fault.kind == "slow" else self.standin.rate
        self.rate = rate or None
        self.chunk = 1024 * 1024 if not self.rate else int(max(16384, min(262144, self.rate / 20)))

    def send(self) -> None:
        kind = self.fault.kind if self.fault else None
        stop_at = self.fault.after if kind in ("cut", "stall") else self.length
        began, sent = time.monotonic(), 0
        try:
            with open(self.path, "rb") as stream:
                while sent < min(stop_at, self.length):
                    count = min(self.chunk, min(stop_at, self.length) - sent)
                    sent += self._send_chunk(stream, self.start + sent, count, kind == "corrupt")
                    if self.rate:
                        delay = began + sent / self.rate - time.monotonic()
                        if delay > 0 and self.standin._stopping.wait(delay):
                            return
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.handler.close_connection = True
            return
        if kind == "stall" and sent < self.length:
            self._stall()
        if sent < self.length:  # cut (or stalled): close so the client sees a short body
            self.handler.close_connection = True
            try:
                self.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def _send_chunk(self, stream, offset: int, count: int, corrupt: bool) -> int:
        if corrupt:
            data = bytearray(os.pread(stream.fileno(), count, offset))
            data[0] ^= 0xFF
            self.sock.sendall(data)
            sent = len(data)
        else:
            sent = self.sock.sendfile(stream, offset, count)
        self.standin._count(sent)
        return sent

    def _stall(self) -> None:
        """Send nothing until the client gives up, the stall ends or the server stops."""
        deadline = time.monotonic() + self.fault.seconds
        while time.monotonic() < deadline and not self.standin._stopping.is_set():
            readable, _, _ = select.select([self.sock], [], [], 0.2)
            if readable:
                try:
                    if not self.sock.recv(65536, socket.MSG_PEEK):
                        return  # the client closed the connection
                except OSError:
                    return


def _rate(text: str) -> float:
    """'10M' (bytes/s, SI suffixes k/M/G) or a plain number."""
    factors = {"k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9}
    try:
        if text and text[-1] in factors:
            return float(text[:-1]) * factors[text[-1]]
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a rate: {text!r} (e.g. 10M)") from None


def main(argv: list[str] | None = None) -> int:
    """``viirscollector gina-standin --dir DIR --port P``: serve a directory like GINA."""
    parser = argparse.ArgumentParser(
        prog="viirscollector gina-standin",
        description="Serve the .h5 files of a directory with GINA's products.json interface.",
    )
    parser.add_argument("--dir", required=True, type=Path, help="directory of SDR .h5 files")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8080, help="port (0: any free one)")
    parser.add_argument("--rate", type=_rate, help="bytes/s per connection, e.g. 10M")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--facility", default="gilmore", help="facility of every file")
    parser.add_argument(
        "--catalog-days",
        type=int,
        default=0,
        help="list a GINA-sized catalogue: this many days of ~100 granules a "
        "day per satellite with 17 unwanted files each (default 0: none)",
    )
    parser.add_argument("--no-gzip", action="store_true", help="ignore Accept-Encoding")
    parser.add_argument(
        "--validators",
        choices=VALIDATORS,
        default="both",
        help="ETag and/or Last-Modified offered (default both)",
    )
    parser.add_argument(
        "--single-satellite",
        action="store_true",
        help="answer a query for several satellites[] with the first one's only",
    )
    args = parser.parse_args(argv)
    if not args.dir.is_dir():
        print(f"gina-standin: {args.dir} is not a directory", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        standin = GinaStandin(
            args.dir,
            host=args.host,
            port=args.port,
            rate=args.rate,
            delay=args.delay,
            facility=args.facility,
            gzip=not args.no_gzip,
            validators=args.validators,
            multi_satellite=not args.single_satellite,
            catalog_days=args.catalog_days,
        )
        standin.start()
    except OSError as error:
        print(f"gina-standin: cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    print(f"GINA stand-in: {len(standin.scan())} files of {args.dir} at {standin.url}", flush=True)
    done.wait()
    standin.stop()
    return 0


def _md5sum(path) -> str:
    """Hex MD5 of a file, streamed (the stand-in serves files of up to gigabytes)."""
    with open(path, "rb") as stream:
        return hashlib.file_digest(stream, "md5").hexdigest()


def _filler_entries(days: int, per_day: int, facility: str) -> list:
    """GINA-sized listing filler: (parsed name, facility, JSON entry) of unwanted files.

    ``per_day`` granules a day per satellite over ``days`` days up to an hour ago, each
    with the :data:`UNWANTED_SEGMENTS`; the JSON's ``url`` holds the bare name (the
    server prefixes its address).
    """
    if days <= 0:
        return []
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    latest = now - dt.timedelta(hours=1)
    first_day = dt.datetime.combine(now.date() - dt.timedelta(days=days - 1), dt.time())
    step = 86400 / per_day
    result = []
    for platform, satellite in _PLATFORM_SATELLITES.items():
        orbit = 40000 + 10000 * list(_PLATFORM_SATELLITES).index(platform)
        index = 0
        while (start := first_day + dt.timedelta(seconds=round(index * step, 1))) < latest:
            end = start + dt.timedelta(seconds=85.3)
            created = start + dt.timedelta(minutes=12)
            for segment in UNWANTED_SEGMENTS:
                name = filenames.compose(segment, platform, start, end, orbit + index // 7, created)
                parsed = filenames.parse(name)
                md5 = hashlib.md5(name.encode()).hexdigest()
                document = {
                    "id": int(md5[:7], 16),
                    "url": name,
                    "md5sum": md5,
                    "satellite": satellite,
                    "sensor": "viirs",
                    "processing_level": "level1",
                    "facility": facility,
                    "start_time": parsed.start.isoformat() + "Z",
                    "end_time": parsed.end.isoformat() + "Z",
                    "size": 40_000_000,
                    "created_at": created.isoformat() + "Z",
                }
                result.append((parsed, facility, document))
            index += 1
    return result
