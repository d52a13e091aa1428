"""Shared by the benchmarks: the machine's description and section replacement in the report."""

from __future__ import annotations

import os
import platform
import re
import statistics
from pathlib import Path

REPORT = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADER = (
    "# Benchmarks\n\n"
    "Every figure is the median of several runs on the machine named in its section, with the\n"
    "ratio to its peer measured in the same run. Reproduce all with `python3 bench/run_all.py`,\n"
    "or one with the command its section gives.\n"
)


def machine() -> str:
    """One line naming the machine a figure was measured on."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    python = platform.python_version()
    return f"{os.cpu_count()} cores, {model}, Python {python}, {platform.system()}"


def median(values) -> float:
    """The median, the figure every section reports."""
    return statistics.median(values)


def percentile(values, fraction: float) -> float:
    """Nearest-rank percentile (fraction 0.95 for p95)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, int(round(fraction * len(ordered) + 0.5)) - 1))
    return ordered[rank]


def write_section(name: str, markdown: str) -> None:
    """Replace the section ``name`` of docs/benchmarks.md (appending it the first time)."""
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    text = REPORT.read_text() if REPORT.exists() else HEADER
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{begin}\n{markdown.strip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else f"{text}\n{block}\n"
    REPORT.write_text(text)


def use_private_posttroll_ports() -> None:
    """posttroll ports of the benchmark's own, never production's; call it before anything
    imports posttroll (which reads them once)."""
    from avoviirscollector.netutil import free_port

    for name in (
        "POSTTROLL_NAMESERVER_PORT",
        "POSTTROLL_ADDRESS_PUBLISH_PORT",
        "POSTTROLL_BROADCAST_PORT",
    ):
        os.environ.setdefault(name, str(free_port()))
