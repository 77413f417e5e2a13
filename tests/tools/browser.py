"""A real headless Chromium (Debian's chromium + chromedriver, through selenium) and a process running
the simulated observatory with the dashboard over XMPP, for the dashboard tests."""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from tools_support import observatory_config

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = os.environ.get("PYOBS_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("PYOBS_CHROMEDRIVER", "/usr/bin/chromedriver")
CHROME_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1400,1100",
]  # fmt: skip
T = TypeVar("T")


def wait_until(what: str, check: Callable[[], T], timeout: float = 20.0, interval: float = 0.05) -> T:
    """Poll ``check`` until it returns something truthy; AssertionError naming ``what`` after ``timeout``."""
    end = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # the page is between two renders: try again
            last_error = exc
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what} (last error: {last_error})")
        time.sleep(interval)


@pytest.fixture
def browser() -> Iterator[Any]:
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.skip("needs Debian's chromium and chromium-driver (scripts/setup-system.sh)")
    profile = tempfile.mkdtemp(prefix="pyobs-chromium-")
    options = webdriver.ChromeOptions()
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.binary_location = CHROMIUM
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


class Process:
    """A child process whose output lines are collected by a thread (so reading never blocks a test)."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})}
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for_line(self, contains: str, timeout: float = 60.0) -> str:
        end = time.monotonic() + timeout
        while True:
            remaining = end - time.monotonic()
            if remaining <= 0 or (self.proc.poll() is not None and self.lines.empty()):
                tail = "\n".join(self.output[-30:])
                raise AssertionError(f"no line with {contains!r} after {timeout:g} s; output:\n{tail}")
            try:
                line = self.lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            self.output.append(line)
            if contains in line:
                return line

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def xmpp_comm(server: Any, resource: str) -> Callable[[str], dict[str, Any]]:
    def comm(name: str) -> dict[str, Any]:
        return {
            "class": "pyobs.comm.xmpp.XmppComm",
            "jid": f"{name}@{server.domain}/{resource}",
            "password": server.password,
            "server": server.address,
        }

    return comm


def write_observatory(path: Path, server: Any, resource: str, dashboard: bool, **overrides: Any) -> Path:
    """The simulated observatory over XMPP, one XMPP account per module, optionally with the dashboard."""
    comm = xmpp_comm(server, resource)
    config = observatory_config(path.parent, comm, **overrides)
    if dashboard:
        config["modules"]["dashboard"] = {"class": "pyobs.modules.web.Dashboard", "port": 0, "comm": comm("dashboard")}
    path.write_text(yaml.safe_dump(config))
    return path


def python(*argv: str) -> list[str]:
    return [sys.executable, *argv]


def env() -> dict[str, str]:
    return {"PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
