"""Helpers of the simulated-observatory tests: a fast observatory as a MultiModule, a client module, a fixture
(imported into each test module: ``from sim_support import ...``)."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from backends.base import eventually

from pyobs.comm.local import LocalComm
from pyobs.modules import Module, MultiModule
from pyobs.object import get_object

pytest.importorskip("numpy")

WORLD: dict[str, Any] = {"class": "pyobs.modules.simulated.SimWorld", "best_focus": 12.0, "seed": 3}

#: a quick observatory: fast mount, short exposures, small images
FAST: dict[str, Any] = {
    "weather": {"class": "pyobs.modules.simulated.SimWeather", "world": WORLD},
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
        "width": 384,
        "height": 384,
        "exposure_time": 0.05,
        "readout_time": 0.02,
        "seed": 5,
        "world": WORLD,
    },
    "autofocus": {"class": "pyobs.modules.simulated.SimAutoFocus"},
    "night": {
        "class": "pyobs.modules.simulated.NightScript",
        "images": 3,
        "exposure_time": 0.05,
        "focus_count": 7,
        "focus_step": 0.1,
        "focus_exposure_time": 0.05,
        "world": WORLD,
    },
}


def observatory(image_dir: Path, modules: list[str], **overrides: dict[str, Any]) -> MultiModule:
    """A MultiModule of the FAST modules named in ``modules``, with per-module config overrides."""
    cfg = {}
    for name in modules:
        cfg[name] = {**copy.deepcopy(FAST[name]), **overrides.get(name, {})}
    if "camera" in cfg:
        cfg["camera"].setdefault("image_dir", str(image_dir))
    return get_object({"class": "pyobs.modules.MultiModule", "modules": cfg}, MultiModule)


class Client(Module):
    """A plain module to call the sim devices through proxies and to collect events."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.events: list[tuple[Any, str]] = []

    async def collect(self, event: Any, sender: str) -> bool:
        self.events.append((event, sender))
        return True

    def received(self, event_type: type) -> list[Any]:
        return [e for e, _ in self.events if isinstance(e, event_type)]

    async def wait_received(self, event_type: type, count: int, timeout: float = 5.0) -> list[Any]:
        """The events of a type once at least ``count`` arrived (handlers run in tasks of their own)."""
        await eventually(lambda: len(self.received(event_type)) >= count, timeout, f"{count} {event_type.__name__}")
        return self.received(event_type)


@pytest.fixture
async def devices(tmp_path: Path) -> AsyncIterator[tuple[MultiModule, Client]]:
    """Telescope, focuser and camera (no night script), and a client on the same network."""
    obs = observatory(tmp_path, ["weather", "telescope", "focuser", "camera", "autofocus"])
    client = Client(comm=LocalComm("client", network=obs.network))
    await obs.open()
    await client.open()
    try:
        yield obs, client
    finally:
        await client.close()
        await obs.close()
