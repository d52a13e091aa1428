"""A local HTTP(S) server standing in for Celestrak's GP endpoint, with its faults.

It serves one elements text with an ETag and a Last-Modified, answers 304 to a
matching If-None-Match or a not-older If-Modified-Since (as Celestrak and any
static web server do), and can misbehave on request (:attr:`TleStandin.fault`):

- ``"500"``: an internal server error;
- ``"truncated"``: promises the whole body, sends half, closes the connection;
- ``"corrupt"``: one digit of the body changed (a checksum no longer matches);
- ``"html"``: status 200 with an HTML error page, as a captive proxy would send;
- ``"stall"``: sends the headers, then nothing for :attr:`stall_seconds`.

With ``certfile``/``keyfile`` it speaks HTTPS, to test a custom CA bundle.
``python -m avoviirscollector.standins.celestrak`` serves sample elements until Ctrl-C.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import http.server
import ssl
import sys
import threading
import time

from avoviirscollector.netutil import free_port

#: The satellites of Celestrak's "noaa" group that matter here, with their catalog numbers.
NOAA_SATELLITES = (
    ("NOAA 15", 25338),
    ("NOAA 18", 28654),
    ("NOAA 19", 33591),
    ("SUOMI NPP", 37849),
    ("NOAA 20 (JPSS-1)", 43013),
    ("NOAA 21 (JPSS-2)", 54234),
)


def _checksum(line: str) -> int:
    return sum(int(c) if c.isdigit() else (1 if c == "-" else 0) for c in line[:68]) % 10


#: Degrees the Earth turns per day relative to the stars (what moves the ascending node
#: relative to the ground as time passes).
EARTH_DEGREES_PER_DAY = 360.98564736629


def shift_elements(text: str, seconds: float) -> str:
    """Real elements moved ``seconds`` in time: the same orbit over the same ground.

    The epoch moves by ``seconds`` and the right ascension of the ascending node turns
    with the Earth, so every pass the original elements predict happens ``seconds``
    later over the same place (SGP4 propagates from the epoch, so its geometry is
    unchanged). Lets a test or benchmark ship a real, published TLE set and still have
    current elements and a pass at the moment it wants.
    """
    days = seconds / 86400
    out = []
    for line in text.splitlines():
        if line.startswith("1 ") and len(line) == 69:
            year, day = int(line[18:20]), float(line[20:32])
            epoch = dt.datetime(2000 + year if year < 57 else 1900 + year, 1, 1)
            epoch += dt.timedelta(days=day - 1 + days)
            day_of_year = (epoch - dt.datetime(epoch.year, 1, 1)).total_seconds() / 86400 + 1
            field = f"{epoch.year % 100:02d}{day_of_year:012.8f}"
            line = line[:18] + field + line[32:68]
            line += str(_checksum(line))
        elif line.startswith("2 ") and len(line) == 69:
            node = (float(line[17:25]) + EARTH_DEGREES_PER_DAY * days) % 360
            line = line[:17] + f"{node:8.4f}" + line[25:68]
            line += str(_checksum(line))
        out.append(line)
    return "\n".join(out) + "\n"


def element_set(name: str, number: int, epoch: dt.datetime, revolution: int = 12345) -> str:
    """Three lines (name, line 1, line 2) in the TLE format with correct checksums."""
    year_day = epoch.timetuple().tm_yday + (epoch.hour * 3600 + epoch.minute * 60) / 86400
    line1 = (
        f"1 {number:05d}U 98030A   {epoch:%y}{year_day:012.8f}  .00000123  00000-0  12345-3 0  999"
    )
    line2 = f"2 {number:05d}  98.7000 123.4567 0010000 123.4567 236.7890 14.26000000{revolution:5d}"
    line1 += str(_checksum(line1))
    line2 += str(_checksum(line2))
    return f"{name:<24}\n{line1}\n{line2}\n"


def sample_elements(epoch: dt.datetime | None = None) -> str:
    """Elements for the NOAA group, valid in form (not in orbit): what the tests serve."""
    epoch = epoch or dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC)
    return "".join(element_set(name, number, epoch) for name, number in NOAA_SATELLITES)


class TleStandin:
    """Celestrak on loopback. Set :attr:`body`, :attr:`last_modified`, :attr:`fault` freely."""

    def __init__(self, body: str | None = None, certfile=None, keyfile=None):
        self.fault: str | None = None
        self.stall_seconds = 5.0
        self.requests: list[dict[str, str]] = []
        self.certfile, self.keyfile = certfile, keyfile
        self.port = free_port()
        self.set_body(body if body is not None else sample_elements())
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def set_body(self, text: str, last_modified: float | None = None) -> None:
        """Publish new elements (new ETag; Last-Modified now unless given)."""
        self.body = text.encode()
        self.etag = '"' + hashlib.sha1(self.body).hexdigest()[:16] + '"'
        self.last_modified = float(int(time.time() if last_modified is None else last_modified))

    @property
    def url(self) -> str:
        """The GP URL to give fetch-tle (TLE_URL)."""
        scheme = "https" if self.certfile else "http"
        host = "localhost" if self.certfile else "127.0.0.1"
        return f"{scheme}://{host}:{self.port}/NORAD/elements/gp.php?GROUP=noaa&FORMAT=tle"

    def start(self) -> TleStandin:
        """Serve in a background thread."""
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self))
        self._server.daemon_threads = True
        if self.certfile:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.certfile, self.keyfile)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def not_modified(self, headers) -> bool:
        """A conditional request whose copy is current (ETag first, then date)."""
        if headers.get("If-None-Match"):
            return headers["If-None-Match"] == self.etag
        since = headers.get("If-Modified-Since")
        if since:
            try:
                return email.utils.parsedate_to_datetime(since).timestamp() >= self.last_modified
            except (TypeError, ValueError):
                return False
        return False


def _corrupted(body: bytes) -> bytes:
    """The body with one digit of the first line 1 changed."""
    at = body.index(b"\n1 ") + 10
    flipped = bytes([ord("0") + (body[at] - ord("0") + 1) % 10])
    return body[:at] + flipped + body[at + 1 :]


def _response(standin: TleStandin, headers) -> dict:
    """Status, body and misbehaviour for one request, given the stand-in's fault."""
    fault = standin.fault
    if fault == "500":
        return {"status": 500, "body": b"internal error\n"}
    if standin.not_modified(headers):
        return {"status": 304, "body": b""}
    if fault == "html":
        page = b"<html><body>Service unavailable</body></html>\n"
        return {"status": 200, "body": page, "content_type": "text/html"}
    if fault == "corrupt":
        return {"status": 200, "body": _corrupted(standin.body)}
    if fault == "truncated":
        return {"status": 200, "body": standin.body, "cut": len(standin.body) // 2}
    if fault == "stall":
        return {"status": 200, "body": standin.body, "stall": standin.stall_seconds}
    return {"status": 200, "body": standin.body}


def _handler(standin: TleStandin):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet: tests read standin.requests instead
            pass

        def do_GET(self):  # noqa: N802 - http.server's API name
            standin.requests.append(dict(self.headers))
            self._send(**_response(standin, self.headers))

        def _send(self, status, body, content_type="text/plain", cut=None, stall=0.0):
            self.send_response(status)
            if status in (200, 304):
                self.send_header("ETag", standin.etag)
                modified = email.utils.formatdate(standin.last_modified, usegmt=True)
                self.send_header("Last-Modified", modified)
            if status != 304:
                self.send_header("Content-Type", f"{content_type}; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if stall:
                time.sleep(stall)
            self.wfile.write(body[:cut] if cut is not None else body)
            if cut is not None:
                self.close_connection = True

    return Handler


def main(argv: list[str] | None = None) -> int:
    """Serve sample elements on a free port until interrupted."""
    standin = TleStandin().start()
    print(f"TLE stand-in serving on {standin.url} (Ctrl-C stops)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        standin.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
