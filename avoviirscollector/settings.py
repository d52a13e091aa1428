"""Every environment variable the collector reads, read once, validated, typed.

A bad value must stop a program with one line naming the variable, the value and
what is allowed (exit status 2), so an operator fixes the compose file instead of
reading a traceback. Everything else in the package takes a :class:`Settings`.
"""

from __future__ import annotations

import ipaddress
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from avoviirscollector.redaction import redact

#: Directories below the base directory that ``viirscollector run`` creates.
LAYOUT = ("sdr", "tmp", "log", "elements", "state")

FACILITIES = ("gilmore", "uafgina", "any")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEFAULT_GINA_URL = "http://nrt-status.gina.alaska.edu/products.json"
DEFAULT_TLE_URL = "https://celestrak.org/NORAD/elements/gp.php?GROUP=noaa&FORMAT=tle"
#: Where the repository keeps supervisord.conf, crontab and etc/ when run from a clone.
_SOURCE_TREE = Path(__file__).resolve().parent.parent


class SettingsError(ValueError):
    """A variable holds a value the collector cannot use."""

    def __init__(self, name: str, value: str, allowed: str):
        # The value is shown redacted: a mistyped GINA_URL must not print its password on
        # stderr (supervisord's log, `docker logs`); repr() keeps a CR or LF on one line.
        self.name, self.value, self.allowed = name, redact(value), allowed
        super().__init__(f"{name}={self.value!r} is not valid: expected {allowed}")


@dataclass(frozen=True)
class PollSettings:
    """When mirror_gina asks GINA (see avoviirscollector/mirror/cadence_rules.py)."""

    #: Seconds between polls while a pass's data can come or new files keep appearing.
    fast_seconds: int = 10
    #: Seconds between polls otherwise.
    slow_seconds: int = 120
    #: Minutes between listings of the whole backfill window (else today's dates only).
    full_listing_minutes: int = 10
    #: Seconds of fast polling after the last new file appeared.
    arrival_hold_seconds: int = 180
    #: Minutes after a pass ended that its data may still appear at GINA.
    pass_latency_minutes: int = 30
    #: kB/s a file must average, plus a fixed allowance, or it is given up and retried later.
    floor_rate_kbps: int = 200


def _poll(env: Mapping[str, str]) -> PollSettings:
    poll = PollSettings(
        fast_seconds=_integer(env, "GINA_POLL_FAST_SECONDS", 10, 10, 60),
        slow_seconds=_integer(env, "GINA_POLL_SLOW_SECONDS", 120, 30, 900),
        full_listing_minutes=_integer(env, "GINA_FULL_LISTING_MINUTES", 10, 2, 60),
        arrival_hold_seconds=_integer(env, "GINA_ARRIVAL_HOLD_SECONDS", 180, 60, 1800),
        pass_latency_minutes=_integer(env, "GINA_PASS_LATENCY_MINUTES", 30, 5, 180),
        floor_rate_kbps=_integer(env, "GINA_FLOOR_RATE_KBPS", 200, 10, 100_000),
    )
    if poll.slow_seconds < poll.fast_seconds:
        raise SettingsError(
            "GINA_POLL_SLOW_SECONDS",
            str(poll.slow_seconds),
            f"at least GINA_POLL_FAST_SECONDS ({poll.fast_seconds})",
        )
    return poll


