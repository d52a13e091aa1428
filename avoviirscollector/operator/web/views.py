"""What the status page shows, as one JSON-ready dict: the page draws it, /api/status is it.

Read from the history (state/history.sqlite, read-only) and supervisord; the rules
(passes, gaps, completeness) are history_rules'. Every time is ISO 8601 UTC with a
``Z``; durations are seconds. Nothing secret goes in: no URL, no mail setting, and
error texts pass through the log redaction.
"""

from __future__ import annotations

import configparser
import datetime as dt
import functools
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from avoviirscollector import supervisor_client
from avoviirscollector.filenames import PLATFORM_ALIASES
from avoviirscollector.logs import redact
from avoviirscollector.operator.web import history_rules as rules
from avoviirscollector.operator.web.history_store import HistoryReader

#: What the collector writes a day (README); the disk section compares with it too.
BYTES_PER_DAY = 36e9
#: Passes whose granules are shown, newest first.
PASSES_SHOWN = 4
MIRROR_RUNS_SHOWN = 12
#: Queue samples drawn per product at most (the newest sample of each slice).
QUEUE_POINTS = 600
DAY = 86400.0
EPOCH_DAY = dt.datetime(1970, 1, 1)
#: Files of the last this many seconds are grouped into the passes shown.
PASSES_WINDOW = 12 * 3600.0


@functools.lru_cache(maxsize=4096)
def _day_text(day: int) -> str:
    return (EPOCH_DAY + dt.timedelta(days=day)).strftime("%Y-%m-%dT")


