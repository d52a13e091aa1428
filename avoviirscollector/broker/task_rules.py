"""The task queue's rules, as the original broker applied them, with no I/O.

A granule message from a segment_gatherer becomes a task. A task's key is
(subject, platform_name, orbit_number). A granule whose start_time is within
30 minutes of a queued task with the same key is merged into that task:
start_time = min, end_time = max, dataset = union (no uid twice), and the task
keeps its place. Otherwise it is a new task: that is what separates the
ascending and descending passes of one orbit. A task's product is the last
element of its subject.

Which task is handed out next (:func:`hand_out_key`): the original rule, oldest
queued first, for every task whose granule started within the last
VIIRS_STALE_TASK_HOURS; older tasks (a catch-up, a replay, the backlog of an
outage) wait behind those, newest granule first among themselves, so after an
outage the current pass reaches a worker before yesterday's.

Also here: what makes a granule "the same" for exactly-once hand-out, and the
validation of the workers' requests. task_store.py applies these rules to the
durable queue; :class:`RuleQueue` applies them in memory and is the model the
store is tested against.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

#: Granules closer than this to a queued task of the same key join it.
ORBIT_SLACK = dt.timedelta(minutes=30)
#: Largest request a worker may send.
MAX_REQUEST_BYTES = 64 * 1024
#: Longest lease a worker may ask for (the handed-out memory lasts longer).
MAX_LEASE_SECONDS = 24 * 3600.0
#: The products the gatherers make (etc/segment_gatherer.ini; a test checks they agree).
KNOWN_PRODUCTS = ("tir", "vis", "btd", "mir")
#: Default of VIIRS_STALE_TASK_HOURS: tasks of granules older than this go behind newer ones.
STALE_TASK_HOURS = 1
#: How start times are stored and compared (text in this format sorts by time).
START_FORMAT = "%Y-%m-%dT%H:%M:%S"
#: Longest file-name stem a log line carries (names of another pattern may be long).
MAX_STEM = 60

Key = tuple[str, str, int]


class GranuleError(ValueError):
    """A granule message the broker cannot turn into a task (it is logged and dropped)."""


class RequestError(ValueError):
    """A worker's request the broker refuses; ``str()`` is the reason sent back."""


def product_of(subject: str) -> str:
    """``/AVO/viirs/granule/tir`` -> ``tir``."""
    return subject.rstrip("/").rsplit("/", 1)[-1]


def utc_naive(value: dt.datetime) -> dt.datetime:
    """Naive UTC, the only kind the workers' posttroll 1.5 reads (aware ones are converted)."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def _naive_everywhere(value):
    if isinstance(value, dt.datetime):
        return utc_naive(value)
    if isinstance(value, dict):
        return {k: _naive_everywhere(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_naive_everywhere(v) for v in value]
    return value


def _orbit(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise GranuleError(f"orbit_number {value!r} is not an integer")
    try:
        return int(value)
    except ValueError:
        raise GranuleError(f"orbit_number {value!r} is not an integer") from None


def _time(data: Mapping, name: str) -> dt.datetime:
    value = data.get(name)
    if not isinstance(value, dt.datetime):
        raise GranuleError(f"{name} {value!r} is not a date and time")
    return utc_naive(value)


def _dataset(data: Mapping) -> list[dict]:
    dataset = data.get("dataset")
    if not isinstance(dataset, list) or not dataset:
        raise GranuleError("dataset is missing or empty")
    for item in dataset:
        if not isinstance(item, dict) or not isinstance(item.get("uid"), str):
            raise GranuleError(f"dataset entry {item!r} has no uid")
    return dataset


@dataclass(frozen=True)
class Granule:
    """One granule message, checked and with naive UTC datetimes."""

    subject: str
    atype: str
    data: dict = field(compare=False)
    platform_name: str
    orbit_number: int
    start_time: dt.datetime
    end_time: dt.datetime
    #: The request id of an operator's reprocess, or None for ordinary data.
    reprocess: str | None

    @property
    def key(self) -> Key:
        """Tasks are kept per (subject, platform_name, orbit_number)."""
        return (self.subject, self.platform_name, self.orbit_number)

    @property
    def product(self) -> str:
        """The product this granule's task is for."""
        return product_of(self.subject)

    @property
    def granule_id(self) -> str:
        """What makes a granule 'the same' when it is published again."""
        start = self.start_time.isoformat()
        return f"{self.subject}|{self.platform_name}|{self.orbit_number}|{start}"

    @property
    def uids(self) -> list[str]:
        """File names of the granule's dataset."""
        return [item["uid"] for item in self.data["dataset"]]

    def describe(self) -> str:
        """For log lines: product, the stem of its files' names (grep finds it), start time."""
        return f"{self.product} {files_stem(self.uids)} {self.start_time:%H:%M:%S}"


