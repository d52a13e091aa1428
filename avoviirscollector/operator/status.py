"""``viirscollector status``: is data flowing? One screen, every part read on its own.

Programs and their uptime (supervisord over its unix socket), the queue (19191),
the newest file in ``sdr/`` and its age, the last mirror run's summary line, and
disk use against the ~36 GB a day the collector writes. A part that cannot be read
says why on its own line; the others are still shown. Reading (I/O) and rendering
(pure, tested directly) are apart. Exit status 0 when everything looks healthy,
1 when a part is unreadable, a program is not RUNNING, or GINA is not answering (then
the first line says so: "GINA not answering since 03:12Z, 9 runs ...").
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from avoviirscollector import identity, supervisor_client
from avoviirscollector.operator import display, feed, polling_status
from avoviirscollector.redaction import redact

#: What the collector writes per day (README): disk figures are compared with it.
BYTES_PER_DAY = 36e9
SUPERVISOR_TIMEOUT = supervisor_client.TIMEOUT
QUEUE_TIMEOUT = 3.0
#: How much of a log's end is searched for the last mirror summary.
LOG_TAIL_BYTES = 512 * 1024
#: The last run's summary mirror_gina keeps in state/ (mirror_gina.LAST_RUN_FILE; a test
#: checks they agree: importing mirror_gina here would load pycurl for a status screen).
MIRROR_LAST_RUN = "mirror_gina-last-run.json"
#: Logs in which a mirror run may have written its summary line, when state/ has none.
MIRROR_LOGS = ("supercronic.log", "mirror_gina.log")


class Unreadable(Exception):
    """One part of the status could not be read; the message says why, for its line."""


# ----------------------------------------------------------------- what is shown


@dataclass(frozen=True)
class Program:
    """One supervisord program, as getAllProcessInfo describes it."""

    name: str
    state: str
    start: float
    now: float
    description: str

    @classmethod
    def from_info(cls, info: dict) -> Program:
        """From one dict of supervisor's XML-RPC getAllProcessInfo."""
        group, name = info.get("group", ""), info.get("name", "?")
        full = name if group in ("", name) else f"{group}:{name}"
        return cls(full, info.get("statename", "?"), info.get("start", 0), info.get("now", 0),
                   info.get("description", ""))  # fmt: skip


@dataclass(frozen=True)
class NewestFile:
    """The newest file in sdr/, and how many there are."""

    name: str
    mtime: float
    count: int


@dataclass(frozen=True)
class MirrorRun:
    """The last summary line a mirror run logged."""

    line: str
    logged: dt.datetime | None


@dataclass(frozen=True)
class Disk:
    """Bytes under the base directory, and the filesystem's free and total bytes."""

    used: int
    free: int
    total: int


@dataclass
class Report:
    """Every part, each either its value or Unreadable (why it could not be read)."""

    base_dir: Path
    now: dt.datetime
    programs: list[Program] | Unreadable
    queue: dict | Unreadable
    newest: NewestFile | None | Unreadable
    mirror: MirrorRun | None | Unreadable
    disk: Disk | Unreadable
    retention_days: int | None = None
    problems: list[str] = field(default_factory=list)
    #: GINA's outage, as the mirror records it (None: GINA answers).
    feed: feed.FeedOutage | None | Unreadable = None


# ----------------------------------------------------------------- pure rendering


def render_programs(programs: list[Program] | Unreadable) -> list[str]:
    """One line per program: name, state, uptime (or supervisord's description)."""
    if isinstance(programs, Unreadable):
        return [f"programs: cannot read supervisord: {programs}"]
    if not programs:
        return ["programs: supervisord runs no program"]
    width = max(len(p.name) for p in programs)
    lines = ["programs:"]
    for p in programs:
        if p.state == "RUNNING" and p.start:
            detail = f"up {display.duration(p.now - p.start)}"
        else:
            detail = p.description or ""
        lines.append(f"  {p.name:<{width}}  {p.state:<8}  {detail}".rstrip())
    return lines


