"""What to ask GINA, what its answer means, and which files to fetch in which order.

No I/O here: mirror_gina reads the queue file and the HTTP answer and hands them
to these functions, so the rules are tested directly and read like the README.

Decisions:
- A products.json answer that is not JSON, or not a list, fails the whole queue
  (:class:`CatalogError`): nothing in it can be trusted.
- One entry without a usable ``url`` or ``md5sum`` is skipped and reported as a
  problem (the caller logs it as an error); the other entries go on, because one
  bad line at GINA must not cost every other granule of the pass.
"""

from __future__ import annotations

import datetime as dt
import json
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from avoviirscollector import filenames
from avoviirscollector.filenames import SATELLITE_PLATFORMS

#: The fixed part of the query, as the original collector sent it.
FIXED_QUERY = (("action", "index"), ("commit", "Get Products"), ("controller", "products"))
_MD5 = re.compile(r"^[0-9a-fA-F]{32}$")
_QUEUE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SEGMENT = re.compile(r"^[A-Z0-9]{5}$")
#: The suffix of a download's temp name (``tmp/mirror_gina-<queue>/<name>.part``).
TEMP_SUFFIX = ".part"
#: Longest file name we accept: its temp name must fit NAME_MAX (255 bytes on Linux
#: filesystems), or the download could never be written and the name would come back
#: every run.
MAX_NAME_BYTES = 255 - len(TEMP_SUFFIX)


class QueueConfigError(ValueError):
    """The queue file cannot be used (the message names the queue and the field)."""


class CatalogError(ValueError):
    """GINA's answer as a whole is unusable (not JSON, not a list)."""


@dataclass(frozen=True)
class Queue:
    """One mirror queue: a satellite and the segments (bands) wanted from it."""

    name: str
    satellite: str
    bands: tuple[str, ...]
    enabled: bool = True

    @property
    def platform(self) -> str:
        """The platform in file names (npp, j01, j02)."""
        return SATELLITE_PLATFORMS[self.satellite]

    def wants(self, name: str) -> bool:
        """True when the file name's segment is one of the queue's bands."""
        return name.split("_", 1)[0] in self.bands


@dataclass(frozen=True)
class Product:
    """One usable entry of products.json."""

    url: str
    md5: str
    name: str


def _queue(entry: Any, index: int) -> Queue:
    if not isinstance(entry, Mapping):
        raise QueueConfigError(f"queue #{index + 1}: expected a mapping, got {entry!r}")
    name = entry.get("name")
    if not isinstance(name, str) or not _QUEUE_NAME.match(name):
        raise QueueConfigError(f"queue #{index + 1}: 'name' must be a word, got {name!r}")
    satellite = entry.get("satellite")
    if satellite not in SATELLITE_PLATFORMS:
        allowed = ", ".join(SATELLITE_PLATFORMS)
        raise QueueConfigError(f"queue {name}: 'satellite' must be one of {allowed}")
    bands = entry.get("bands")
    if (
        not isinstance(bands, list)
        or not bands
        or not all(isinstance(b, str) and _SEGMENT.match(b) for b in bands)
    ):
        raise QueueConfigError(f"queue {name}: 'bands' must be a list like [GMTCO, SVM15]")
    enabled = entry.get("enabled", True)
    if not isinstance(enabled, bool):
        raise QueueConfigError(f"queue {name}: 'enabled' must be true or false")
    unknown = set(entry) - {"name", "satellite", "bands", "enabled"}
    if unknown:
        raise QueueConfigError(f"queue {name}: unknown field(s) {', '.join(sorted(unknown))}")
    return Queue(name, satellite, tuple(bands), enabled)


def parse_queues(document: Any) -> list[Queue]:
    """Validate the parsed queue file (``{"queues": [...]}``) into queues."""
    if not isinstance(document, Mapping) or not isinstance(document.get("queues"), list):
        raise QueueConfigError("expected a top-level 'queues:' list")
    queues = [_queue(entry, index) for index, entry in enumerate(document["queues"])]
    names = [q.name for q in queues]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise QueueConfigError(f"queue name(s) used twice: {', '.join(duplicates)}")
    return queues