def granule_from_message(subject: str, atype: str, data) -> Granule:
    """Check a granule message's data; raise GranuleError naming what is wrong."""
    if not isinstance(subject, str) or not product_of(subject):
        raise GranuleError(f"subject {subject!r} names no product")
    if not isinstance(data, dict):
        raise GranuleError("data is not a JSON object")
    data = _naive_everywhere(data)
    platform = data.get("platform_name")
    if not isinstance(platform, str) or not platform:
        raise GranuleError(f"platform_name {platform!r} is missing")
    orbit = _orbit(data.get("orbit_number"))
    start, end = _time(data, "start_time"), _time(data, "end_time")
    _dataset(data)
    reprocess = data.get("reprocess")
    if isinstance(reprocess, dt.datetime):  # posttroll decodes a time-like request id
        reprocess = reprocess.isoformat()
    return Granule(
        subject=subject,
        atype=atype or "dataset",
        data=data,
        platform_name=platform,
        orbit_number=orbit,
        start_time=start,
        end_time=end,
        reprocess=str(reprocess) if reprocess else None,
    )


def file_stem(name: str) -> str:
    """What the files of one granule share in their names: the fields between the segment
    and the creation time, e.g. ``j01_d20240301_t1200003_e1201245_b32000`` of
    ``SVI05_j01_d20240301_t1200003_e1201245_b32000_c20240301121510123456_cspp_dev.h5``.
    A name of another pattern gives itself without its segment and extension.
    """
    base = name.rsplit("/", 1)[-1].removesuffix(".h5")
    fields = base.split("_")[1:] or [base]
    for index, value in enumerate(fields):
        if index and value[:1] == "c" and value[1:].isdigit():
            fields = fields[:index]
            break
    return "_".join(fields)


def files_stem(uids: Iterable[str]) -> str:
    """The stem of a granule's (or task's) files for a log line: the earliest granule's,
    with ``+N`` when the files belong to N more granules (a merged task)."""
    stems = sorted({file_stem(uid) for uid in uids})
    if not stems:
        return "no files"
    first = stems[0] if len(stems[0]) <= MAX_STEM else stems[0][: MAX_STEM - 1] + "~"
    return first if len(stems) == 1 else f"{first} +{len(stems) - 1}"


def joins(task_start: dt.datetime, granule_start: dt.datetime) -> bool:
    """True when a granule belongs to a queued task of its key (same pass of the orbit)."""
    return abs(task_start - granule_start) < ORBIT_SLACK


def merge_data(task: Mapping, granule: Mapping) -> dict:
    """The task's data with a granule merged in: min start, max end, dataset union by uid."""
    merged = dict(task)
    merged["start_time"] = min(task["start_time"], granule["start_time"])
    merged["end_time"] = max(task["end_time"], granule["end_time"])
    if "start_date" in task and "start_date" in granule:
        try:
            merged["start_date"] = min(task["start_date"], granule["start_date"])
        except TypeError:
            pass  # not comparable: keep the task's
    known = {item["uid"] for item in task["dataset"]}
    dataset = list(task["dataset"])
    for item in granule["dataset"]:
        if item["uid"] not in known:
            known.add(item["uid"])
            dataset.append(item)
    merged["dataset"] = dataset
    return merged


def task_data_from(granule: Granule) -> dict:
    """A new task's data: the granule's, with the dataset's duplicate uids removed."""
    data = dict(granule.data)
    data["dataset"] = merge_data(
        {"start_time": granule.start_time, "end_time": granule.end_time, "dataset": []},
        granule.data,
    )["dataset"]
    return data