def render_queue(queue: dict | Unreadable) -> str:
    """The broker's latest 19191 state."""
    if isinstance(queue, Unreadable):
        return f"queue:    {queue}"
    from avoviirscollector.operator.sniff import queue_summary

    return f"queue:    {queue_summary(queue)}"


def render_collector(queue: dict | Unreadable, base_dir: Path) -> list[str]:
    """Which collector's broker answered on the state port (and a warning if not ours)."""
    if isinstance(queue, Unreadable):
        return []
    line = identity.answered_by(queue.get(identity.KEY), base_dir)
    return [] if line is None else [f"broker:   {line}"]


def render_newest(newest: NewestFile | None | Unreadable, now: dt.datetime) -> str:
    """The newest file in sdr/ and how old it is: the first thing to look at when data stops."""
    if isinstance(newest, Unreadable):
        return f"newest:   {newest}"
    if newest is None:
        return "newest:   sdr/ holds no file yet"
    age = (
        now - dt.datetime.fromtimestamp(newest.mtime, dt.UTC).replace(tzinfo=None)
    ).total_seconds()
    return f"newest:   {newest.name}, {display.duration(age)} ago ({newest.count} files in sdr/)"


def render_mirror(mirror: MirrorRun | None | Unreadable, now: dt.datetime) -> str:
    """The last mirror run's own summary line."""
    if isinstance(mirror, Unreadable):
        return f"mirror:   {mirror}"
    if mirror is None:
        return "mirror:   no mirror run recorded yet"
    when = ""
    if mirror.logged is not None:
        when = f"{display.duration((now - mirror.logged).total_seconds())} ago: "
    return f"mirror:   {when}{mirror.line}"


def render_disk(disk: Disk | Unreadable, base_dir: Path, retention_days: int | None) -> str:
    """Use against the daily volume: how many days are held, how many more fit."""
    if isinstance(disk, Unreadable):
        return f"disk:     {disk}"
    held = disk.used / BYTES_PER_DAY
    room = disk.free / BYTES_PER_DAY
    text = (
        f"disk:     {display.size(disk.used)} under {base_dir} (~{held:.1f} days at 36 GB/day); "
        f"{display.size(disk.free)} free of {display.size(disk.total)} (~{room:.1f} more days)"
    )
    if retention_days is None:
        text += "; VIIRS_RETENTION unset: nothing is ever deleted"
    elif retention_days * BYTES_PER_DAY > disk.used + disk.free:
        need = display.size(retention_days * BYTES_PER_DAY)
        text += f"; WARNING {retention_days} days of retention need ~{need}"
    return text


def render_feed(outage: feed.FeedOutage | None | Unreadable, now: dt.datetime) -> list[str]:
    """The first line when GINA does not answer: nothing new can arrive, whatever else says."""
    if outage is None:
        return []
    if isinstance(outage, Unreadable):
        return [f"GINA: cannot read the mirror's outage records: {outage}"]
    moment = now.replace(tzinfo=dt.UTC).timestamp()
    return [feed.describe(outage, moment)]


def render(report: Report) -> str:
    """The whole screen (redacted: an error text may quote a URL with its credentials)."""
    lines = render_feed(report.feed, report.now)
    lines.append(f"avoviirscollector in {report.base_dir} at {display.stamp(report.now)}")
    lines += render_programs(report.programs)
    lines.append(render_queue(report.queue))
    lines += render_collector(report.queue, report.base_dir)
    lines.append(render_newest(report.newest, report.now))
    lines.append(render_mirror(report.mirror, report.now))
    lines += polling_status.lines(
        report.base_dir / "state", report.now.replace(tzinfo=dt.UTC).timestamp()
    )
    lines.append(render_disk(report.disk, report.base_dir, report.retention_days))
    return redact("\n".join(lines))


def problems(report: Report) -> list[str]:
    """What makes the exit status 1: unreadable parts, programs not RUNNING, GINA silent."""
    found = [
        name
        for name in ("programs", "queue", "newest", "mirror", "disk", "feed")
        if isinstance(getattr(report, name), Unreadable)
    ]
    if isinstance(report.feed, feed.FeedOutage):
        found.append("GINA")
    if isinstance(report.queue, dict) and identity.foreign(
        report.queue.get(identity.KEY), report.base_dir
    ):
        found.append("another collector answered")
    if isinstance(report.programs, list):
        found += [p.name for p in report.programs if p.state != "RUNNING"]
    return found


