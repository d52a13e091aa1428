"""Ask GINA's products.json for one poll, in a thread of its own.

A poll needs little to phrase its question (the settings, the queue file, the
poll state) and much more to act on the answer (the download engine, the
placer, HDF5 checks). mirror_gina therefore asks first and loads the rest while
GINA answers: :class:`Asking` runs :class:`Lister` in the background and hands
its :class:`Listing` over when the poll needs it. On the 100 ms per request of
docs/benchmarks.md's stand-in, that is the imports of the fetching side taken
off every poll's path to its first download. This module therefore imports
nothing it does not need for the request itself.

:class:`Lister` asks once for every satellite the enabled queues need
(``satellites[]`` repeated), gzip accepted, with the validators of the last
answer (a 304 means nothing new: no parse); a server found to answer such a
query with only some of the satellites is asked once per satellite instead
(:mod:`listing_rules`).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from io import BytesIO

import pycurl

from avoviirscollector.mirror import gina_catalog, listing_rules, poll_state
from avoviirscollector.mirror.gina_catalog import Product, Queue
from avoviirscollector.mirror.poll_state import PollState

PROGRAM = "mirror_gina"
log = logging.getLogger(PROGRAM)
#: Seconds products.json may take before the poll gives up.
CATALOG_TIMEOUT = 120.0
#: How the mirror names itself to GINA (listings and downloads).
USER_AGENT = "avoviirscollector-mirror/2"


@dataclass
class Document:
    """A small document's answer: status (200 or 304), headers, body, and what it cost."""

    status: int
    body: bytes
    headers: dict[str, str]
    #: Bytes received on the wire: the status line and headers plus the (compressed) body.
    wire_bytes: int
    seconds: float


def fetch_document(
    url: str,
    timeout: float = 60.0,
    headers: Iterable[str] = (),
    max_bytes: int = 256 * 1024 * 1024,
    ca_bundle: str | None = None,
) -> Document:
    """GET products.json: gzip accepted (libcurl decodes it), 200 or 304, else OSError."""
    buffer = BytesIO()
    received: dict[str, str] = {}
    curl = pycurl.Curl()

    def write(data: bytes):
        if buffer.tell() + len(data) > max_bytes:
            return 0
        buffer.write(data)
        return None

    def header(line: bytes):
        text = line.decode("latin-1").strip()
        if text.startswith("HTTP/"):
            received.clear()
        elif ":" in text:
            key, _, value = text.partition(":")
            received[key.strip().lower()] = value.strip()

    began = time.monotonic()
    try:
        curl.setopt(pycurl.URL, url)
        curl.setopt(pycurl.WRITEFUNCTION, write)
        curl.setopt(pycurl.HEADERFUNCTION, header)
        curl.setopt(pycurl.NOSIGNAL, 1)
        curl.setopt(pycurl.FOLLOWLOCATION, 1)
        curl.setopt(pycurl.MAXREDIRS, 5)
        curl.setopt(pycurl.ACCEPT_ENCODING, "gzip")
        curl.setopt(pycurl.HTTPHEADER, list(headers))
        curl.setopt(pycurl.USERAGENT, USER_AGENT)
        curl.setopt(pycurl.CONNECTTIMEOUT_MS, int(min(timeout, 15.0) * 1000))
        curl.setopt(pycurl.TIMEOUT_MS, int(timeout * 1000))
        if ca_bundle:
            curl.setopt(pycurl.CAINFO, ca_bundle)
        curl.perform()
        status = curl.getinfo(pycurl.RESPONSE_CODE)
        size = getattr(pycurl, "SIZE_DOWNLOAD_T", pycurl.SIZE_DOWNLOAD)
        wire = int(curl.getinfo(pycurl.HEADER_SIZE) + curl.getinfo(size))
    except pycurl.error as error:
        code, message = error.args
        raise OSError(f"{message} (curl error {code})") from None
    finally:
        curl.close()
    if status not in (200, 304):
        raise OSError(f"HTTP {status}")
    return Document(status, buffer.getvalue(), received, wire, time.monotonic() - began)


def choose_window(settings, state: PollState, reason: str, now: float) -> listing_rules.Window:
    """The dates this poll asks for: the whole backfill window after a start, an outage,
    an operator's run or ``--full``, and every few minutes; otherwise the recent ones."""
    force = None
    if reason in ("collector start", poll_state.FULL_LISTING):
        force = reason
    elif not state.last_ok:
        force = "after an outage"
    elif reason == "operator":
        force = "operator"  # a manual run makes the whole backfill window complete
    moment = dt.datetime.fromtimestamp(now, dt.UTC)
    interval = settings.poll.full_listing_minutes * 60.0
    return listing_rules.choose_window(
        moment, settings.backfill_days, state.last_wide, interval, force
    )


@dataclass
class Listing:
    """What one poll's listing gave: products per freshly listed satellite, and its cost."""

    products: list[Product] = field(default_factory=list)
    listed: set = field(default_factory=set)  # satellites whose files were listed (200)
    requests: list[dict] = field(default_factory=list)
    validators: dict = field(default_factory=dict)  # url -> Validator | None to keep
    fallback: bool = False

    @property
    def modified(self) -> bool:
        return bool(self.listed)

    @property
    def wire_bytes(self) -> int:
        return sum(r["wire_bytes"] for r in self.requests)

    @property
    def entries(self) -> int:
        return sum(r["entries"] for r in self.requests)

    def statuses(self) -> str:
        return ",".join(str(r["status"]) for r in self.requests)


