"""The simulated observatory of the end-to-end tests: module configs, an observer module, the checks.

The weather script waits for ``start()`` (``autostart: false``); the observer starts it once the night
has taken two science images, so every run is the same kind of night: good weather, focus, images,
then rain, abort, park. A run takes seconds, not the minutes of a real night.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from pathlib import Path
from typing import Any

from pyobs.events import Event, ModuleClosedEvent, ModuleOpenedEvent, MotionStatusChangedEvent, NewImageEvent
from pyobs.interfaces import IStartStop
from pyobs.modules import Module
from pyobs.utils.enums import ImageType

WORLD: dict[str, Any] = {"class": "pyobs.modules.simulated.SimWorld", "best_focus": 12.0, "seed": 3}

#: module name → config (without comm:); the night script's own name is "scheduler"
MODULES: dict[str, dict[str, Any]] = {
    "weather": {
        "class": "pyobs.modules.simulated.SimWeather",
        "world": WORLD,
        "autostart": False,
        "interval": 0.05,
        "script": [{"good": True, "duration": 0.5}, {"good": False}],
    },
    "telescope": {
        "class": "pyobs.modules.simulated.SimTelescope",
        "slew_speed": 300.0,
        "init_time": 0.05,
        "settle_time": 0.02,
        "state_interval": 0.2,
    },
    "focuser": {"class": "pyobs.modules.simulated.SimFocuser", "focus": 11.95, "speed": 10.0, "world": WORLD},
    "camera": {
        "class": "pyobs.modules.simulated.SimCamera",
        "width": 256,
        "height": 256,
        "readout_time": 0.02,
        "seed": 5,
        "world": WORLD,
    },
    "autofocus": {"class": "pyobs.modules.simulated.SimAutoFocus"},
    "scheduler": {
        "class": "pyobs.modules.simulated.NightScript",
        "images": 1000,  # never reached: the weather ends the night
        "exposure_time": 0.2,
        "focus_count": 5,
        "focus_step": 0.1,
        "focus_exposure_time": 0.05,
        "startup_timeout": 30.0,
        "weather_timeout": 30.0,
        "night_timeout": 60.0,
        "world": WORLD,
    },
}
#: science images taken before the observer starts the weather script
IMAGES_BEFORE_RAIN = 2

SUMMARY = re.compile(r"(\S+): events sent: (.*); (\d+) in total, (\d+) dropped, (\d+) refused, (\d+) unsent")


def module_configs(image_dir: Path) -> dict[str, dict[str, Any]]:
    configs = {name: dict(cfg) for name, cfg in MODULES.items()}
    configs["camera"]["image_dir"] = str(image_dir)
    return configs


class Observer(Module):
    """Subscribed to every event type of every module; counts what arrives per sender and type, and
    starts the weather script once the night has taken :data:`IMAGES_BEFORE_RAIN` science images."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(publish_logs=False, **kwargs)
        self.received: Counter[tuple[str, str]] = Counter()
        self.uuids: Counter[str] = Counter()
        self.images: list[str] = []
        self.motion: dict[str, list[str]] = {}
        self.weather_started = asyncio.Event()

    async def open(self) -> None:
        await super().open()
        await self.comm.register_event(Event, self._on_event)

    async def _on_event(self, event: Event, sender: str) -> bool:
        if isinstance(event, (ModuleOpenedEvent, ModuleClosedEvent)):
            return True  # made by our own comm, not sent by anybody
        self.received[(sender, type(event).__name__)] += 1
        self.uuids[event.uuid] += 1
        if isinstance(event, MotionStatusChangedEvent):
            self.motion.setdefault(sender, []).append(str(event.status))
        if isinstance(event, NewImageEvent):
            self.images.append(event.filename)
            science = [f for f in self.images if f.endswith(f"-{ImageType.OBJECT}.fits")]
            if len(science) == IMAGES_BEFORE_RAIN and not self.weather_started.is_set():
                self.weather_started.set()
                weather = await self.proxy("weather", IStartStop)
                await weather.start()
        return True

    def received_from(self, sender: str) -> dict[str, int]:
        return {t: n for (s, t), n in self.received.items() if s == sender}


def parse_summaries(text: str) -> dict[str, tuple[dict[str, int], int, int, int]]:
    """Per module, from the comm's line at close: (sent per type, dropped, refused, unsent)."""
    out = {}
    for m in SUMMARY.finditer(text):
        sent = {}
        if m.group(2) != "none":
            for part in m.group(2).split(", "):
                name, _, n = part.partition("=")
                sent[name] = int(n)
        out[m.group(1)] = (sent, int(m.group(4)), int(m.group(5)), int(m.group(6)))
    return out


def check_night(
    observer: Observer,
    image_dir: Path,
    night_reason: str,
    sent: dict[str, dict[str, int]],
    lost: dict[str, tuple[int, int, int]],
) -> dict[str, dict[str, int]]:
    """The assertions every transport's run must pass; returns the per-sender counts received."""
    assert night_reason == "stopped: weather turned bad", night_reason
    assert observer.weather_started.is_set()
    # the telescope parks at the end of the night
    assert observer.motion.get("telescope", [])[-1:] == ["parked"], observer.motion.get("telescope")
    # the science images written are those announced by NewImageEvent (focus images are not announced)
    written = sorted(str(p) for p in image_dir.glob(f"*-{ImageType.OBJECT}.fits"))
    assert len(written) >= IMAGES_BEFORE_RAIN
    assert sorted(observer.images) == written
    # nobody lost an event, and the observer got each exactly once
    assert set(sent) == set(MODULES), f"counts of {sorted(sent)}"
    for name, (dropped, refused, unsent) in lost.items():
        assert (dropped, refused, unsent) == (0, 0, 0), f"{name} lost events: {dropped}, {refused}, {unsent}"
    got = {name: observer.received_from(name) for name in MODULES}
    for name in MODULES:
        assert got[name] == sent[name], f"{name}: sent {sent[name]}, received {got[name]}"
        assert sent[name].get("LogEvent", 0) > 0, f"{name} sent no LogEvent"
    assert set(observer.uuids.values()) == {1}
    assert got["weather"].get("BadWeatherEvent") == 1
    return got
