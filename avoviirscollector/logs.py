"""Logging for every program: UTC lines on stderr, errors batched into e-mail.

supervisord captures stderr into /viirs/log/<program>.log, so stderr is the one
destination. ERROR and above are also mailed when MAILHOST, LOG_SENDER and
LOG_RECIPIENT are set: once per run for cron jobs, at most once per interval for
daemons, so a failing GINA does not flood the duty scientist's inbox. A mail server
that is down costs one warning on stderr, never a blocked or crashed program.
"""

from __future__ import annotations

import atexit
import logging
import re
import smtplib
import socket
import sys
import threading
import time
from email.message import EmailMessage

from avoviirscollector.settings import Settings

#: Records kept for one mail; beyond this only a count is mailed.
MAX_BATCH = 200
#: Seconds a daemon waits after a first error so one burst becomes one mail.
BURST_SECONDS = 5.0
SMTP_TIMEOUT = 10.0

_SECRET_PATTERNS = (
    # scheme://user:password@host
    (re.compile(r"(?P<keep>[a-z][a-z0-9+.-]*://[^/\s:@]+:)[^@\s/]+@", re.I), r"\g<keep>***@"),
    # password=..., token=..., apikey=... in queries and key=value text
    (
        re.compile(r"(?P<keep>\b(?:pass(?:word|wd)?|token|secret|api_?key|auth)=)[^&\s\"']+", re.I),
        r"\g<keep>***",
    ),
)


def redact(text: str) -> str:
    """Hide credentials that may ride along in URLs or key=value text."""
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class UTCFormatter(logging.Formatter):
    """ISO 8601 UTC timestamps, program name and level, secrets redacted."""

    converter = time.gmtime

    def __init__(self, program: str):
        super().__init__(f"%(asctime)s {program} %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record, datefmt=None):  # noqa: N802 - logging's API name
        """Return e.g. 2026-11-28T15:52:47.123Z."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", self.converter(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z"

    def format(self, record):
        """Format, then redact anything that looks like a credential."""
        return redact(super().format(record))


class MailHandler(logging.Handler):
    """Collect ERROR records and send them as one mail per batch.

    ``interval`` None means one mail per run (sent by :meth:`flush` at exit);
    a number of seconds means a daemon: the first error is mailed after a short
    burst window, later ones at most once per interval.
    """

    def __init__(
        self,
        program: str,
        settings: Settings,
        interval: float | None,
        burst: float = BURST_SECONDS,
    ):
        super().__init__(level=logging.ERROR)
        self.burst = burst
        self.program = program
        self.settings = settings
        self.interval = interval
        self.host = socket.gethostname()
        self._records: list[str] = []
        self._dropped = 0
        self._last_sent = float("-inf")
        self._timer: threading.Timer | None = None
        self._send_lock = threading.Lock()

    def emit(self, record):
        """Keep the formatted record; schedule a send for daemons."""
        try:
            text = self.format(record)
        except Exception:  # a broken record must not break the program
            self.handleError(record)
            return
        with self.lock:
            if len(self._records) < MAX_BATCH:
                self._records.append(text)
            else:
                self._dropped += 1
            if self.interval is not None and self._timer is None:
                due = max(self.burst, self._last_sent + self.interval - time.monotonic())
                self._timer = threading.Timer(due, self._timed_flush)
                self._timer.daemon = True
                self._timer.start()

    def _timed_flush(self):
        with self.lock:
            self._timer = None
        self.flush()

    def flush(self):
        """Send what has been collected, if anything."""
        with self.lock:
            records, dropped = self._records, self._dropped
            self._records, self._dropped = [], 0
        if not records:
            return
        with self._send_lock:
            self._last_sent = time.monotonic()
            self._send(records, dropped)

    def _send(self, records: list[str], dropped: int):
        settings = self.settings
        mail = EmailMessage()
        count = len(records) + dropped
        mail["Subject"] = (
            f"[avoviirscollector] {self.program} on {self.host}: "
            f"{count} error{'s' if count != 1 else ''}"
        )
        mail["From"] = settings.log_sender
        mail["To"] = ", ".join(settings.log_recipients)
        body = "\n".join(records)
        if dropped:
            body += f"\n... and {dropped} more error records, see the program's log."
        mail.set_content(body + "\n")
        try:
            with smtplib.SMTP(settings.mailhost, settings.mailport, timeout=SMTP_TIMEOUT) as smtp:
                smtp.send_message(mail)
        except (OSError, smtplib.SMTPException) as error:
            # Straight to stderr: logging it would queue another mail.
            sys.stderr.write(
                f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {self.program} WARNING "
                f"could not mail {count} error record(s) via "
                f"{settings.mailhost}:{settings.mailport}: {error}\n"
            )

    def close(self):
        """Cancel a pending timer and send the rest."""
        with self.lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        self.flush()
        super().close()


def setup(program: str, settings: Settings, *, daemon: bool = False) -> logging.Logger:
    """Configure the root logger for one program and return the program's logger.

    Cron jobs (``daemon=False``) get one mail per run, sent at exit; daemons get
    at most one mail per ``settings.mail_interval_minutes``.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.setLevel(settings.log_level)
    formatter = UTCFormatter(program)
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(formatter)
    root.addHandler(stream)
    if settings.mail_enabled:
        interval = settings.mail_interval_minutes * 60.0 if daemon else None
        mailer = MailHandler(program, settings, interval)
        mailer.setFormatter(formatter)
        root.addHandler(mailer)
        atexit.register(mailer.close)
    logging.captureWarnings(True)
    _log_uncaught_exceptions(program)
    return logging.getLogger(program)


def _log_uncaught_exceptions(program: str):
    """An unexpected crash is an ERROR like any other: logged and mailed."""
    log = logging.getLogger(program)

    def hook(kind, value, traceback):
        if issubclass(kind, KeyboardInterrupt):
            sys.__excepthook__(kind, value, traceback)
            return
        log.critical("%s crashed", program, exc_info=(kind, value, traceback))

    def thread_hook(args):
        if args.exc_type is SystemExit:
            return
        log.critical(
            "%s: thread %s crashed",
            program,
            getattr(args.thread, "name", "?"),
            exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
        )

    sys.excepthook = hook
    threading.excepthook = thread_hook