@dataclass(frozen=True)
class Settings:
    """Typed configuration of one collector installation."""

    base_dir: Path = Path("/viirs")
    config_dir: Path = _SOURCE_TREE
    retention_days: int | None = None
    gina_connections: int = 4
    backfill_days: int = 2
    facility: str = "gilmore"
    gina_url: str = DEFAULT_GINA_URL
    tle_url: str = DEFAULT_TLE_URL
    ca_bundle: Path | None = None
    mailhost: str | None = None
    mailport: int = 25
    log_sender: str | None = None
    log_recipients: tuple[str, ...] = ()
    mail_interval_minutes: int = 10
    task_port: int = 19091
    state_port: int = 19191
    message_port: int = 29092
    #: Where the three ports listen: "*" (every interface, production) or one IPv4
    #: address; the demo gives 127.0.0.1 so no worker on the network reaches it.
    listen_address: str = "*"
    log_level: str = "INFO"
    #: verify-sdr (the check of sdr/ files we did not fetch ourselves): MB/s and minutes per run.
    verify_rate_mb: int = 50
    verify_minutes: int = 15
    web_port: int = 19292
    history_max_mb: int = 256
    #: Tasks of granules older than this wait behind newer ones (0: the original order).
    stale_task_hours: int = 1
    poll: PollSettings = None  # type: ignore[assignment]  # set in __post_init__

    def __post_init__(self):
        if self.poll is None:
            object.__setattr__(self, "poll", PollSettings())

    @property
    def sdr_dir(self) -> Path:
        """Verified SDR files; trollstalker watches it."""
        return self.base_dir / "sdr"

    @property
    def tmp_dir(self) -> Path:
        """Downloads in progress and lock files (same filesystem as sdr/ for atomic renames)."""
        return self.base_dir / "tmp"

    @property
    def log_dir(self) -> Path:
        """supervisord's and every program's log."""
        return self.base_dir / "log"

    @property
    def elements_dir(self) -> Path:
        """Two-line elements fetched hourly."""
        return self.base_dir / "elements"

    @property
    def state_dir(self) -> Path:
        """Durable state: the task queue database, the mirror's failure memory."""
        return self.base_dir / "state"

    @property
    def quarantine_dir(self) -> Path:
        """Files verify-sdr took out of sdr/ (wrong MD5, not HDF5): kept, never deleted by us.

        Made when first needed, not part of LAYOUT: the cleanup takes LAYOUT as the mark of
        a collector's base directory, and a volume without quarantine/ is still one.
        """
        return self.base_dir / "quarantine"

    @property
    def mail_enabled(self) -> bool:
        """Errors are e-mailed only when host, sender and recipients are all given."""
        return bool(self.mailhost and self.log_sender and self.log_recipients)


#: Control characters (CR, LF, NUL, ...): in LOG_SENDER or LOG_RECIPIENT they would inject
#: mail headers, in any other value they are a paste error; no setting may hold one.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _text(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    if _CONTROL.search(value):
        raise SettingsError(name, value, "a value without control characters (CR, LF, tab, ...)")
    return value or None


def _integer(env: Mapping[str, str], name: str, default: int | None, low: int, high: int | None):
    raw = _text(env, name)
    if raw is None:
        return default
    allowed = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(name, raw, allowed) from None
    if value < low or (high is not None and value > high):
        raise SettingsError(name, raw, allowed)
    return value


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = _text(env, name)
    if raw is None:
        return default
    if raw.lower() not in (c.lower() for c in choices):
        raise SettingsError(name, raw, "one of " + ", ".join(choices))
    return next(c for c in choices if c.lower() == raw.lower())


def _url(env: Mapping[str, str], name: str, default: str) -> str:
    raw = _text(env, name)
    if raw is None:
        return default
    if not raw.startswith(("http://", "https://")) or any(c.isspace() for c in raw):
        raise SettingsError(name, _without_userinfo(raw), "an http:// or https:// URL")
    return raw


def _without_userinfo(raw: str) -> str:
    """A URL as an error may show it: whatever precedes its last ``@`` is hidden, however
    mistyped the rest (a space or a missing scheme defeats the patterns of redact())."""
    if "@" not in raw:
        return raw
    scheme, sep, rest = raw.partition("://")
    prefix = f"{scheme}{sep}" if sep else ""
    return f"{prefix}***@{(rest if sep else raw).rpartition('@')[2]}"


def _mailhost(env: Mapping[str, str]) -> tuple[str | None, int]:
    raw = _text(env, "MAILHOST")
    if raw is None:
        return None, 25
    host, sep, port = raw.rpartition(":") if raw.count(":") == 1 else (raw, "", "")
    if not sep:
        return raw, 25
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SettingsError("MAILHOST", raw, "a host name or host:port")
    return host, int(port)


