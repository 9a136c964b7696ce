"""A minimal W3C WebDriver client for headless Chromium through chromedriver (plain HTTP, no
Selenium): enough to log in with a cookie, open a page of Airflow's UI, read the text of the
plugin's iframe once it has rendered, and take a screenshot."""

from __future__ import annotations

import base64
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import requests
from smtp_sink import free_port

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
CHROMEDRIVER = shutil.which("chromedriver") or (
    "/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None
)
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the W3C key of an element reference


class WebDriverError(RuntimeError):
    pass


class Browser:
    """One headless Chromium session, driven by its own chromedriver on a free port."""

    def __init__(self, profile: Path, *, width: int = 1400, height: int = 1000) -> None:
        assert CHROMIUM and CHROMEDRIVER, "chromium and chromedriver are needed"
        self.port = free_port()
        self.proc = subprocess.Popen(
            [CHROMEDRIVER, f"--port={self.port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(self.base + "/status", timeout=2).json()["value"]["ready"]:
                    break
            except (requests.RequestException, ValueError, KeyError):
                pass
            if time.monotonic() > deadline:
                self.proc.kill()
                raise WebDriverError("chromedriver did not start")
            time.sleep(0.2)
        args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
        ]
        caps = {"browserName": "chrome", "goog:chromeOptions": {"binary": CHROMIUM, "args": args}}
        self.session = self._call("POST", "/session", {"capabilities": {"alwaysMatch": caps}})["sessionId"]

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        resp = requests.request(method, self.base + path, json=body, timeout=120)
        value = resp.json().get("value")
        if resp.status_code >= 400:
            raise WebDriverError(f"{method} {path}: {value}")
        return value

    def _s(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return self._call(method, f"/session/{self.session}{path}", body)

    def get(self, url: str) -> None:
        self._s("POST", "/url", {"url": url})

    def set_size(self, width: int, height: int) -> None:
        self._s("POST", "/window/rect", {"width": width, "height": height})

    def add_cookie(self, name: str, value: str) -> None:
        self._s("POST", "/cookie", {"cookie": {"name": name, "value": value, "path": "/"}})

    def script(self, js: str) -> Any:
        return self._s("POST", "/execute/sync", {"script": js, "args": []})

    def iframe_text(self) -> str:
        """The text of the page's first iframe ('' while there is none)."""
        found = self._s("POST", "/elements", {"using": "css selector", "value": "iframe"})
        if not found:
            return ""
        self._s("POST", "/frame", {"id": {ELEMENT: found[0][ELEMENT]}})
        try:
            return str(self.script("return document.body ? document.body.innerText : '';") or "")
        finally:
            self._s("POST", "/frame/parent", {})

    def wait_for_iframe_text(self, needle: str, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            try:
                text = self.iframe_text()
            except WebDriverError:
                text = ""  # the frame was replaced while we looked: look again
            if needle in text:
                return text
            time.sleep(0.5)
        page = self.script("return document.body ? document.body.innerText : '';")
        raise WebDriverError(
            f"{needle!r} never appeared in the iframe; iframe: {text[:500]!r}; page: {page!r:.800}"
        )

    def screenshot(self, out: Path) -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(base64.b64decode(self._s("GET", "/screenshot")))

    def close(self) -> None:
        try:
            self._s("DELETE", "")
        except (WebDriverError, requests.RequestException):
            pass
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
