"""Logging for every program: UTC lines on stderr, errors batched into e-mail.

supervisord captures stderr into /viirs/log/<program>.log, so stderr is the one
destination. ERROR and above are also mailed when MAILHOST, LOG_SENDER and
LOG_RECIPIENT are set: once per run for cron jobs, at most once per interval for
daemons, so a failing GINA does not flood the duty scientist's inbox. A mail server
that is down costs one warning on stderr, never a blocked or crashed program.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import socket
import sys
import threading
import time
from pathlib import Path

from avoviirscollector.redaction import redact
from avoviirscollector.settings import Settings

__all__ = ["MailHandler", "UTCFormatter", "mail_note", "redact", "setup"]

#: Records kept for one mail; beyond this only a count is mailed.
MAX_BATCH = 200
#: Seconds a daemon waits after a first error so one burst becomes one mail.
BURST_SECONDS = 5.0
SMTP_TIMEOUT = 10.0
#: Seconds before a failed mail is tried again; doubles per failure, up to the mail interval.
RETRY_SECONDS = 60.0


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


class MailSpool:
    """The mail record of one program, kept in ``state/mail/<program>.json``.

    Records that could not be mailed wait here, with when the send failed, why, and when
    it is tried again; the next run of a cron job (or the daemon's next timer) sends them.
    So a mail server that is down loses no alert, and a program can say truthfully what
    became of its mail (:func:`mail_note`). Without a writable state directory the spool
    lives in memory only, and the warning says the records are not kept.
    """

    def __init__(self, path: Path | None):
        self.path = path
        self.memory: dict = {}

    def load(self) -> dict:
        """The record: pending, dropped, last_sent, failed_at, error, attempts, next_attempt."""
        if self.path is None:
            return dict(self.memory)
        try:
            state = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return dict(self.memory)
        return state if isinstance(state, dict) else {}

    def save(self, state: dict) -> str | None:
        """Store it atomically, readable by its owner only; None, or why it could not."""
        self.memory = dict(state)
        if self.path is None:
            return "no state directory"
        try:
            self.path.parent.mkdir(exist_ok=True)  # in state/, never a layout of its own
            temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as stream:
                json.dump(state, stream)
            os.replace(temporary, self.path)
        except OSError as error:
            return f"cannot write {self.path}: {error.strerror or error}"
        return None


def spool_path(settings: Settings, program: str) -> Path:
    """Where ``program`` keeps its unsent error mail and its last delivery result."""
    return settings.state_dir / "mail" / f"{program}.json"


def _clock(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


def mail_note(settings: Settings, program: str, reminder_minutes: int | None = None) -> str:
    """What became of ``program``'s error mail, for a line that would say "already mailed".

    Not configured, mailed (and when), or failed (why, and when it is tried again): an
    operator reading the log at 3 a.m. must not believe a mail went out that did not.
    """
    if not settings.mail_enabled:
        return "error mails are off: MAILHOST, LOG_SENDER and LOG_RECIPIENT are not all set"
    state = MailSpool(spool_path(settings, program)).load()
    reminder = (
        ""
        if reminder_minutes is None
        else (f"; the next reminder is mailed after {reminder_minutes} minutes")
    )
    if state.get("failed_at"):
        return (
            f"the error mail could not be sent at {_clock(state['failed_at'])} "
            f"({state.get('error') or 'unknown error'}); {len(state.get('pending') or [])} "
            f"record(s) kept, tried again after {_clock(state.get('next_attempt') or 0)}"
        )
    if state.get("last_sent"):
        return f"mailed at {_clock(state['last_sent'])}{reminder}"
    return f"the error mail is sent when this run ends{reminder}"


class MailHandler(logging.Handler):
    """Collect ERROR records and send them as one mail per batch.

    ``interval`` None means one mail per run (sent by :meth:`flush` at exit);
    a number of seconds means a daemon: the first error is mailed after a short
    burst window, later ones at most once per interval. A failed send keeps the
    records in the spool and tries again after :data:`RETRY_SECONDS` (doubling up to
    the mail interval); any failure, whatever its kind, is one warning line on stderr.
    """

    def __init__(
        self,
        program: str,
        settings: Settings,
        interval: float | None,
        burst: float = BURST_SECONDS,
        spool: Path | None = None,
    ):
        super().__init__(level=logging.ERROR)
        self.burst = burst
        self.program = program
        self.settings = settings
        self.interval = interval
        self.host = socket.gethostname()
        self.spool = MailSpool(spool)
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
            if self.interval is not None:
                self._schedule(self._last_sent + self.interval - time.monotonic())

    def _schedule(self, delay: float) -> None:
        """Start the daemon's send timer unless one runs (call with self.lock held)."""
        if self._timer is None:
            self._timer = threading.Timer(max(self.burst, delay), self._timed_flush)
            self._timer.daemon = True
            self._timer.start()

    def _timed_flush(self):
        with self.lock:
            self._timer = None
        self.flush()

    def flush(self):
        """Send what has been collected plus what an earlier failed send kept, if anything."""
        with self.lock:
            records, dropped = self._records, self._dropped
            self._records, self._dropped = [], 0
        with self._send_lock:
            state = self.spool.load()
            pending = list(state.get("pending") or []) + records
            dropped += int(state.get("dropped") or 0) + max(0, len(pending) - MAX_BATCH)
            pending = pending[:MAX_BATCH]
            if not pending:
                return
            now = time.time()
            if state.get("next_attempt") and now < state["next_attempt"]:
                self._keep(state, pending, dropped, now, None, quiet=not records)
                return
            self._last_sent = time.monotonic()
            error = self._send(pending, dropped)
            if error is None:
                self.spool.save({"last_sent": now})
            else:
                self._keep(state, pending, dropped, now, error)

    def _keep(
        self, state: dict, pending: list[str], dropped: int, now: float, error, quiet=False
    ) -> None:
        """Keep unsent records for a later try; one warning line says so (never a mail),
        unless ``quiet``: a run that added nothing to what waits does not repeat it."""
        attempts = int(state.get("attempts") or 0) + (error is not None)
        ceiling = self.settings.mail_interval_minutes * 60.0
        retry = (
            state.get("next_attempt")
            if error is None
            else (now + min(RETRY_SECONDS * 2 ** max(attempts - 1, 0), ceiling))
        )
        kept = {
            "pending": pending, "dropped": dropped, "attempts": attempts, "next_attempt": retry,
            "failed_at": now if error is not None else state.get("failed_at", now),
            "error": error if error is not None else state.get("error"),
        }  # fmt: skip
        problem = self.spool.save(kept)
        count = len(pending) + dropped
        where = f"{self.settings.mailhost}:{self.settings.mailport}"
        if error is None:
            what = f"{count} error record(s) wait for the mail server {where} (it failed earlier)"
        else:
            what = f"could not mail {count} error record(s) via {where}: {error}"
        when = "the first run after" if self.interval is None else "at"
        outcome = (
            f"kept, tried again {when} {_clock(retry)}"
            if problem is None or self.interval is not None
            else f"NOT kept ({problem}): they are lost"
        )
        # Straight to stderr: logging it would queue another mail.
        if not quiet:
            sys.stderr.write(f"{_clock(now)} {self.program} WARNING {redact(what)}; {outcome}\n")
        if self.interval is not None:
            with self.lock:
                self._schedule(retry - now)

    def _send(self, records: list[str], dropped: int) -> str | None:
        """Mail the records; None when sent, else why not (any exception: one line)."""
        # Imported here, not at the top: 45 ms of every mirror_gina start, for a mail
        # that is rarely sent (atexit flushes still run before modules are torn down).
        import smtplib
        from email.message import EmailMessage

        settings = self.settings
        count = len(records) + dropped
        try:
            mail = EmailMessage()
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
            with smtplib.SMTP(settings.mailhost, settings.mailport, timeout=SMTP_TIMEOUT) as smtp:
                smtp.send_message(mail)
        except Exception as error:  # a mail problem must never stop or crash the program
            return f"{type(error).__name__}: {error}".splitlines()[0][:300]
        return None

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
        mailer = MailHandler(program, settings, interval, spool=spool_path(settings, program))
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
