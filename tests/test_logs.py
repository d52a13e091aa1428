"""Logging: UTC lines on stderr, errors batched into mail, a dead mail server costs nothing."""

import json
import logging
import os
import re
import stat
import subprocess
import sys
import time

import pytest

from avoviirscollector.logs import MailHandler, UTCFormatter, mail_note, redact, spool_path
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
        # A base directory without state/: no mail record survives the test (no /viirs).
        env={"PATH": "/usr/bin:/bin", "VIIRS_BASE_DIR": "/nonexistent/viirs", **env},
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


@pytest.mark.parametrize(
    "text, secret, shown",
    [
        ("http://:pw1234@gina.example/x", "pw1234", "http://:***@gina.example/x"),
        ("https://TOKEN9876@gina.example/p.json", "TOKEN9876", "https://***@gina.example/p.json"),
        ("http://gina:hun@ter2@gina.example/p", "ter2", "http://gina:***@gina.example/p"),
        ("htp://gina:hunter2@gina.example/p", "hunter2", "htp://gina:***@gina.example/p"),
        ("GINA_URL='gina:hunter2@gina.example/p'", "hunter2", "GINA_URL='gina:***@gina.example/p'"),
        ("GET /p.json?access_token=s3cr3t&x=1", "s3cr3t", "GET /p.json?access_token=***&x=1"),
    ],
)
def test_redact_hides_every_form_a_credential_takes_in_a_url(text, secret, shown):
    assert secret not in redact(text)
    assert redact(text) == shown


def test_redact_keeps_mail_addresses_and_times():
    text = "mailed duty@example.org at 2026-12-01T03:12:00Z"
    assert redact(text) == text


DEAD_MAIL = {"LOG_SENDER": "a@example.org", "LOG_RECIPIENT": "b@example.org"}


def test_a_mail_that_fails_is_kept_then_sent_by_a_later_run_never_lost(
    smtp_server, mail_env, base_dir, make_settings
):
    env = {**DEAD_MAIL, "MAILHOST": f"127.0.0.1:{free_port()}", "VIIRS_BASE_DIR": str(base_dir)}
    (base_dir / "state").mkdir()
    failed = run_job(CRON_JOB, env)
    warning = [line for line in failed.stderr.splitlines() if "could not mail" in line]
    assert len(warning) == 1 and "kept, tried again the first run after" in warning[0]
    spool = spool_path(make_settings(**env), "mirror_gina")
    assert stat.S_IMODE(os.stat(spool).st_mode) == 0o600, "error records are the owner's only"
    assert "hunter2" not in spool.read_text()
    note = mail_note(make_settings(**env), "mirror_gina")
    assert note.startswith("the error mail could not be sent at ")
    assert "ConnectionRefusedError" in note and "4 record(s) kept, tried again after " in note
    # Time passes (the retry is due) and the mail server is back: the next run, even one
    # without an error of its own, sends what the first one could not.
    kept = json.loads(spool.read_text())
    spool.write_text(json.dumps({**kept, "next_attempt": 0}))
    quiet = "from avoviirscollector import logs, settings\n"
    quiet += "logs.setup('mirror_gina', settings.load_or_exit())"
    run_job(quiet, {**mail_env, "VIIRS_BASE_DIR": str(base_dir)})
    mails = smtp_server.wait_for(1)
    assert len(mails) == 1 and mails[0].get_content().count("md5 mismatch") == 3
    assert mail_note(make_settings(**mail_env, VIIRS_BASE_DIR=base_dir), "mirror_gina").startswith(
        "mailed at "
    )


def test_any_mail_failure_is_one_warning_line_and_the_records_stay_kept(
    smtp_server, tmp_path, make_settings, capfd
):
    from dataclasses import replace

    # A header that EmailMessage refuses (settings refuse it at start; this proves the
    # handler survives any failure, not only the network's).
    settings = replace(
        make_settings(MAILHOST=smtp_server.address, **DEAD_MAIL),
        log_sender="a@example.org\r\nBcc: x@example.org",
    )
    handler = MailHandler("task_broker", settings, interval=None, spool=tmp_path / "spool.json")
    handler.setFormatter(UTCFormatter("task_broker"))
    handler.handle(logging.makeLogRecord({"msg": "queue database locked", "levelno": 40,
                                          "levelname": "ERROR"}))  # fmt: skip
    handler.flush()
    lines = capfd.readouterr().err.splitlines()
    assert len(lines) == 1 and "WARNING could not mail 1 error record(s)" in lines[0]
    assert smtp_server.messages == []
    assert "queue database locked" in (tmp_path / "spool.json").read_text()
