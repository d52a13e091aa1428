"""Crontab parsing follows supercronic's rules, so both runners read every line alike."""

from __future__ import annotations

import datetime as dt

import pytest

from avoviirscollector.jobs import crontab_rules
from avoviirscollector.jobs.crontab_rules import CrontabError, parse, parse_job_line

T0 = dt.datetime(2024, 3, 1, 12, 0, 5, tzinfo=dt.UTC)


def test_five_fields_are_posix_minute_hour_dom_month_dow():
    job = parse_job_line("*/5 * * * * viirscollector mirror --verbose")
    assert job.schedule == "*/5 * * * *"
    assert job.command == "viirscollector mirror --verbose"
    assert job.next_run(T0) == dt.datetime(2024, 3, 1, 12, 5, tzinfo=dt.UTC)


def test_seven_fields_put_seconds_first_and_year_last():
    job = parse_job_line("*/30 * * * * * * mirror_gina")
    assert job.command == "mirror_gina"
    assert job.next_run(T0) == dt.datetime(2024, 3, 1, 12, 0, 30, tzinfo=dt.UTC)
    assert job.next_run(job.next_run(T0)) == dt.datetime(2024, 3, 1, 12, 1, tzinfo=dt.UTC)


def test_six_fields_mean_a_year_at_the_end_not_seconds_as_in_supercronic():
    job = parse_job_line("0 0 1 1 * 2030 echo happy new year")
    assert job.seven_fields == "0 0 0 1 1 * 2030"
    assert job.next_run(T0) == dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def test_shorthand_schedules():
    job = parse_job_line("@hourly viirscollector fetch-tle")
    assert job.command == "viirscollector fetch-tle"
    assert job.next_run(T0) == dt.datetime(2024, 3, 1, 13, tzinfo=dt.UTC)


def test_variables_comments_blank_lines_and_shell():
    tab = parse(
        '# comment\n\n   \nFOO = "bar baz"\nSHELL=/bin/bash\n  # indented comment\n'
        "0 0 * * * viirscollector cleanup\n"
    )
    assert tab.environment == {"FOO": "bar baz", "SHELL": "/bin/bash"}
    assert tab.shell == "/bin/bash"
    assert [j.command for j in tab.jobs] == ["viirscollector cleanup"]
    assert tab.jobs[0].line_number == 7


def test_default_shell_is_bin_sh():
    assert parse("* * * * * true").shell == "/bin/sh"


@pytest.mark.parametrize(
    "line",
    ["* * * *", "61 * * * * too-late", "* * * * *", "@reboot start-once", "every minute run"],
)
def test_bad_lines_are_refused_naming_the_line(line):
    with pytest.raises(CrontabError, match="line 3"):
        parse(f"# a\n\n{line}\n")


def test_to_seven_fields_rejects_a_non_schedule():
    assert crontab_rules.to_seven_fields("mirror_gina") is None
