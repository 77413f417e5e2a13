"""The dashboard in a real headless Chromium against the simulated observatory over XMPP."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
from pathlib import Path
from typing import Any

import pytest
from browser import ARTIFACTS, Process, env, python, wait_until, write_observatory
from tools_support import MODULES

pytest.importorskip("aiohttp")
pytest.importorskip("selenium")
from selenium.webdriver.common.by import By

RESOURCE = f"web{os.getpid()}"
#: a slow mount: a slew takes seconds, so the position can be seen moving; the dashboard's account may
#: move and park it, but not set offsets (its acl:)
#: the weather turns every 2 s (events, log lines, a plot)
WEATHER = {"script": [{"good": i % 2 == 0, "duration": 2.0} for i in range(60)], "interval": 0.1}
TELESCOPE = {
    "slew_speed": 10.0,
    "state_interval": 0.1,
    "acl": {"allow": {"dashboard": ["IModule", "IMotion", "IPointingAltAz", "IPointingRaDec"], "tool": "*"}},
}


def cli_json(server: Any, *argv: str) -> list[dict[str, Any]]:
    """pyobs-comm in its own process, as a second observer of the same bus."""
    done = subprocess.run(
        python("-m", "pyobs.tools.cli", "--xmpp", f"tool@{server.domain}/{RESOURCE}", "--server", server.address,
               "--wait-for", "telescope", "--json", *argv),
        capture_output=True, text=True, timeout=60, env={**os.environ, **env(), "PYOBS_PASSWORD": server.password},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def call_from_page(driver: Any, module: str, method: str, timeout: float = 30.0, **args: Any) -> str:
    """Fill the method's form on the page, press call, wait for the result line; returns its text."""
    card = driver.find_element(By.ID, f"module-{module}")
    details = card.find_element(By.CSS_SELECTOR, "details.methods")
    if not details.get_attribute("open"):
        details.find_element(By.TAG_NAME, "summary").click()
    form = driver.find_element(By.ID, f"call-{module}-{method}")
    for name, value in args.items():
        field = form.find_element(By.NAME, name)
        field.clear()
        field.send_keys(str(value))
    result = driver.find_element(By.ID, f"result-{module}-{method}")
    driver.execute_script("arguments[0].textContent = ''", result)
    form.find_element(By.CSS_SELECTOR, "button.call-btn").click()
    return wait_until(
        f"the result of {module}.{method}",
        lambda: result.text if result.text.startswith(("✓", "✗")) else "",
        timeout,
    )


def state_attr(driver: Any, key: str, selector: str, attr: str) -> str | None:
    """An attribute of an element in a rendered state, read in one step in the page (the element is
    replaced on every update: a find followed by a read could miss it)."""
    script = "const e = document.querySelector(arguments[0]); return e ? e.getAttribute(arguments[1]) : null"
    value = driver.execute_script(script, f'[data-key="{key}"] {selector}', attr)
    return None if value is None else str(value)


