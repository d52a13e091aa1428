"""Settings: every variable validated, a bad one stops the program with one clear line."""

import subprocess
import sys
from pathlib import Path

import pytest

from avoviirscollector.settings import Settings, SettingsError, load


def test_defaults_match_the_original_collector():
    settings = load({})
    assert settings.base_dir == Path("/viirs")
    assert settings.retention_days is None
    assert settings.gina_connections == 4
    assert settings.backfill_days == 2
    assert settings.facility == "gilmore"
    assert settings.gina_url == "http://nrt-status.gina.alaska.edu/products.json"
    assert (settings.task_port, settings.state_port, settings.message_port) == (19091, 19191, 29092)
    assert settings.log_level == "INFO"
    assert not settings.mail_enabled


def test_every_variable_is_read_and_typed(tmp_path):
    settings = load(
        {
            "VIIRS_BASE_DIR": str(tmp_path),
            "VIIRS_RETENTION": "7",
            "NUM_GINA_CONNECTIONS": "16",
            "GINA_BACKFILL_DAYS": "0",
            "VIIRS_FACILITY": "ANY",
            "GINA_URL": "http://127.0.0.1:8000/products.json",
            "MAILHOST": "smtp.example.org:2525",
            "LOG_SENDER": "viirs@example.org",
            "LOG_RECIPIENT": "a@example.org, b@example.org",
            "VIIRS_TASK_PORT": "20001",
            "VIIRS_STATE_PORT": "20002",
            "VIIRS_MESSAGE_PORT": "20003",
            "VIIRS_LOG_LEVEL": "debug",
        }
    )
    assert settings.base_dir == tmp_path
    assert settings.sdr_dir == tmp_path / "sdr"
    assert settings.retention_days == 7
    assert settings.gina_connections == 16
    assert settings.backfill_days == 0
    assert settings.facility == "any"
    assert (settings.mailhost, settings.mailport) == ("smtp.example.org", 2525)
    assert settings.log_recipients == ("a@example.org", "b@example.org")
    assert settings.mail_enabled
    assert (settings.task_port, settings.state_port, settings.message_port) == (20001, 20002, 20003)
    assert settings.log_level == "DEBUG"


def test_mailhost_without_port_uses_25():
    assert load({"MAILHOST": "smtp.example.org"}).mailport == 25


def test_empty_variables_mean_unset():
    assert load({"VIIRS_RETENTION": "", "MAILHOST": " "}) == Settings()


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("VIIRS_RETENTION", "seven", "an integer >= 1"),
        ("VIIRS_RETENTION", "0", "an integer >= 1"),
        ("NUM_GINA_CONNECTIONS", "17", "an integer from 1 to 16"),
        ("NUM_GINA_CONNECTIONS", "0", "an integer from 1 to 16"),
        ("GINA_BACKFILL_DAYS", "-1", "an integer >= 0"),
        ("VIIRS_FACILITY", "fairbanks", "one of gilmore, uafgina, any"),
        ("GINA_URL", "ftp://gina", "an http:// or https:// URL"),
        ("MAILHOST", "smtp:port", "a host name or host:port"),
        ("LOG_RECIPIENT", "nobody", "e-mail addresses separated by commas"),
        ("LOG_SENDER", "nobody", "an e-mail address"),
        ("VIIRS_TASK_PORT", "70000", "an integer from 1 to 65535"),
        ("VIIRS_BASE_DIR", "relative/dir", "an absolute path"),
        ("VIIRS_LOG_LEVEL", "LOUD", "one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    ],
)
def test_bad_value_names_variable_value_and_what_is_allowed(name, value, allowed):
    with pytest.raises(SettingsError) as caught:
        load({name: value})
    assert str(caught.value) == f"{name}={value!r} is not valid: expected {allowed}"


LOAD_OR_EXIT = "from avoviirscollector.settings import load_or_exit; load_or_exit()"


def test_bad_value_stops_a_program_with_one_line_and_status_2():
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from avoviirscollector.settings import load_or_exit; load_or_exit()",
        ],
        env={"NUM_GINA_CONNECTIONS": "many", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "configuration error: NUM_GINA_CONNECTIONS='many' is not valid: "
        "expected an integer from 1 to 16"
    ]


@pytest.mark.parametrize(
    "name, value",
    [
        ("LOG_RECIPIENT", "duty@example.org\r\nBcc: everyone@example.org"),
        ("LOG_SENDER", "collector@example.org\nSubject: forged"),
        ("LOG_RECIPIENT", "duty@example.org,\rbackup@example.org"),
    ],
)
def test_cr_or_lf_in_a_mail_address_is_refused_at_start_in_one_line_with_status_2(name, value):
    result = subprocess.run(
        [sys.executable, "-c", LOAD_OR_EXIT],
        env={name: value, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(f"configuration error: {name}=")
    assert "without control characters" in result.stderr


@pytest.mark.parametrize(
    "value",
    [
        "htp://gina:hunter2@nrt-status.gina.alaska.edu/products.json",
        "gina:hunter2@nrt-status.gina.alaska.edu/products.json",
        "ftp://:hunter2@gina.example/products.json",
        "http://gina:hunter2 @gina.example/",
    ],
)
def test_a_mistyped_url_never_prints_its_password_in_the_settings_error(value):
    result = subprocess.run(
        [sys.executable, "-c", LOAD_OR_EXIT],
        env={"GINA_URL": value, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("configuration error: GINA_URL=")
    assert "hunter2" not in result.stderr
