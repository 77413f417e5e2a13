#!/usr/bin/env python3
"""The dashboard's figures: time from a state change to the page showing it, and the dashboard's CPU
and memory with the simulated observatory running.

    python3 bench/dashboard.py [--slews 5] [--window 30] [--json bench/.out/dashboard.json]

Starts a throw-away prosody, the simulated observatory over XMPP (one process, one account per
module; the weather turns every few seconds, the telescope publishes its position every 0.1 s while
it moves), the dashboard from the CLI (`pyobs-comm ... dashboard`, its own process and account) and a
headless Chromium (Debian's chromium + chromedriver) logged in to it. Then:

* latency: the page records, for every state message, its arrival after rendering minus the time the
  module stamped into the state (same machine, same clock); p50/p90 over the telescope's position
  updates during ``--slews`` slews of 40°;
* CPU and memory of the dashboard process (from /proc) over ``--window`` seconds, once with the
  observatory idling (weather, tracking) and once while the telescope slews back and forth.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pyobs.testing.xmpp_server import TestServer  # noqa: E402

USERS = ["weather", "telescope", "focuser", "camera", "dashboard", "tool"]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1400,1000"]  # fmt: skip
CLK = os.sysconf("SC_CLK_TCK")


class Child:
    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, **env})  # fmt: skip
        threading.Thread(
            target=lambda: [self.lines.put(x.rstrip()) for x in self.proc.stdout or ()], daemon=True
        ).start()

    def wait_for(self, text: str, timeout: float = 60.0) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if text in line:
                return line
        raise SystemExit(f"no line with {text!r} after {timeout:g} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK  # utime + stime


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def sample(pid: int, seconds: float, during: Any = None) -> dict[str, float]:
    """CPU % (of one core) and peak RSS of ``pid`` over ``seconds`` (``during()`` is called meanwhile)."""
    t0, c0, peak = time.monotonic(), cpu_seconds(pid), rss_mb(pid)
    end = t0 + seconds
    while time.monotonic() < end:
        if during is not None:
            during()
        else:
            time.sleep(0.5)  # sampling period of the memory figure
        peak = max(peak, rss_mb(pid))
    return {"cpu_percent": 100 * (cpu_seconds(pid) - c0) / (time.monotonic() - t0), "rss_peak_mb": peak}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slews", type=int, default=5)
    parser.add_argument("--window", type=float, default=30.0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--screenshot", type=Path, help="save a screenshot of the page during a last slew")
    args = parser.parse_args()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    env = {"PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "PYOBS_DASHBOARD_PASSWORD": "bench"}
    tmp = Path(tempfile.mkdtemp(prefix="pyobs-dashboard-bench-"))
    server = TestServer(USERS)
    server.start_blocking()
    children: list[Child] = []
    driver = None
    try:
        env["PYOBS_PASSWORD"] = server.password

        def comm(name: str) -> dict[str, Any]:
            return {"class": "pyobs.comm.xmpp.XmppComm", "jid": f"{name}@{server.domain}",
                    "password": server.password, "server": server.address}  # fmt: skip

        world = {"class": "pyobs.modules.simulated.SimWorld", "best_focus": 12.0, "seed": 3}
        modules = {
            "weather": {"class": "pyobs.modules.simulated.SimWeather", "world": world,
                        "script": [{"good": i % 2 == 0, "duration": 5.0} for i in range(200)]},
            "telescope": {"class": "pyobs.modules.simulated.SimTelescope", "slew_speed": 10.0, "state_interval": 0.1,
                          "init_time": 0.1, "settle_time": 0.0},
            "focuser": {"class": "pyobs.modules.simulated.SimFocuser", "world": world},
            "camera": {"class": "pyobs.modules.simulated.SimCamera", "world": world, "width": 128, "height": 128,
                       "image_dir": str(tmp)},
        }  # fmt: skip
        for name, cfg in modules.items():
            cfg["comm"] = comm(name)
        config = tmp / "observatory.yaml"
        config.write_text(yaml.safe_dump({"class": "pyobs.modules.MultiModule", "modules": modules}))
        children.append(observatory := Child([sys.executable, "-m", "pyobs", str(config)], env))
        observatory.wait_for("camera:")
        base = [sys.executable, "-m", "pyobs.tools.cli", "--xmpp", f"dashboard@{server.domain}", "--server",
                server.address]  # fmt: skip
        children.append(dashboard := Child([*base, "dashboard", "--port", "0"], env))
        url = dashboard.wait_for("dashboard at ").split(" at ", 1)[1].strip()

        options = webdriver.ChromeOptions()
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={tmp / 'chromium'}")
        options.binary_location = "/usr/bin/chromium"
        driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
        driver.get(url)
        driver.find_element("id", "password").send_keys("bench")
        driver.find_element("css selector", "#login button").click()
        end = time.monotonic() + 30
        while len(driver.find_elements("css selector", ".module")) < 4:
            if time.monotonic() > end:
                raise SystemExit("the page did not list the modules")
            time.sleep(0.1)

        tool = [sys.executable, "-m", "pyobs.tools.cli", "--xmpp", f"tool@{server.domain}", "--server", server.address,
                "--wait-for", "telescope", "--timeout", "30", "call", "--quiet", "telescope"]  # fmt: skip

        def call(*argv: str) -> None:
            subprocess.run([*tool, *argv], env={**os.environ, **env}, check=True, capture_output=True, timeout=60)

        call("init")
        idle = sample(dashboard.proc.pid, args.window)

        driver.execute_script("window.pyobsStateLatencies = []")
        targets = iter([("40", "200"), ("80", "20")] * args.slews)
        slews = 0

        def slew() -> None:
            nonlocal slews
            alt_az = next(targets, None)
            if alt_az is not None and slews < args.slews:
                call("move_altaz", *alt_az)
                slews += 1
            else:
                time.sleep(0.5)

        busy = sample(dashboard.proc.pid, args.window, slew)
        if args.screenshot:
            slewing = subprocess.Popen([*tool, "move_altaz", "45", "120"], env={**os.environ, **env})
            end = time.monotonic() + 10
            while (
                driver.execute_script(
                    "const e = document.querySelector('[data-key=\"telescope/IMotion\"] [data-status]');"
                    "return e && e.getAttribute('data-status')"
                )
                != "slewing"
                and time.monotonic() < end
            ):
                time.sleep(0.05)
            time.sleep(1.5)  # half way through the slew, for the picture
            driver.save_screenshot(str(args.screenshot))
            slewing.wait(60)
        samples = [x["ms"] for x in driver.execute_script("return window.pyobsStateLatencies")
                   if x["key"] in ("telescope/IPointingAltAz", "telescope/IPointingRaDec")]  # fmt: skip
        quantiles = statistics.quantiles(samples, n=10) if len(samples) >= 10 else [float("nan")] * 9
        result = {
            "state_to_page_ms": {"samples": len(samples), "slews": slews, "p50": statistics.median(samples),
                                 "p90": quantiles[8], "max": max(samples)},
            "dashboard_idle": idle,
            "dashboard_slewing": busy,
            "window_s": args.window,
        }  # fmt: skip
        print(json.dumps(result, indent=2))
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result, indent=2))
        return 0
    finally:
        if driver is not None:
            driver.quit()
        for child in reversed(children):
            child.stop()
        server.stop_blocking()
        server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
