"""/metrics: the collector in Prometheus' text format, from the history and supervisord.

Counters come from the history's ``totals`` (kept apart from the trimmed rows, so they
only grow); gauges from its newest samples and from supervisord at scrape time. Names
follow Prometheus' conventions: the ``viirscollector_`` prefix, base units (seconds,
bytes), ``_total`` on counters, labels for what varies (satellite, product, reason,
program), never a file name, URL or other unbounded or secret value.
"""

from __future__ import annotations

import json
import time

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

from avoviirscollector import supervisor_client
from avoviirscollector.filenames import PLATFORM_ALIASES
from avoviirscollector.operator.web import history_rules as rules
from avoviirscollector.operator.web.history_store import HistoryReader
from avoviirscollector.operator.web.views import BYTES_PER_DAY, Context

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: totals name -> (metric name without _total, help, its label)
COUNTERS = {
    "files": ("viirscollector_files", "SDR files that reached sdr/", "satellite"),
    "file_bytes": (
        "viirscollector_file_bytes",
        "Bytes of the SDR files that reached sdr/",
        "satellite",
    ),
    "granules": (
        "viirscollector_granules",
        "Granule messages published by the gatherers",
        "product",
    ),
    "tasks_handed_out": (
        "viirscollector_tasks_handed_out",
        "Tasks handed to workers (taken without a lease, or acknowledged)",
        "product",
    ),
    "granules_handed_out": (
        "viirscollector_granules_handed_out",
        "Granules in the tasks handed to workers",
        "product",
    ),
    "granules_acknowledged": (
        "viirscollector_granules_acknowledged",
        "Granules of leased tasks that workers acknowledged",
        "product",
    ),
    "mirror_failures": (
        "viirscollector_mirror_failures",
        "Mirror failures: listing (products.json not had), file (a file failed)",
        "reason",
    ),
    "listing_requests": (
        "viirscollector_gina_listing_requests",
        "GINA products.json requests by the mirror, by result",
        "result",
    ),
    "listing_bytes": (
        "viirscollector_gina_listing_bytes",
        "Bytes of GINA products.json answers",
        None,
    ),
    "mirror_bytes": ("viirscollector_mirror_bytes", "Bytes fetched from GINA by the mirror", None),
    "mirror_runs": ("viirscollector_mirror_runs", "Mirror runs recorded", None),
    "restarts": (
        "viirscollector_program_restarts",
        "Program restarts seen by the recorder",
        "program",
    ),
}
#: Labels every counter always has, so a dashboard sees 0 instead of no series.
ALWAYS = {
    "satellite": tuple(PLATFORM_ALIASES),
    "reason": ("listing", "file"),
    "result": ("ok", "failed"),
}


class HistoryCollector:
    """A prometheus_client collector that reads the history at each scrape."""

    def __init__(self, context: Context):
        self.context = context

    def collect(self):
        """Every metric family (prometheus_client's collector protocol)."""
        reader = HistoryReader(self.context.history)
        try:
            totals = reader.totals()
            yield from self._counters(totals)
            yield self._delays(totals)
            yield from self._queue(reader)
            yield from self._disk(reader)
        finally:
            reader.close()
        yield from self._programs()

    def _counters(self, totals):
        families = {}
        for key, (name, text, label) in COUNTERS.items():
            families[key] = CounterMetricFamily(name, text, labels=[label] if label else [])
        values: dict[tuple[str, str], float] = {}
        for key, labels, value in totals:
            if key in COUNTERS:
                label = COUNTERS[key][2]
                values[(key, labels.get(label, "") if label else "")] = value
        for key, (_, _, label) in COUNTERS.items():
            for always in ALWAYS.get(label, ()):
                values.setdefault((key, always), 0.0)
            if label is None:
                values.setdefault((key, ""), 0.0)
        products = self.context.products
        for product in products:
            for key in (
                "granules",
                "tasks_handed_out",
                "granules_handed_out",
                "granules_acknowledged",
            ):
                values.setdefault((key, product), 0.0)
        for (key, label_value), value in sorted(values.items()):
            families[key].add_metric([label_value] if COUNTERS[key][2] else [], value)
        return families.values()

    def _delays(self, totals) -> HistogramMetricFamily:
        family = HistogramMetricFamily(
            "viirscollector_acquisition_delay_seconds",
            "File arrival in sdr/ minus its granule's start",
            labels=["satellite"],
        )
        buckets: dict[str, dict[str, float]] = {s: {} for s in PLATFORM_ALIASES}
        sums: dict[str, float] = {s: 0.0 for s in PLATFORM_ALIASES}
        for key, labels, value in totals:
            if key == "delay_bucket":
                buckets.setdefault(labels["satellite"], {})[labels["le"]] = value
            elif key == "delay_sum":
                sums[labels["satellite"]] = value
        for satellite, counts in sorted(buckets.items()):
            family.add_metric([satellite], rules.cumulative(counts), sums.get(satellite, 0.0))
        return family

    def _queue(self, reader: HistoryReader):
        length = GaugeMetricFamily(
            "viirscollector_queue_length", "Tasks waiting in the broker's queue", labels=["product"]
        )
        oldest = GaugeMetricFamily(
            "viirscollector_queue_oldest_task_age_seconds",
            "Age of the oldest waiting task (0 when none waits)",
        )
        leased = GaugeMetricFamily(
            "viirscollector_tasks_leased", "Tasks handed out with a lease, awaiting an ack"
        )
        samples = reader.queue_samples(time.time() - 2 * QUEUE_FRESH)
        if samples:
            _, _, text, age, leases = samples[-1]
            per_product = json.loads(text)
            for product in sorted(set(self.context.products) | set(per_product)):
                length.add_metric([product], per_product.get(product, 0))
            oldest.add_metric([], age or 0)
            leased.add_metric([], leases or 0)
        return length, oldest, leased

    def _disk(self, reader: HistoryReader):
        sample = reader.disk()
        used = GaugeMetricFamily(
            "viirscollector_disk_used_bytes", "Bytes allocated under the base directory (/viirs)"
        )
        free = GaugeMetricFamily(
            "viirscollector_disk_free_bytes", "Free bytes of the base directory's filesystem"
        )
        needed = GaugeMetricFamily(
            "viirscollector_disk_retention_needed_bytes",
            "Bytes VIIRS_RETENTION days need at 36 GB/day",
        )
        if sample is not None:
            used.add_metric([], sample[1])
            free.add_metric([], sample[2])
        if self.context.retention_days is not None:
            needed.add_metric([], self.context.retention_days * BYTES_PER_DAY)
        return used, free, needed

    def _programs(self):
        up = GaugeMetricFamily(
            "viirscollector_program_up",
            "1 when supervisord says the program is RUNNING",
            labels=["program"],
        )
        uptime = GaugeMetricFamily(
            "viirscollector_program_uptime_seconds",
            "Seconds since the program started",
            labels=["program"],
        )
        try:
            infos = supervisor_client.processes(self.context.socket, timeout=2.0)
        except supervisor_client.SupervisorUnavailable:
            infos = []
        for info in sorted(infos, key=lambda i: i.get("name", "")):
            running = info.get("statename") == "RUNNING"
            up.add_metric([info["name"]], 1 if running else 0)
            if running and info.get("start"):
                uptime.add_metric([info["name"]], info["now"] - info["start"])
        return up, uptime


#: Seconds within which the newest queue sample counts as the queue now.
QUEUE_FRESH = 120.0


def exposition(context: Context) -> bytes:
    """The text /metrics serves."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HistoryCollector(context))
    return generate_latest(registry)