def mirror_run_from_json(text: str) -> MirrorRun:
    """The summary mirror_gina keeps in state/: totals, plus queues that failed or were busy."""
    run = json.loads(text)
    if not isinstance(run, dict):
        raise ValueError("not a JSON object")
    line = (
        f"found {run.get('found', '?')}, wanted {run.get('wanted', '?')}, "
        f"fetched {run.get('fetched', '?')}, failed {run.get('failed', '?')}, "
        f"{display.size(run.get('bytes') or 0)} in {float(run.get('seconds') or 0):.1f} s"
    )
    queues = [q for q in run.get("queues", []) if isinstance(q, dict)]
    for status, what in (("failed", "could not list GINA's products"), ("busy", "busy")):
        names = [str(q.get("queue")) for q in queues if q.get("status") == status]
        if names:
            line += f"; {what}: {', '.join(names)}"
    failed_files = sum(len(q.get("failed_files") or []) for q in queues)
    if failed_files:
        line += f"; {failed_files} file(s) failed, see the log"
    finished = run.get("finished")
    logged = dt.datetime.fromisoformat(finished.rstrip("Z")) if isinstance(finished, str) else None
    return MirrorRun(line, logged)


_SUMMARY = re.compile(r"\brun summary\b|\bfound \d+.*\bfetched \d+", re.IGNORECASE)
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)")


def last_mirror_summary(text: str) -> MirrorRun | None:
    """The last line of a log that is a mirror run's summary (found/wanted/fetched/...)."""
    for line in reversed(text.splitlines()):
        if "mirror" in line.lower() and _SUMMARY.search(line):
            match = _STAMP.match(line)
            logged = dt.datetime.fromisoformat(match.group(1)) if match else None
            return MirrorRun(line.strip(), logged)
    return None


# ----------------------------------------------------------------- reading


def read_programs(socket_path: Path, timeout: float = SUPERVISOR_TIMEOUT) -> list[Program]:
    """Programs, sorted by name; Unreadable (why, in one line) when supervisord cannot answer."""
    try:
        infos = supervisor_client.processes(socket_path, timeout)
    except supervisor_client.SupervisorUnavailable as error:
        raise Unreadable(str(error)) from None
    return sorted(map(Program.from_info, infos), key=lambda p: p.name)


def read_queue(endpoint: str, timeout: float = QUEUE_TIMEOUT) -> dict:
    """The first 19191 state that arrives within ``timeout``."""
    import zmq

    from avoviirscollector.operator.sniff import Silence, parse_queue_state, receive

    try:
        for frames in receive(endpoint, "", timeout, 1):
            return parse_queue_state(frames)
    except Silence:
        why = f"no state from {endpoint} within {timeout:g} s: is task_broker running?"
        raise Unreadable(why) from None
    except ValueError as error:
        raise Unreadable(f"unreadable state from {endpoint}: {error}") from None
    except zmq.ZMQError as error:
        raise Unreadable(f"cannot listen to {endpoint}: {error.strerror}") from None
    raise Unreadable(f"no state from {endpoint}")


def read_newest(sdr_dir: Path) -> NewestFile | None:
    """The newest regular, non-hidden file in sdr/ (by modification time)."""
    newest, count = None, 0
    try:
        with os.scandir(sdr_dir) as entries:
            for entry in entries:
                if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
                    continue
                count += 1
                mtime = entry.stat(follow_symlinks=False).st_mtime
                if newest is None or mtime > newest[1]:
                    newest = (entry.name, mtime)
    except OSError as error:
        raise Unreadable(f"cannot list {sdr_dir}: {error.strerror}") from None
    return None if newest is None else NewestFile(newest[0], newest[1], count)