# --- which task is handed out next -------------------------------------------------


def stale_cutoff(now: dt.datetime, stale_hours: float | None) -> dt.datetime | None:
    """Granules that started before this are stale; None (``stale_hours`` 0 or None): none is."""
    if not stale_hours:
        return None
    return utc_naive(now) - dt.timedelta(hours=stale_hours)


def hand_out_key(start: dt.datetime, position: int, cutoff: dt.datetime | None) -> tuple:
    """Sort key of a waiting task: the smallest is handed out next.

    Fresh tasks (granule start at or after ``cutoff``) come first, in queue order
    (``position``: arrival order, a task put back at the head); stale ones after
    them, newest granule first, ties in queue order.
    """
    if cutoff is None or start >= cutoff:
        return (0, 0.0, position)
    return (1, -(start - dt.datetime(1970, 1, 1)).total_seconds(), position)


# --- datetimes in stored JSON -------------------------------------------------------

_DATETIME_TAG = "$datetime"


def _encode_default(value):
    if isinstance(value, dt.datetime):
        return {_DATETIME_TAG: utc_naive(value).isoformat()}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _decode_hook(obj: dict):
    if len(obj) == 1:
        if _DATETIME_TAG in obj:
            return dt.datetime.fromisoformat(obj[_DATETIME_TAG])
        if "$date" in obj:
            return dt.date.fromisoformat(obj["$date"])
    return obj


def dumps(data: Mapping) -> str:
    """Task data as JSON that keeps datetimes datetimes (for the database)."""
    return json.dumps(data, default=_encode_default, separators=(",", ":"))


def loads(text: str) -> dict:
    """The inverse of :func:`dumps`."""
    return json.loads(text, object_hook=_decode_hook)


# --- the workers' requests ----------------------------------------------------------


@dataclass(frozen=True)
class TaskRequest:
    """A worker's request, checked.

    ``products`` empty means an acknowledgement only. ``lease`` None is the
    original protocol: the task is removed from the queue when it is sent.
    """

    products: tuple[str, ...] = ()
    just_testing: bool = False
    lease: float | None = None
    ack: str | None = None


def _products(request: dict) -> tuple[str, ...]:
    products = request["desired products"]
    if not isinstance(products, list):
        raise RequestError(f"'desired products' must be a list of strings, got {products!r:.80}")
    if not products:
        raise RequestError("'desired products' is empty: name at least one product")
    for product in products:
        if not isinstance(product, str) or not product:
            raise RequestError(f"'desired products' holds {product!r:.80}, not a product name")
    for product in products:
        if product not in KNOWN_PRODUCTS:
            known = ", ".join(KNOWN_PRODUCTS)
            raise RequestError(f"unknown product {product!r:.80} (known: {known})")
    return tuple(dict.fromkeys(products))


def _lease(request: dict) -> float | None:
    lease = request.get("lease")
    if lease is None:
        return None
    if isinstance(lease, bool) or not isinstance(lease, int | float) or not math.isfinite(lease):
        raise RequestError(f"'lease' must be a number of seconds, got {lease!r:.80}")
    if not 0 < lease <= MAX_LEASE_SECONDS:
        raise RequestError(f"'lease' must be over 0 and at most {MAX_LEASE_SECONDS:.0f} seconds")
    return float(lease)


def _check_fields(request: dict) -> None:
    testing = request.get("just testing", False)
    if not isinstance(testing, bool):
        raise RequestError(f"'just testing' must be true or false, got {testing!r:.80}")
    ack = request.get("ack")
    if ack is not None and (not isinstance(ack, str) or not ack):
        raise RequestError(f"'ack' must be a task id string, got {ack!r:.80}")
    if "desired products" not in request and ack is None:
        raise RequestError("'desired products' is missing")
    if testing and request.get("lease") is not None:
        raise RequestError("'lease' and 'just testing' exclude each other")