@functools.lru_cache(maxsize=4096)
def _day_epoch(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


def iso(epoch: float | None) -> str | None:
    """``2026-12-01T09:30:00Z``, or None (a page shows thousands: strftime once a day)."""
    if epoch is None:
        return None
    day, second = divmod(int(epoch), 86400)
    hours, rest = divmod(second, 3600)
    return f"{_day_text(day)}{hours:02d}:{rest // 60:02d}:{rest % 60:02d}Z"


def epoch_of(text: str) -> float:
    """The inverse of :func:`iso`."""
    hours, minutes, seconds = text[11:19].split(":")
    return _day_epoch(text[:10]) + int(hours) * 3600 + int(minutes) * 60 + int(seconds)


def products_of(config_path: Path) -> dict[str, frozenset[str]]:
    """product -> segments, from etc/segment_gatherer.ini through the gatherer's reader."""
    from avoviirscollector.pipeline.gatherer import load_config, segments_of

    parser = configparser.RawConfigParser()
    parser.read(config_path)
    products = {}
    for section in parser.sections():
        config, _ = load_config(config_path, section)
        product = config["posttroll"]["publish_topic"].rsplit("/", 1)[-1]
        products[product] = segments_of(config)
    return products


@dataclass(frozen=True)
class Context:
    """What a view needs besides the history: set once by the server."""

    base_dir: Path
    history: Path
    products: dict[str, frozenset[str]]
    retention_days: int | None
    socket: Path


def satellites(reader: HistoryReader, rows: list[tuple], now: float) -> list[dict]:
    """One row per satellite (all three always): newest file, age, delays, longest gap."""
    last = reader.last_files()
    arrivals: dict[str, list[float]] = {short: [] for short in PLATFORM_ALIASES}
    delays: dict[str, list[float]] = {short: [] for short in PLATFORM_ALIASES}
    for _, platform, start, arrival in rows:
        arrivals.setdefault(platform, []).append(arrival)
        delays.setdefault(platform, []).append(arrival - start)
    found = []
    for short, name in PLATFORM_ALIASES.items():
        newest = last.get(short)
        mine = delays[short]
        found.append(
            {
                "satellite": short,
                "name": name,
                "last_file": newest[0] if newest else None,
                "last_arrival": iso(newest[1]) if newest else None,
                "age_seconds": round(now - newest[1], 1) if newest else None,
                "files_in_window": len(mine),
                "median_delay_seconds": _round(rules.median(mine)),
                "max_delay_seconds": _round(max(mine, default=None)),
                "longest_gap_seconds": _round(rules.longest_gap(arrivals[short], now))
                if mine
                else None,
            }
        )
    return found


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def passes(files: list[rules.FileEvent], published, products) -> list[dict]:
    """The last passes' granules, each product complete or missing which files."""
    granules = rules.granules_of(files, products, published)
    shown = rules.passes_of(granules)[:PASSES_SHOWN]
    return [
        {
            "satellite": one.platform,
            "name": PLATFORM_ALIASES.get(one.platform, one.platform),
            "first_granule": iso(one.start),
            "last_granule": iso(one.end),
            "granules": [
                {
                    "orbit": granule.orbit,
                    "start": iso(granule.start),
                    "products": {
                        product: {
                            "complete": not missing,
                            "missing": missing,
                            "published": product in granule.published,
                        }
                        for product, missing in sorted(granule.missing.items())
                    },
                }
                for granule in one.granules
            ],
        }
        for one in shown
    ]


def thin(samples: list, points: int = QUEUE_POINTS) -> list:
    """At most ``points`` samples, evenly over the list, the last always kept."""
    if len(samples) <= points:
        return samples
    step = len(samples) / points
    kept = [samples[int(i * step)] for i in range(points)]
    return kept if kept[-1] is samples[-1] else [*kept, samples[-1]]


def queue(reader: HistoryReader, since: float, products: Iterable[str]) -> dict:
    """The queue now (newest sample) and over the window."""
    samples = reader.queue_samples(since)
    latest = samples[-1] if samples else None
    now = None
    if latest is not None:
        per = json.loads(latest[2])
        now = {
            "sampled": iso(latest[0]),
            "length": latest[1],
            "per_product": {p: per.get(p, 0) for p in products},
            "oldest_task_age_seconds": latest[3],
            "leased": latest[4],
        }
    shown = []
    for moment, length, text, _, _ in thin(samples):
        per = json.loads(text)
        shown.append({"time": iso(moment), "length": length,
                      "per_product": {p: per.get(p, 0) for p in products}})  # fmt: skip
    return {"now": now, "samples": shown}


def tasks(reader: HistoryReader, since: float, products: Iterable[str], waiting: dict) -> dict:
    """Per product: waiting now, tasks and granules handed out in the window, acknowledged."""
    handed = reader.handouts(since)
    return {
        product: {
            "waiting": waiting.get(product, 0),
            "tasks_handed_out": handed.get(product, (0, 0, 0))[0],
            "granules_handed_out": handed.get(product, (0, 0, 0))[1],
            "acknowledged": handed.get(product, (0, 0, 0))[2],
        }
        for product in sorted(set(products) | set(handed))
    }


def mirror(reader: HistoryReader, since: float) -> dict:
    """The last runs, and whether GINA answers (since when it does not)."""
    runs = reader.mirror_runs(since, MIRROR_RUNS_SHOWN)
    last, _, failing = reader.gina_state()
    return {
        "runs": [
            {
                "finished": iso(run["finished"]),
                "found": run["found"],
                "wanted": run["wanted"],
                "fetched": run["fetched"],
                "failed": run["failed"],
                "megabytes": round(run["bytes"] / 1e6, 2),
                "seconds": round(run["seconds"], 1),
                "mb_per_s": round(run["bytes"] / 1e6 / run["seconds"], 2) if run["seconds"] else 0,
                "listing_failed": run["listing_failed"],
            }
            for run in runs
        ],
        "gina": {
            "answering": None if last is None else failing is None,
            "failing_since": iso(failing),
            "last_run": iso(last),
        },
    }


#: GINA's satellite names (the mirror's queues and passes) -> the files' short names.
GINA_SATELLITES = {"snpp": "npp", "noaa20": "j01", "noaa21": "j02"}
PASSES_PREDICTED = 6


def predicted_passes(state_dir: Path, now: float) -> dict:
    """The next passes over the antenna as the mirror predicted them (its poll state)."""
    from avoviirscollector.mirror import poll_state

    try:
        state = poll_state.load(state_dir)
    except (OSError, ValueError, TypeError):
        state = None
    if state is None:
        return {"available": False, "why": "the mirror has not polled yet", "passes": []}
    upcoming = sorted(
        (p for p in state.passes if isinstance(p, dict) and p.get("fall", 0) > now),
        key=lambda p: p["rise"],
    )[:PASSES_PREDICTED]
    why = redact(state.tle_problem) if state.tle_problem else None
    if not upcoming and why is None:
        why = "no pass predicted (no two-line elements yet?)"
    return {
        "available": bool(upcoming),
        "why": why,
        "passes": [
            {
                "satellite": GINA_SATELLITES.get(p["satellite"], p["satellite"]),
                "name": PLATFORM_ALIASES.get(
                    GINA_SATELLITES.get(p["satellite"], ""), p["satellite"]
                ),
                "rise": iso(p["rise"]),
                "set": iso(p["fall"]),
                "max_elevation_degrees": round(float(p.get("max_elevation") or 0), 1),
            }
            for p in upcoming
        ],
    }


def programs(socket: Path, reader: HistoryReader, now: float) -> dict:
    """supervisord's programs now, with their restarts in the last day."""
    restarts = reader.restarts(now - DAY)
    try:
        infos = supervisor_client.processes(socket, timeout=2.0)
    except supervisor_client.SupervisorUnavailable as error:
        return {"error": redact(str(error)), "list": []}
    rows = []
    for info in sorted(infos, key=lambda i: i.get("name", "")):
        running = info.get("statename") == "RUNNING" and info.get("start")
        rows.append(
            {
                "name": info.get("name"),
                "state": info.get("statename"),
                "uptime_seconds": round(info["now"] - info["start"], 1) if running else None,
                "restarts_24h": restarts.get(info.get("name"), 0),
            }
        )
    return {"error": None, "list": rows}


def disk(reader: HistoryReader, now: float, retention_days: int | None) -> dict | None:
    """Disk use under the base directory against what the retention needs."""
    sample = reader.disk()
    if sample is None:
        return None
    sampled, used, free, total = sample
    observed = reader.bytes_since(now - DAY)
    per_day = max(observed, 0) or BYTES_PER_DAY
    return {
        "sampled": iso(sampled),
        "used_bytes": used,
        "free_bytes": free,
        "total_bytes": total,
        "retention_days": retention_days,
        "bytes_last_24h": observed,
        "days_held": round(rules.days_of_disk(used, per_day), 1),
        "needed_bytes": None if retention_days is None else int(retention_days * BYTES_PER_DAY),
        "fits": None if retention_days is None else retention_days * BYTES_PER_DAY <= used + free,
    }


def status(context: Context, hours: int, now: float | None = None) -> dict:
    """Everything the page shows for the last ``hours``."""
    now = time.time() if now is None else now
    since = now - hours * 3600
    products = sorted(context.products)
    reader = HistoryReader(context.history)
    try:
        rows = reader.delay_rows(since)
        recent = max(since, now - PASSES_WINDOW)
        published = [(p, pl, o, s) for p, pl, o, s, _ in reader.granules(recent)]
        queue_view = queue(reader, since, products)
        waiting = (queue_view["now"] or {}).get("per_product", {})
        return {
            "generated": iso(now),
            "window_hours": hours,
            "window_start": iso(since),
            "history_days": rules.history_days(context.retention_days),
            "products": {p: sorted(context.products[p]) for p in products},
            "satellites": satellites(reader, rows, now),
            # (name, satellite, granule start, arrival) per file: api_form() spells them out
            "delays": rows,
            "gaps": [
                {"satellite": short, "from": iso(a), "to": iso(b), "seconds": round(b - a)}
                for short in PLATFORM_ALIASES
                for a, b in rules.gaps(r[3] for r in rows if r[1] == short)
            ],
            "passes": passes(reader.files(recent), published, context.products),
            "queue": queue_view,
            "tasks": tasks(reader, since, products, waiting),
            "mirror": mirror(reader, since),
            "predicted_passes": predicted_passes(context.base_dir / "state", now),
            "programs": programs(context.socket, reader, now),
            "disk": disk(reader, now, context.retention_days),
        }
    finally:
        reader.close()


def api_form(model: dict) -> dict:
    """The model as /api/status serves it: each file's delay spelled out."""
    return {
        **model,
        "delays": [
            {
                "file": name,
                "satellite": platform,
                "granule_start": iso(start),
                "arrival": iso(arrival),
                "delay_seconds": round(arrival - start, 1),
            }
            for name, platform, start, arrival in model["delays"]
        ],
    }