def _tail(path: Path, size: int = LOG_TAIL_BYTES) -> str:
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - size))
        return handle.read().decode("utf-8", "replace")


def read_mirror(state_dir: Path, log_dir: Path) -> MirrorRun | None:
    """The last run's summary from state/, else the newest summary line in the logs."""
    last_run = state_dir / MIRROR_LAST_RUN
    if last_run.is_file():
        try:
            return mirror_run_from_json(last_run.read_text())
        except (OSError, ValueError, TypeError, AttributeError) as error:
            raise Unreadable(f"cannot read {last_run}: {error}") from None
    if not log_dir.is_dir():
        raise Unreadable(f"{log_dir} does not exist")
    found: list[MirrorRun] = []
    for name in MIRROR_LOGS:
        path = log_dir / name
        if not path.is_file():
            continue
        try:
            run = last_mirror_summary(_tail(path))
        except OSError as error:
            raise Unreadable(f"cannot read {path}: {error.strerror}") from None
        if run is not None:
            found.append(run)
    if not found:
        return None
    return max(found, key=lambda run: run.logged or dt.datetime.min)


def read_disk(base_dir: Path) -> Disk:
    """Allocated bytes under the base directory (like du, no symlinks followed), free space."""
    if not base_dir.is_dir():
        raise Unreadable(f"{base_dir} does not exist")
    used = 0
    for root, dirs, files in os.walk(base_dir):
        for name in dirs + files:
            try:
                used += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                continue  # deleted while we walk: the cleanup or the mirror is at work
    usage = shutil.disk_usage(base_dir)
    return Disk(used, usage.free, usage.total)


def _part(function, *args):
    try:
        return function(*args)
    except Unreadable as error:
        return error
    except OSError as error:
        return Unreadable(f"{error.strerror or error}")


def gather(base_dir: Path, state_endpoint: str, socket_path: Path, retention: int | None) -> Report:
    """Read every part at once, so the slowest (queue, disk walk) sets the time."""
    with ThreadPoolExecutor(max_workers=5) as pool:
        futures = {
            "programs": pool.submit(_part, read_programs, socket_path),
            "queue": pool.submit(_part, read_queue, state_endpoint),
            "newest": pool.submit(_part, read_newest, base_dir / "sdr"),
            "mirror": pool.submit(_part, read_mirror, base_dir / "state", base_dir / "log"),
            "disk": pool.submit(_part, read_disk, base_dir),
            "feed": pool.submit(_part, feed.read_outage, base_dir / "state"),
        }
        parts = {name: future.result() for name, future in futures.items()}
    return Report(base_dir=base_dir, now=display.now(), retention_days=retention, **parts)


def main(argv: list[str] | None = None) -> int:
    """Print the screen; 0 when all is well, 1 when something needs a look."""
    from avoviirscollector.netutil import port_number
    from avoviirscollector.settings import load_or_exit

    settings = load_or_exit()
    p = argparse.ArgumentParser(
        prog="viirscollector status",
        description="One screen: supervisord's programs and their uptime, the queue, the newest "
        "file in sdr/ and its age, the last mirror run, disk use against 36 GB/day. Reads "
        "supervisord and the files of VIIRS_BASE_DIR on this machine; exit status 1 when a "
        "part is unreadable, a program is not RUNNING or GINA is not answering.",
    )
    p.add_argument("--host", default="localhost", help="where the broker's 19191 is (localhost)")
    p.add_argument("--state-port", type=port_number, default=settings.state_port,
                   help=f"broker's state port (default {settings.state_port})")  # fmt: skip
    p.add_argument("--socket", type=Path, default=supervisor_client.socket_of(settings.base_dir),
                   help="supervisord's socket (default <base>/tmp/supervisor.sock)")  # fmt: skip
    args = p.parse_args(argv)
    try:
        report = gather(settings.base_dir, f"tcp://{args.host}:{args.state_port}", args.socket,
                        settings.retention_days)  # fmt: skip
    except KeyboardInterrupt:
        return 130
    print(render(report))
    return 1 if problems(report) else 0


if __name__ == "__main__":
    sys.exit(main())
