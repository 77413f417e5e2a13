"""pyobs-core drives our simulated telescope (SimTelescope) like one of its own."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from harness import Core, Ours

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _poll_state(core: Core, module: str, interface: str, ok: Any, timeout: float = 20.0) -> Any:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        state = await core.sink.result("get_state", module=module, interface=interface)
        if state is not None and ok(state["fields"]):
            return state
        assert loop.time() < end, f"pyobs-core reads {module} {interface} as {state}"
        await asyncio.sleep(0.2)


async def test_pyobs_core_drives_our_simulated_telescope(ours: Ours, core: Core) -> None:
    assert "oursim" in await core.sink.result("clients_with_interface", interface="IPointingAltAz")
    assert await core.sink.call("oursim", "IMotion", "init") is None
    await _poll_state(core, "oursim", "IReady", lambda f: f["ready"] is True)
    assert await core.sink.call("oursim", "IPointingAltAz", "move_altaz", 60.0, 180.0) is None
    state = await _poll_state(core, "oursim", "IPointingAltAz", lambda f: abs(f["alt"] - 60.0) < 0.1)
    assert state["dataclass"] == "AltAzState" and abs(state["fields"]["az"] - 180.0) < 0.1
    motion = await _poll_state(core, "oursim", "IMotion", lambda f: f["status"]["value"] != "slewing")
    assert motion["fields"]["status"] == {"enum": "MotionStatus", "value": "positioned"}
    radec = await core.sink.result("get_state", module="oursim", interface="IPointingRaDec")
    assert radec["dataclass"] == "RaDecState" and 0.0 <= radec["fields"]["ra"] < 360.0


async def test_our_subclass_of_a_pyobs_exception_reaches_pyobs_core_as_its_base(ours: Ours, core: Core) -> None:
    await core.sink.call("oursim", "IMotion", "init")
    error = await core.sink.call_fails("oursim", "IPointingAltAz", "move_altaz", 5.0, 0.0)
    # pyobs-core does not know pyobs.modules.simulated.telescope.AltitudeLimitError: it raises the first
    # base it knows (sent in <bases>) and remembers the original name
    assert error["type"] == "pyobs.utils.exceptions.PointingLimitError"
    assert error["original_type"] == "pyobs.modules.simulated.telescope.AltitudeLimitError"