def parse_request(raw: bytes) -> TaskRequest:
    """Check a request's bytes; raise RequestError with the reason to send back.

    A worker sends the same bytes again and again: small requests are remembered.
    """
    if len(raw) <= 512:
        return _parse_small(bytes(raw))
    return _parse(raw)


@functools.lru_cache(maxsize=256)
def _parse_small(raw: bytes) -> TaskRequest:
    return _parse(raw)


def _parse(raw: bytes) -> TaskRequest:
    if len(raw) > MAX_REQUEST_BYTES:
        raise RequestError(f"request is {len(raw)} bytes, over the {MAX_REQUEST_BYTES} limit")
    try:
        request = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise RequestError("request is not UTF-8 text") from None
    except ValueError as error:
        raise RequestError(f"request is not JSON ({error})") from None
    except RecursionError:  # e.g. 60,000 "[" fit in the size limit
        raise RequestError("request is nested too deeply to be a request") from None
    if not isinstance(request, dict):
        raise RequestError(f"request must be a JSON object, got {type(request).__name__}")
    _check_fields(request)
    return TaskRequest(
        products=_products(request) if "desired products" in request else (),
        just_testing=request.get("just testing", False),
        lease=_lease(request),
        ack=request.get("ack"),
    )


# --- the rules in memory: the model of the durable queue ----------------------------


@dataclass
class RuleTask:
    """A queued task of :class:`RuleQueue`."""

    subject: str
    atype: str
    data: dict
    key: Key
    #: granule id -> the reprocess request id it came with (None for ordinary data)
    granules: dict[str, str | None]

    @property
    def product(self) -> str:
        """The task's product."""
        return product_of(self.subject)


def is_replay(granule: Granule, handed_out_reprocess: str | None) -> bool:
    """Whether a granule already handed out is published again by accident.

    A replay (a restarted gatherer, a repeated message) carries no reprocess id
    or the one it was handed out with; an operator's new reprocess carries a new one.
    """
    return granule.reprocess is None or granule.reprocess == handed_out_reprocess


class RuleQueue:
    """The queue rules in memory: merge, split, hand-out order, exactly once.

    Not used by the daemon (see task_store.py); it states the rules in the
    fewest lines and is what the store's behaviour is checked against.
    ``stale_hours`` is VIIRS_STALE_TASK_HOURS (None: the original order only).
    """

    def __init__(self, stale_hours: float | None = None):
        self.tasks: list[RuleTask] = []  # in queue order
        self.handed_out: dict[str, str | None] = {}  # granule id -> reprocess id
        self.stale_hours = stale_hours

    def add(self, granule: Granule) -> str:
        """Queue or merge a granule; return 'queued', 'merged' or 'duplicate'."""
        gid = granule.granule_id
        target = next((t for t in self.tasks if gid in t.granules), None)
        if target is None and gid in self.handed_out and is_replay(granule, self.handed_out[gid]):
            return "duplicate"
        target = target or next(
            (
                t
                for t in self.tasks
                if t.key == granule.key and joins(t.data["start_time"], granule.start_time)
            ),
            None,
        )
        if target is None:
            data = task_data_from(granule)
            task = RuleTask(granule.subject, granule.atype, data, granule.key, {})
            self.tasks.append(task)
            task.granules[gid] = granule.reprocess
            return "queued"
        target.data = merge_data(target.data, granule.data)
        target.granules[gid] = granule.reprocess or target.granules.get(gid)
        return "merged"

    def next_task(self, products: Iterable[str], now: dt.datetime | None = None) -> RuleTask | None:
        """The task of one of ``products`` handed out next at ``now`` (left queued)."""
        wanted = set(products)
        cutoff = stale_cutoff(now, self.stale_hours) if now is not None else None
        candidates = [(i, t) for i, t in enumerate(self.tasks) if t.product in wanted]
        if not candidates:
            return None
        return min(candidates, key=lambda c: hand_out_key(c[1].data["start_time"], c[0], cutoff))[1]

    def take(self, products: Iterable[str], now: dt.datetime | None = None) -> RuleTask | None:
        """Remove and return the task handed out next, remembering its granules."""
        task = self.next_task(products, now)
        if task is not None:
            self.tasks.remove(task)
            self.handed_out.update(task.granules)
        return task