class Lister:
    """Asks products.json (conditionally, gzip) for a window; parses only 200 answers."""

    def __init__(self, settings, state: PollState, window: listing_rules.Window, now: float):
        self.settings, self.state, self.window, self.now = settings, state, window, now
        self.listing = Listing()

    def ask(self, satellites: list[str], conditional: bool = True) -> list[Product] | None:
        """One request; its products, None when the server answered 304."""
        params = gina_catalog.listing_query(
            satellites, self.settings.facility, self.window.start, self.window.end
        )
        url = gina_catalog.query_url(self.settings.gina_url, params)
        stored = self.state.validators.get(url)
        validator = listing_rules.Validator.from_json(stored) if stored else None
        headers = (
            listing_rules.conditional_headers(validator, self.now, self.state.retry_due)
            if conditional
            else []
        )
        log.debug("asking %s%s", url, " (conditional)" if headers else "")
        document = fetch_document(url, CATALOG_TIMEOUT, headers)
        record = {
            "satellites": satellites,
            "status": document.status,
            "wire_bytes": document.wire_bytes,
            "entries": 0,
            "seconds": round(document.seconds, 3),
        }
        self.listing.requests.append(record)
        if document.status == 304:
            self.listing.validators[url] = validator
            return None
        products, problems = gina_catalog.parse_products(document.body)
        for problem in problems:
            log.error("skipped an entry of products.json: %s", problem)
        record["entries"] = len(products)
        self.listing.validators[url] = listing_rules.validator_from(document.headers, self.now)
        self.listing.listed.update(satellites)
        return products

    def run(self, satellites: list[str]) -> Listing:
        """The whole listing: one multi-satellite request, or one per satellite."""
        state, wide = self.state, self.window.kind == "wide"
        multi = len(satellites) > 1 and (
            state.mode != "per-satellite"
            or (wide and listing_rules.use_multi(state.mode, state.mode_since, self.now))
        )
        if not multi:
            self.listing.fallback = len(satellites) > 1
            for satellite in satellites:
                self.listing.products += self.ask([satellite]) or []
            return self.listing
        products = self.ask(satellites)
        if products is None:
            return self.listing
        self.listing.products += products
        missing = listing_rules.missing_satellites(satellites, [p.name for p in products])
        if missing and wide:
            self._probe(satellites, missing)
        elif state.mode == "per-satellite" and not missing:
            log.info("GINA answers one query for %s again", ", ".join(satellites))
            state.mode, state.mode_since = "multi", self.now
        return self.listing

    def _probe(self, satellites: list[str], missing: list[str]) -> None:
        """Ask for the satellites missing from a multi answer alone: does the server ignore them?"""
        alone = {}
        for satellite in missing:
            found = self.ask([satellite], conditional=False) or []
            alone[satellite] = len(found)
            self.listing.products += found
        if listing_rules.ignores_multi(missing, alone):
            self.listing.fallback = True
            if self.state.mode != "per-satellite":
                log.warning(
                    "GINA answered a query for %s without files of %s, which it lists when "
                    "asked alone: asking once per satellite from now on",
                    ", ".join(satellites),
                    ", ".join(s for s in missing if alone[s]),
                )
            self.state.mode, self.state.mode_since = "per-satellite", self.now


def enabled_satellites(queues: list[Queue]) -> list[str]:
    """The satellites of the enabled queues, in queue order, each once."""
    return list(dict.fromkeys(q.satellite for q in queues if q.enabled))


class Asking:
    """One poll's question to GINA, asked in a thread of its own at :meth:`start`.

    :meth:`result` waits for the answer and raises what the listing raised
    (OSError, CatalogError: the poll's failed listing; anything else: a crash, as if
    it had run in the caller's thread). ``state`` is the poll state the question was
    phrased from (the listing updates its query mode); ``window`` its dates.
    """

    def __init__(self, state: PollState, window: listing_rules.Window, lister: Lister, satellites):
        self.state, self.window = state, window
        self._listing: Listing | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._ask, args=(lister, satellites), name="listing", daemon=True
        )
        self._thread.start()

    @classmethod
    def start(cls, settings, queues: list[Queue], reason: str, now: float) -> Asking:
        """Phrase the poll's question from the state in state/ and send it."""
        state = poll_state.load(settings.state_dir) or PollState()
        if reason == poll_state.FULL_LISTING:  # a 304 would hide files that left sdr/
            state.validators = {}
        window = choose_window(settings, state, reason, now)
        lister = Lister(settings, state, window, now)
        return cls(state, window, lister, enabled_satellites(queues))

    def _ask(self, lister: Lister, satellites: list[str]) -> None:
        try:
            self._listing = lister.run(satellites)
        except BaseException as error:  # handed to the poll's own thread
            self._error = error

    def result(self) -> Listing:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._listing is not None
        return self._listing
