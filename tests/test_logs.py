"""Logging: UTC lines on stderr, errors batched into mail, a dead mail server costs nothing."""

import logging
import re
import subprocess
import sys
import time

from avoviirscollector.logs import MailHandler, UTCFormatter, redact
from avoviirscollector.netutil import free_port

CRON_JOB = """
import logging
from avoviirscollector import logs, settings
log = logs.setup("mirror_gina", settings.load_or_exit())
log.info("starting")
for name in ("a.h5", "b.h5", "c.h5"):
    log.error("could not fetch %s: md5 mismatch", name)
log.error("GINA at http://user:hunter2@gina.example/products.json?token=abc123 failed")
"""


def run_job(code, env):
    return subprocess.run(
        [sys.executable, "-c", code],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_stderr_lines_carry_utc_iso_time_program_and_level():
    result = run_job(CRON_JOB, {})
    first = result.stderr.splitlines()[0]
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z mirror_gina INFO mirror_gina: starting", first
    )


def test_cron_job_mails_all_its_errors_once_at_exit(smtp_server, mail_env):
    result = run_job(CRON_JOB, mail_env)
    assert result.returncode == 0
    mails = smtp_server.wait_for(1)
    assert len(mails) == 1
    mail = mails[0]
    assert mail["Subject"].startswith("[avoviirscollector] mirror_gina on ")
    assert mail["Subject"].endswith(": 4 errors")
    assert mail["To"] == "duty@example.org, backup@example.org"
    body = mail.get_content()
    assert body.count("md5 mismatch") == 3
    assert "starting" not in body


def test_no_secret_reaches_the_log_or_the_mail(smtp_server, mail_env):
    result = run_job(CRON_JOB, mail_env)
    body = smtp_server.wait_for(1)[0].get_content()
    for text in (result.stderr, body):
        assert "hunter2" not in text
        assert "abc123" not in text
        assert "http://user:***@gina.example/products.json?token=***" in text


def test_unreachable_mail_server_costs_one_warning_and_no_delay():
    env = {
        "MAILHOST": f"127.0.0.1:{free_port()}",
        "LOG_SENDER": "a@example.org",
        "LOG_RECIPIENT": "b@example.org",
    }
    started = time.monotonic()
    result = run_job(CRON_JOB, env)
    assert result.returncode == 0
    assert time.monotonic() - started < 30
    warnings = [line for line in result.stderr.splitlines() if "could not mail" in line]
    assert len(warnings) == 1
    assert "4 error record(s)" in warnings[0]


def test_without_mail_settings_nothing_is_mailed(smtp_server):
    result = run_job(CRON_JOB, {})
    assert "md5 mismatch" in result.stderr
    assert smtp_server.messages == []


def test_daemon_mails_a_burst_once_then_waits_for_the_interval(
    smtp_server, mail_env, make_settings
):
    handler = MailHandler("task_broker", make_settings(**mail_env), interval=3600, burst=0.2)
    handler.setFormatter(UTCFormatter("task_broker"))
    log = logging.getLogger("test_daemon_mail")
    log.propagate = False
    log.addHandler(handler)
    try:
        log.error("first")
        log.error("second")
        log.warning("only a warning")
        assert len(smtp_server.wait_for(1)) == 1
        log.error("third, inside the interval")
        assert not smtp_server.wait_for(2, timeout=1.0)[1:]
    finally:
        log.removeHandler(handler)
        handler.close()
    mails = smtp_server.wait_for(2)
    assert "first" in mails[0].get_content() and "second" in mails[0].get_content()
    assert "only a warning" not in mails[0].get_content()
    assert "third" in mails[1].get_content()


def test_redact_leaves_ordinary_text_alone():
    text = "fetched SVI05_npp_d20191021.h5 from http://gina.example/a?b=c in 2.0 s"
    assert redact(text) == text