def _recipients(env: Mapping[str, str]) -> tuple[str, ...]:
    raw = _text(env, "LOG_RECIPIENT")
    if raw is None:
        return ()
    recipients = tuple(r.strip() for r in raw.split(",") if r.strip())
    if not recipients or any("@" not in r for r in recipients):
        raise SettingsError("LOG_RECIPIENT", raw, "e-mail addresses separated by commas")
    return recipients


def _directory(env: Mapping[str, str], name: str, default: Path) -> Path:
    raw = _text(env, name)
    if raw is None:
        return default
    if not os.path.isabs(raw):
        raise SettingsError(name, raw, "an absolute path")
    return Path(raw)


def _listen_address(env: Mapping[str, str]) -> str:
    raw = _text(env, "VIIRS_LISTEN_ADDRESS")
    if raw is None or raw == "*":
        return "*"
    try:
        return str(ipaddress.IPv4Address(raw))
    except ValueError:
        raise SettingsError(
            "VIIRS_LISTEN_ADDRESS", raw, "* (every interface) or an IPv4 address"
        ) from None


def _ca_bundle(env: Mapping[str, str]) -> Path | None:
    raw = _text(env, "TLE_CA_BUNDLE")
    if raw is None:
        return None
    if not os.path.isfile(raw):
        raise SettingsError("TLE_CA_BUNDLE", raw, "the path of an existing PEM file")
    return Path(raw)


def load(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the environment; raise SettingsError on the first bad value."""
    env = os.environ if env is None else env
    mailhost, mailport = _mailhost(env)
    sender = _text(env, "LOG_SENDER")
    if sender is not None and "@" not in sender:
        raise SettingsError("LOG_SENDER", sender, "an e-mail address")
    return Settings(
        base_dir=_directory(env, "VIIRS_BASE_DIR", Settings.base_dir),
        config_dir=_directory(env, "VIIRS_CONFIG_DIR", _SOURCE_TREE),
        retention_days=_integer(env, "VIIRS_RETENTION", None, 1, None),
        gina_connections=_integer(env, "NUM_GINA_CONNECTIONS", 4, 1, 16),
        backfill_days=_integer(env, "GINA_BACKFILL_DAYS", 2, 0, None),
        facility=_choice(env, "VIIRS_FACILITY", "gilmore", FACILITIES),
        gina_url=_url(env, "GINA_URL", DEFAULT_GINA_URL),
        tle_url=_url(env, "TLE_URL", DEFAULT_TLE_URL),
        ca_bundle=_ca_bundle(env),
        mailhost=mailhost,
        mailport=mailport,
        log_sender=sender,
        log_recipients=_recipients(env),
        mail_interval_minutes=_integer(env, "VIIRS_MAIL_INTERVAL_MINUTES", 10, 1, 1440),
        task_port=_integer(env, "VIIRS_TASK_PORT", 19091, 1, 65535),
        state_port=_integer(env, "VIIRS_STATE_PORT", 19191, 1, 65535),
        message_port=_integer(env, "VIIRS_MESSAGE_PORT", 29092, 1, 65535),
        listen_address=_listen_address(env),
        log_level=_choice(env, "VIIRS_LOG_LEVEL", "INFO", LOG_LEVELS),
        verify_rate_mb=_integer(env, "VIIRS_VERIFY_RATE_MB", 50, 1, 100000),
        verify_minutes=_integer(env, "VIIRS_VERIFY_MINUTES", 15, 1, 1440),
        poll=_poll(env),
        web_port=_integer(env, "VIIRS_WEB_PORT", 19292, 1, 65535),
        history_max_mb=_integer(env, "VIIRS_HISTORY_MAX_MB", 256, 1, None),
        stale_task_hours=_integer(env, "VIIRS_STALE_TASK_HOURS", 1, 0, 8760),
    )


def load_or_exit(env: Mapping[str, str] | None = None) -> Settings:
    """Entry points call this: a bad variable ends the program with one line and status 2."""
    try:
        return load(env)
    except SettingsError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
