"""Helpers shared by the web console's tests (no tests here): start `lonja web`, call its API with urllib, drive
chromium."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from harness import Lonja, LonjaProcess

INSTALL = "apt-get update -qq && apt-get install -y -qq chromium chromium-driver"


def browser_binaries() -> tuple[str | None, str | None]:
    """The paths of chromium and chromedriver, installed from Debian's packages first when they are missing
    and this runs as root with apt-get (as on a fresh CI machine); None where there is none."""
    def found() -> tuple[str | None, str | None]:
        return shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")

    if all(found()) or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found()
    subprocess.run(INSTALL, shell=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
                   timeout=1200, check=False)
    return found()


CHROMIUM, CHROMEDRIVER = browser_binaries()


def start_web(lonja: Lonja, ns: str, env: dict | None = None) -> tuple[LonjaProcess, str]:
    """`lonja web` on a free port for the name server at `ns`: the process and its base URL."""
    process = lonja.start("web", "--ns", ns, "--port", "0", env=env)
    url = process.wait_for("web console at ").split(" at ", 1)[1].split()[0]
    return process, url.rstrip("/")


def request(url: str, method: str = "GET", body: Any = None, headers: dict | None = None,
            token: str = "", raw: bytes | None = None) -> tuple[int, dict[str, str], Any]:
    """(status, headers, JSON body or text) of one request; never raises for an HTTP error status."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    sent = {"Content-Type": "application/json"} if body is not None else {}
    sent.update(headers or {})
    if token:
        sent["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=sent)
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            status, answer_headers, payload = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        status, answer_headers, payload = error.code, dict(error.headers), error.read()
    text = payload.decode()
    content_type = answer_headers.get("content-type", "")
    return status, answer_headers, json.loads(text) if content_type.startswith("application/json") else text


@contextmanager
def chromium(width: int = 1200, height: int = 900, phone: bool = False) -> Iterator[Any]:
    """A headless chromium driven by chromedriver, reaching 127.0.0.1 only; both stopped at the end.

    `phone`: a touch screen of width x height CSS pixels (a window cannot be made that narrow)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # never fetch a driver: the system's is used
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM or "chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     f"--window-size={width},{height}", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps",
                     "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1, EXCLUDE localhost"):
        options.add_argument(argument)
    if phone:
        options.add_experimental_option("mobileEmulation", {
            "deviceMetrics": {"width": width, "height": height, "pixelRatio": 2, "touch": True}})
    service = Service(CHROMEDRIVER or "chromedriver")
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        try:
            driver.quit()
        finally:
            process = service.process
            if process is not None and process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(5)
