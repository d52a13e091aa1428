"""A real headless Chromium (Debian's package), driven over the DevTools protocol.

No browser download, no Playwright: ``chromium --headless --remote-debugging-port``
plus websocket-client. Console errors, uncaught exceptions and failed loads are
collected so a test can fail on any of them::

    with Chromium(tmp_path) as browser:
        browser.open("http://127.0.0.1:19292/")
        rows = browser.evaluate("document.querySelectorAll('tr.satellite').length")
        browser.screenshot(tmp_path / "page.png")
        assert browser.errors == []
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import websocket

from avoviirscollector.netutil import free_port

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-allow-origins=*",
)


def executable() -> str | None:
    """Debian's chromium, if installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Chromium:
    """One headless browser with one tab; close() ends it."""

    def __init__(self, tmp_dir: Path, width: int = 1600, height: int = 1000):
        self.tmp_dir, self.width, self.height = Path(tmp_dir), width, height
        self.errors: list[str] = []
        self.events: list[dict] = []
        self._id = 0

    def __enter__(self) -> Chromium:
        port = free_port()
        profile = self.tmp_dir / "chromium-profile"
        profile.mkdir(parents=True, exist_ok=True)
        self.log = open(self.tmp_dir / "chromium.log", "ab")  # noqa: SIM115 - closed in __exit__
        self.process = subprocess.Popen(
            [
                executable() or "chromium",
                *FLAGS,
                f"--user-data-dir={profile}",
                f"--remote-debugging-port={port}",
                f"--window-size={self.width},{self.height}",
                "about:blank",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        try:
            target = self._page_target(port)
            self.ws = websocket.create_connection(
                target["webSocketDebuggerUrl"], timeout=30, suppress_origin=True
            )
            for domain in ("Page", "Runtime", "Log", "Network"):
                self.call(f"{domain}.enable")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _page_target(self, port: int, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as r:
                    pages = [t for t in json.load(r) if t.get("type") == "page"]
                if pages:
                    return pages[0]
            except OSError:
                pass
            if self.process.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.process.returncode}")
            time.sleep(0.1)
        raise RuntimeError(f"chromium's DevTools port {port} did not answer in {timeout} s")

    def __exit__(self, *exc_info) -> None:
        ws = getattr(self, "ws", None)
        if ws is not None:
            ws.close()
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.log.close()

    # --- the protocol -------------------------------------------------------------------

    def _note(self, event: dict) -> None:
        self.events.append(event)
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            texts = [str(a.get("value", a.get("description", ""))) for a in params.get("args", [])]
            self.errors.append("console: " + " ".join(texts))
        elif method == "Runtime.exceptionThrown":
            self.errors.append("exception: " + params["exceptionDetails"].get("text", ""))
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            self.errors.append(
                f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}"
            )
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            self.errors.append(f"network: {params.get('errorText')}")

    def call(self, method: str, timeout: float = 30, **params) -> dict:
        """Send one command and return its result (events meanwhile are recorded)."""
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = json.loads(self.ws.recv())
            if message.get("id") == self._id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self._note(message)
        raise TimeoutError(f"{method}: no answer in {timeout} s")

    def wait_event(self, method: str, timeout: float = 30) -> dict:
        """The next event ``method`` (recording the others)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.ws.settimeout(max(deadline - time.monotonic(), 0.1))
            message = json.loads(self.ws.recv())
            self._note(message)
            if message.get("method") == method:
                self.ws.settimeout(30)
                return message.get("params", {})
        raise TimeoutError(f"no {method} in {timeout} s")

    # --- what a test does ---------------------------------------------------------------

    def open(self, url: str, timeout: float = 30) -> float:
        """Load ``url`` and wait for its load event; return the seconds it took."""
        started = time.monotonic()
        result = self.call("Page.navigate", url=url)
        if result.get("errorText"):
            raise RuntimeError(f"cannot open {url}: {result['errorText']}")
        self.wait_event("Page.loadEventFired", timeout)
        return time.monotonic() - started

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (JSON-serialisable)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def screenshot(self, path: Path, full_page: bool = True) -> Path:
        """A PNG of the page (all of it by default)."""
        height = self.height
        if full_page:
            metrics = self.call("Page.getLayoutMetrics")
            height = int(metrics["cssContentSize"]["height"])
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=self.width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        # two animation frames: everything laid out above has been painted
        self.call("Runtime.evaluate", awaitPromise=True, expression="new Promise(r => "
                  "requestAnimationFrame(() => requestAnimationFrame(r)))")  # fmt: skip
        data = self.call("Page.captureScreenshot", format="png")["data"]
        self.call("Emulation.clearDeviceMetricsOverride")
        Path(path).write_bytes(base64.b64decode(data))
        return Path(path)
