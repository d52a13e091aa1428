"""``viirscollector web``: the status page, its JSON API and /metrics, read-only.

The standard library's ThreadingHTTPServer: three GET routes on loopback or a
container port need no framework, and the image gets no new dependency for them.

    /                 the page (``?hours=N``: the window, 1 to 744; default 24)
    /api/status       what the page draws, as JSON (same ``hours``)
    /metrics          Prometheus text format
    /healthz          ``ok``

Nothing here writes: the history is opened read-only, supervisord is only asked
for its process list. A bad query parameter is a 400 with the reason in one line;
any other failure a 500 with one line (the traceback goes to the log, not the page).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from avoviirscollector import liveness, logs, supervisor_client
from avoviirscollector import settings as settings_module
from avoviirscollector.operator.web import history_rules as rules
from avoviirscollector.operator.web import history_store, metrics, page, views

log = logging.getLogger("web")

DEFAULT_HOURS = 24
#: route -> the query parameters it accepts
ROUTES = {"/": {"hours"}, "/api/status": {"hours"}, "/metrics": set(), "/healthz": set(),
          "/favicon.ico": set()}  # fmt: skip


class BadRequest(Exception):
    """A request the server refuses with 400; the message says why."""


def parse_query(path: str, query: str) -> dict[str, str]:
    """The query's parameters, each given once and known to the route; BadRequest if not."""
    try:
        values = parse_qs(
            query, keep_blank_values=True, strict_parsing=bool(query), max_num_fields=10
        )
    except ValueError as error:
        raise BadRequest(f"unreadable query string: {error}") from None
    unknown = sorted(set(values) - ROUTES[path])
    if unknown:
        allowed = ", ".join(sorted(ROUTES[path])) or "none"
        raise BadRequest(f"unknown parameter {unknown[0]!r} (allowed: {allowed})")
    repeated = [name for name, given in values.items() if len(given) > 1]
    if repeated:
        raise BadRequest(f"parameter {repeated[0]!r} given more than once")
    return {name: given[0] for name, given in values.items()}


def hours_of(params: dict[str, str], context: views.Context) -> int:
    """The window in hours; BadRequest beyond the history's days."""
    limit = min(rules.MAX_WINDOW_HOURS, 24 * rules.history_days(context.retention_days))
    try:
        return rules.parse_hours(params.get("hours"), min(DEFAULT_HOURS, limit), limit)
    except rules.BadParameter as error:
        raise BadRequest(str(error)) from None


class Handler(BaseHTTPRequestHandler):
    """One request: route, validate, answer; never a traceback to the client."""

    server_version = "viirscollector-web"
    context: views.Context  # set by serve()

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        """GET one of ROUTES."""
        self._answer(send_body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        """HEAD: GET without the body."""
        self._answer(send_body=False)

    def _refuse_method(self) -> None:
        self._send(
            HTTPStatus.METHOD_NOT_ALLOWED,
            b"read-only: only GET and HEAD\n",
            "text/plain; charset=utf-8",
            True,
            {"Allow": "GET, HEAD"},
        )

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse_method  # noqa: N815

    def _answer(self, send_body: bool) -> None:
        started = time.monotonic()
        url = urlsplit(self.path)
        try:
            if url.path not in ROUTES:
                self._send(
                    HTTPStatus.NOT_FOUND,
                    f"no page {url.path}; try /\n".encode(),
                    "text/plain; charset=utf-8",
                    send_body,
                )
                return
            params = parse_query(url.path, url.query)
            status, body, kind = self._route(url.path, params)
        except BadRequest as error:
            self._send(
                HTTPStatus.BAD_REQUEST,
                f"bad request: {error}\n".encode(),
                "text/plain; charset=utf-8",
                send_body,
            )
            return
        except Exception as error:
            log.exception("failed to answer %s", url.path)
            self._send(
                HTTPStatus.INTERNAL_SERVER_ERROR,
                f"the status page failed: {logs.redact(str(error))}\n".encode(),
                "text/plain; charset=utf-8",
                send_body,
            )
            return
        self._send(status, body, kind, send_body)
        log.debug(
            "%s in %.0f ms, %d bytes", self.path, (time.monotonic() - started) * 1000, len(body)
        )

    def _route(self, path: str, params: dict[str, str]) -> tuple[int, bytes, str]:
        context = self.context
        if path == "/healthz":
            return HTTPStatus.OK, b"ok\n", "text/plain; charset=utf-8"
        if path == "/favicon.ico":  # browsers ask; nothing to show, and no 404 in their console
            return HTTPStatus.NO_CONTENT, b"", "image/x-icon"
        if path == "/metrics":
            return HTTPStatus.OK, metrics.exposition(context), metrics.CONTENT_TYPE
        model = views.status(context, hours_of(params, context))
        if path == "/api/status":
            body = json.dumps(views.api_form(model), separators=(",", ":")).encode()
            return HTTPStatus.OK, body, "application/json"
        return HTTPStatus.OK, page.render(model).encode(), "text/html; charset=utf-8"

    def _send(self, status, body: bytes, kind: str, send_body: bool, extra=None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header(
                "Content-Security-Policy",
                "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:",
            )
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if send_body:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the browser went away (a reload): nothing to answer

    def log_message(self, format, *args) -> None:  # noqa: A002 - http.server's signature
        """Access lines at DEBUG: a wall screen reloading every 15 s must not fill the log."""
        log.debug("%s %s", self.address_string(), format % args)


def context_of(settings: settings_module.Settings) -> views.Context:
    """What every request reads: paths, products (etc/segment_gatherer.ini), retention."""
    return views.Context(
        base_dir=settings.base_dir,
        history=history_store.path_of(settings.state_dir),
        products=views.products_of(settings.config_dir / "etc" / "segment_gatherer.ini"),
        retention_days=settings.retention_days,
        socket=supervisor_client.socket_of(settings.base_dir),
    )


def make_server(context: views.Context, port: int, host: str = "") -> ThreadingHTTPServer:
    """A server bound to ``host:port`` (all addresses by default), not yet serving."""
    handler = type("BoundHandler", (Handler,), {"context": context})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT."""
    settings = settings_module.load_or_exit()
    parser = argparse.ArgumentParser(
        prog="viirscollector web",
        description="Serve the status page (/), its JSON (/api/status) and Prometheus metrics "
        f"(/metrics) on VIIRS_WEB_PORT ({settings.web_port}); read-only.",
    )
    listen = "" if settings.listen_address == "*" else settings.listen_address
    parser.add_argument(
        "--host", default=listen, help="address to listen on (default: VIIRS_LISTEN_ADDRESS)"
    )
    args = parser.parse_args(argv)
    logs.setup("web", settings, daemon=True)
    liveness.start(settings.base_dir, "web")
    context = context_of(settings)
    try:
        server = make_server(context, settings.web_port, args.host)
    except OSError as error:
        log.error("cannot listen on port %d: %s; exiting", settings.web_port, error.strerror)
        return 1
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    thread.start()
    log.info(
        "status page on http://localhost:%d/ (history %s)", settings.web_port, Path(context.history)
    )
    stop.wait()
    server.shutdown()
    server.server_close()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