def query(queue: Queue, facility: str, backfill_days: int, today: dt.date) -> list[tuple]:
    """The query parameters for one queue: end = today + 1 day, start = end - backfill.

    ``facility`` ``any`` leaves the facility filter out (GINA receives passes at
    either site).
    """
    end = today + dt.timedelta(days=1)
    start = end - dt.timedelta(days=backfill_days)
    return listing_query([queue.satellite], facility, start, end)


def listing_query(
    satellites: Sequence[str], facility: str, start: dt.date, end: dt.date
) -> list[tuple]:
    """The query of one listing for several satellites (``satellites[]`` repeated)."""
    params = list(FIXED_QUERY)
    params += [
        ("start_date", start.isoformat()),
        ("end_date", end.isoformat()),
        ("sensors[]", "viirs"),
        ("processing_levels[]", "level1"),
    ]
    if facility != "any":
        params.append(("facilities[]", facility))
    params += [("satellites[]", satellite) for satellite in satellites]
    return params


def query_url(base_url: str, params: Sequence[tuple]) -> str:
    """GINA_URL with the query appended (``[]`` kept readable, as GINA's own links do)."""
    separator = "&" if "?" in base_url else "?"
    return base_url + separator + urlencode(params, safe="[]")


def _product(entry: Any) -> Product:
    """One entry, or ValueError saying what is wrong with it."""
    if not isinstance(entry, Mapping):
        raise ValueError(f"entry is not an object: {str(entry)[:80]!r}")
    url, md5 = entry.get("url"), entry.get("md5sum")
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"entry without a usable url: {str(dict(entry))[:120]}")
    name = posixpath.basename(urlsplit(url).path)
    if not name:
        raise ValueError(f"url names no file: {url}")
    length = len(name.encode("utf-8", "surrogateescape"))
    if length > MAX_NAME_BYTES:
        raise ValueError(
            f"file name of {length} bytes, longer than {MAX_NAME_BYTES}: {name[:60]}..."
        )
    if any(ord(c) < 32 or c == "\x7f" for c in name):
        raise ValueError(f"file name with control characters: {name[:60]!r}")
    if not isinstance(md5, str) or not _MD5.match(md5):
        raise ValueError(f"entry for {name} without a usable md5sum: {md5!r}")
    return Product(url=url, md5=md5.lower(), name=name)


def parse_products(body: bytes | str) -> tuple[list[Product], list[str]]:
    """Parse products.json: (usable products, one problem line per skipped entry).

    Raises CatalogError when the answer as a whole is not a JSON list.
    """
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        excerpt = body[:60] if isinstance(body, str) else body[:60].decode("utf-8", "replace")
        raise CatalogError(f"answer is not JSON ({error}); it starts with {excerpt!r}") from None
    if not isinstance(document, list):
        raise CatalogError(f"answer is a JSON {type(document).__name__}, not a list of files")
    products, problems, seen = [], [], set()
    for entry in document:
        try:
            product = _product(entry)
        except ValueError as error:
            problems.append(str(error))
            continue
        if product.name not in seen:
            seen.add(product.name)
            products.append(product)
    return products, problems


def _order_key(parsed: filenames.SdrName):
    """Newest granule first; geolocation before bands within a granule."""
    return (
        -parsed.start.timestamp(),
        parsed.platform,
        parsed.orbit,
        not parsed.is_geolocation,
        parsed.segment,
    )


def select(
    products: Iterable[Product], queue: Queue, present: Iterable[str]
) -> tuple[list[Product], list[str]]:
    """Files the queue wants and sdr/ lacks, in download order; plus problems.

    A wanted band whose name does not parse as an SDR file name is a problem (it
    could not be ordered or processed), not a download.
    """
    have = set(present)
    keyed, problems = [], []
    for product in products:
        if not queue.wants(product.name) or product.name in have:
            continue
        try:
            parsed = filenames.parse(product.name)
        except filenames.FilenameError as error:
            problems.append(str(error))
            continue
        keyed.append((_order_key(parsed), product))
    keyed.sort(key=lambda pair: pair[0])
    return [product for _, product in keyed], problems
