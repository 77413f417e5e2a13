"""The simulated observatory on each transport, and how pyobs-comm joins it (for the tool tests)."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from pyobs.modules import MultiModule
from pyobs.object import get_object

pytest.importorskip("numpy")

WORLD: dict[str, Any] = {"class": "pyobs.modules.simulated.SimWorld", "best_focus": 12.0, "seed": 3}
#: the weather turns every half second, for 60 s: events, log lines and state changes to watch
FLIPPING = [{"good": i % 2 == 0, "duration": 0.5} for i in range(120)]

#: a quick observatory without a night script: only the tools drive it
DEVICES: dict[str, Any] = {
    "weather": {"class": "pyobs.modules.simulated.SimWeather", "world": WORLD, "script": FLIPPING, "interval": 0.05},
    "telescope": {
        "class": "pyobs.modules.simulated.SimTelescope",
        "slew_speed": 20.0,
        "init_time": 0.05,
        "settle_time": 0.02,
        "state_interval": 0.1,
    },
    "focuser": {"class": "pyobs.modules.simulated.SimFocuser", "focus": 11.95, "speed": 10.0, "world": WORLD},
    "camera": {
        "class": "pyobs.modules.simulated.SimCamera",
        "width": 128,
        "height": 128,
        "exposure_time": 0.05,
        "readout_time": 0.02,
        "world": WORLD,
    },
}
MODULES = sorted(DEVICES)


def observatory_config(image_dir: Path, comm: Any = None, **overrides: dict[str, Any]) -> dict[str, Any]:
    """A MultiModule config of DEVICES; ``comm(name)`` gives each module's comm config (None: LocalComm)."""
    modules = {}
    for name, cfg in DEVICES.items():
        cfg = {**copy.deepcopy(cfg), **overrides.get(name, {})}
        if name == "camera":
            cfg["image_dir"] = str(image_dir)
        if comm is not None:
            cfg["comm"] = comm(name)
        modules[name] = cfg
    return {"class": "pyobs.modules.MultiModule", "modules": modules}


@dataclass
class Bus:
    """The observatory on one transport and the pyobs-comm options that join it."""

    kind: str
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    observatory: MultiModule | None = None  # None for local: pyobs-comm runs it itself


@pytest.fixture(params=["local", "xmpp", "dbus"])
def transport(request: pytest.FixtureRequest) -> tuple[str, Any]:
    """(kind, backend): the backend fixture of tests/backends (None for local)."""
    kind = request.param
    return kind, None if kind == "local" else request.getfixturevalue(f"{kind}_backend")


@pytest.fixture
async def bus(transport: tuple[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Bus]:
    kind, backend = transport
    if kind == "local":
        path = tmp_path / "observatory.yaml"
        path.write_text(yaml.safe_dump(observatory_config(tmp_path)))
        yield Bus(kind, ["--config", str(path)])
        return
    obs = get_object(observatory_config(tmp_path, backend.comm_config), MultiModule)
    await obs.open()
    try:
        if kind == "xmpp":
            server = backend.server
            env = {"PYOBS_PASSWORD": server.password}
            for k, v in env.items():
                monkeypatch.setenv(k, v)
            yield Bus(
                kind, ["--xmpp", f"tool@{server.domain}/{backend.resource}", "--server", server.address], env, obs
            )
        else:
            yield Bus(kind, ["--dbus", "tool", "--bus", backend.address, "--dbus-prefix", backend.prefix], {}, obs)
    finally:
        await obs.close()