def test_dashboard_in_chromium(prosody: Any, browser: Any, tmp_path: Path) -> None:
    config = write_observatory(
        tmp_path / "observatory.yaml", prosody, RESOURCE, dashboard=True, telescope=TELESCOPE, weather=WEATHER
    )
    observatory = Process(python("-m", "pyobs", str(config)), env={**env(), "PYOBS_DASHBOARD_PASSWORD": "s3cret"})
    try:
        line = observatory.wait_for_line("dashboard: open ")
        url = line.split("dashboard: open ", 1)[1].strip()
        assert url.startswith("http://127.0.0.1:") and "#token=" not in url  # a configured password is not shown

        # login first: a wrong password is refused, nothing but the login form shows
        browser.get(url)
        wait_until("the login form", lambda: browser.find_element(By.ID, "login-box").is_displayed())
        assert not browser.find_element(By.ID, "main").is_displayed()
        browser.find_element(By.ID, "password").send_keys("wrong")
        browser.find_element(By.CSS_SELECTOR, "#login button").click()
        wait_until("the login error", lambda: "wrong password" in browser.find_element(By.ID, "login-error").text)
        browser.find_element(By.ID, "password").clear()
        browser.find_element(By.ID, "password").send_keys("s3cret")
        browser.find_element(By.CSS_SELECTOR, "#login button").click()

        # every module is listed, with its state
        def listed() -> list[str]:
            return sorted(e.get_attribute("data-module") for e in browser.find_elements(By.CSS_SELECTOR, ".module"))

        wait_until("every module on the page", lambda: listed() == MODULES, timeout=30)
        badge = browser.find_element(By.CSS_SELECTOR, "#module-telescope [data-role=state]")
        assert badge.text == "ready"
        wait_until(
            "the parked telescope",
            lambda: state_attr(browser, "telescope/IMotion", "[data-status]", "data-status") == "parked",
        )

        # init, then a slew started from the page: the position on the page moves while it slews
        assert call_from_page(browser, "telescope", "init") == "✓ done"
        browser.execute_script("window.pyobsStateLatencies = []")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "dashboard.png"
        shot.unlink(missing_ok=True)
        form = browser.find_element(By.ID, "call-telescope-move_altaz")
        form.find_element(By.NAME, "alt").send_keys("40")
        form.find_element(By.NAME, "az").send_keys("200")
        form.find_element(By.CSS_SELECTOR, "button.call-btn").click()
        result = browser.find_element(By.ID, "result-telescope-move_altaz")
        seen: list[float] = []

        def slewed() -> bool:
            alt = state_attr(browser, "telescope/IPointingAltAz", "[data-alt]", "data-alt")
            if alt is not None and (not seen or float(alt) != seen[-1]):
                seen.append(float(alt))
                if 55.0 < seen[-1] < 65.0 and not shot.exists():  # the picture: half way through the slew
                    browser.execute_script("window.scrollTo(0, 0)")
                    browser.save_screenshot(str(shot))
            return result.text.startswith(("✓", "✗"))

        wait_until("the end of the slew", slewed, timeout=30, interval=0.02)
        assert result.text == "✓ done"
        between = [a for a in seen if 41.0 < a < 79.0]
        assert len(between) >= 5, f"the page showed too few positions during the slew: {seen}"
        assert between == sorted(between, reverse=True)  # on its way down from 80 to 40
        wait_until(
            "the final altitude",
            lambda: (
                abs(float(state_attr(browser, "telescope/IPointingAltAz", "[data-alt]", "data-alt") or 0) - 40.0) < 0.5
            ),
        )
        latencies = [
            x["ms"] for x in browser.execute_script("return window.pyobsStateLatencies")
            if x["key"] in ("telescope/IPointingAltAz", "telescope/IPointingRaDec")
        ]  # fmt: skip
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "dashboard-latency.json").write_text(
            json.dumps({"samples": len(latencies), "p50_ms": statistics.median(latencies), "all_ms": latencies})
        )

        # park from the page: the simulated telescope parks (seen by a second observer, too)
        assert call_from_page(browser, "telescope", "park") == "✓ done"
        wait_until(
            "'parked' on the page",
            lambda: state_attr(browser, "telescope/IMotion", "[data-status]", "data-status") == "parked",
        )
        (motion,) = cli_json(prosody, "state", "telescope", "IMotion")
        assert motion["value"]["status"] == "parked"

        # a remote error shows with its type, and so does a call the telescope's acl: denies the dashboard
        text = call_from_page(browser, "telescope", "move_altaz", alt=60, az=0)
        assert text.startswith("✗ MoveError: ") and "parked" in text
        # the page marks what the telescope's acl: does not let the dashboard call; the telescope decides
        denied_form = browser.find_element(By.ID, "call-telescope-set_offsets_radec")
        wait_until("the ACL mark", lambda: "denied" in (denied_form.get_attribute("class") or ""))
        assert "not permitted" in denied_form.find_element(By.CSS_SELECTOR, ".acl").text
        assert "denied" not in (browser.find_element(By.ID, "call-telescope-park").get_attribute("class") or "")
        text = call_from_page(browser, "telescope", "set_offsets_radec", dra=0.001, ddec=0)
        assert text.startswith("✗ ForbiddenError: "), text

        # an exposure: its progress as a bar, the deadline the camera announced while the call runs
        assert call_from_page(browser, "camera", "set_exposure_time", exposure_time=3) == "✓ done"
        form = browser.find_element(By.ID, "call-camera-grab_data")
        form.find_element(By.CSS_SELECTOR, "button.call-btn").click()
        result = browser.find_element(By.ID, "result-camera-grab_data")
        progress: list[float] = []
        running: list[str] = []

        def exposed() -> bool:
            value = state_attr(browser, "camera/IExposure", "progress", "data-progress")
            if value is not None and 0.0 < float(value) < 100.0:
                progress.append(float(value))
            if result.text.startswith("running"):
                running.append(result.text)
            return result.text.startswith(("✓", "✗"))

        wait_until("the end of the exposure", exposed, timeout=30, interval=0.02)
        assert result.text.startswith('✓ "') and result.text.endswith('.fits"'), result.text
        # the bar moved (exposing, then reading out: each from 0)
        assert len(set(progress)) >= 2, (
            progress,
            running,
            browser.execute_script("return window.pyobsStateLatencies.length"),
        )
        assert any("deadline in" in text for text in running), running
        assert any("% exposure" in text for text in running), running  # the camera's progress notices

        # log lines of the modules appear, and the filter hides others
        def log_lines() -> list[str]:
            return [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#logs .log-line")]

        wait_until("telescope log lines", lambda: any("telescope: status" in line for line in log_lines()))
        browser.find_element(By.ID, "log-module").send_keys("nobody")
        wait_until(
            "filtered logs",
            lambda: not any(e.is_displayed() for e in browser.find_elements(By.CSS_SELECTOR, "#logs .log-line")),
        )
        browser.find_element(By.ID, "log-module").clear()
        browser.execute_script("document.getElementById('log-module').dispatchEvent(new Event('input'))")
        # the weather readings with their small time plot
        wait_until("the weather plot", lambda: browser.find_elements(
            By.CSS_SELECTOR, '#module-weather [data-sensor="temp"] svg.plot polyline'))  # fmt: skip
        # and events, with a filter
        wait_until(
            "weather events",
            lambda: browser.find_elements(By.CSS_SELECTOR, '#events .event[data-type$="WeatherEvent"]'),
        )
        browser.find_element(By.ID, "event-type").send_keys("BadWeather")

        def shown_types() -> set[str]:
            events = browser.find_elements(By.CSS_SELECTOR, "#events .event")
            return {e.get_attribute("data-type") for e in events if e.is_displayed()}

        wait_until("only BadWeatherEvents shown", lambda: shown_types() == {"BadWeatherEvent"})
        browser.find_element(By.ID, "event-type").clear()
        browser.execute_script("document.getElementById('event-type').dispatchEvent(new Event('input'))")

        assert shot.stat().st_size > 10_000  # taken during the slew
    finally:
        observatory.stop()
    if os.environ.get("PYOBS_UPDATE_DOCS_SCREENSHOT"):
        shutil.copy(ARTIFACTS / "dashboard.png", Path(__file__).resolve().parents[2] / "docs" / "dashboard.png")
