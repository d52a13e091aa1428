"""Crontab parsing with supercronic's rules, and when a job runs next. No I/O.

The container runs the crontab with supercronic; a machine without it runs the same
file with :mod:`avoviirscollector.jobs.cron`. Both must read every line the same way, so
this module follows supercronic's parser (``crontab/crontab.go``):

- blank lines and lines starting with ``#`` are ignored;
- ``NAME=value`` lines set variables for the jobs (quotes around the value are
  dropped, ``SHELL`` chooses the shell, default ``/bin/sh``);
- a job line is a schedule followed by a command. supercronic tries the first 7,
  then 6, then 5 whitespace-separated fields, then 1, and takes the first that
  parses as a schedule:

  ======  ==============================================================
  fields  meaning
  ======  ==============================================================
  7       second minute hour day-of-month month day-of-week year
  6       minute hour day-of-month month day-of-week year (second 0)
  5       minute hour day-of-month month day-of-week (POSIX; second 0)
  1       a shorthand: @yearly @annually @monthly @weekly @daily @hourly
  ======  ==============================================================

Note that a 6-field line ends with a *year*, not a seconds field: seconds need all 7.
Every schedule is normalised to the 7-field form and evaluated with croniter.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from croniter import croniter

_FIELDS = re.compile(r"\S+")
_ENV_LINE = re.compile(r"^([^\s=]+)\s*=\s*(.*)$")
#: supercronic's order of attempts: POSIX + seconds + year, POSIX + year, POSIX, shorthand.
FIELD_COUNTS = (7, 6, 5, 1)
SHORTHANDS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
DEFAULT_SHELL = "/bin/sh"


class CrontabError(ValueError):
    """A line that is neither a comment, a variable, nor a schedule followed by a command."""


@dataclass(frozen=True)
class Job:
    """One job line: its schedule as written, the 7-field form, and the shell command."""

    line_number: int
    schedule: str
    seven_fields: str
    command: str

    def next_run(self, after: dt.datetime) -> dt.datetime:
        """The first time strictly after ``after`` at which the job is due."""
        return next_run(self.seven_fields, after)


@dataclass(frozen=True)
class Crontab:
    """A parsed crontab: jobs in file order, variables and the shell they run with."""

    jobs: tuple[Job, ...]
    environment: dict[str, str] = field(default_factory=dict)

    @property
    def shell(self) -> str:
        """The shell that runs each command (``SHELL=`` in the crontab, else /bin/sh)."""
        return self.environment.get("SHELL", DEFAULT_SHELL)


def to_seven_fields(schedule: str) -> str | None:
    """The 7-field (seconds first, year last) form of a schedule, or None if it is not one."""
    fields = schedule.split()
    if len(fields) == 1:
        expanded = SHORTHANDS.get(fields[0].lower())
        fields = expanded.split() if expanded else fields
    if len(fields) == 5:
        fields = ["0", *fields, "*"]
    elif len(fields) == 6:
        fields = ["0", *fields]
    if len(fields) != 7:
        return None
    seven = " ".join(fields)
    return seven if croniter.is_valid(seven, second_at_beginning=True) else None


def next_run(seven_fields: str, after: dt.datetime) -> dt.datetime:
    """The first time strictly after ``after`` matching a 7-field schedule (same tzinfo)."""
    return croniter(seven_fields, after, second_at_beginning=True).get_next(dt.datetime)


def parse_job_line(line: str, line_number: int = 0) -> Job:
    """Split a job line into schedule and command the way supercronic does."""
    spans = [m.span() for m in _FIELDS.finditer(line)]
    for count in FIELD_COUNTS:
        if len(spans) <= count:
            continue
        schedule = line[: spans[count - 1][1]]
        seven = to_seven_fields(schedule)
        if seven is not None:
            command = line[spans[count][0] :].strip()
            return Job(line_number, schedule.strip(), seven, command)
    raise CrontabError(f"line {line_number}: not a schedule followed by a command: {line!r}")


def _unquote(value: str) -> str:
    """Drop matching quotes around a value, as Vixie cron and supercronic do."""
    if len(value) > 1 and value[0] in "\"'" and value[0] == value[-1]:
        return value[1:-1]
    return value


def parse(text: str) -> Crontab:
    """Parse a whole crontab; CrontabError names the first bad line."""
    jobs: list[Job] = []
    environment: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.lstrip(" \t")
        if not line.strip() or line.startswith("#"):
            continue
        variable = _ENV_LINE.match(line)
        if variable:
            environment[variable.group(1)] = _unquote(variable.group(2))
            continue
        jobs.append(parse_job_line(line, number))
    return Crontab(tuple(jobs), environment)
