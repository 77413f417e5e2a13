"""State (pubsub nodes ``pyobs:state:<module>:<I>:1``) and capabilities, both ways, and late joiners."""

from __future__ import annotations

import time
from typing import Any

import pytest
from harness import Core, Ours, eventually
from ours import OurProbe

from pyobs.interfaces import (
    IBinning,
    ICamera,
    ICooling,
    IExposureTime,
    IFocuser,
    IImageType,
    IMotion,
    IPointingRaDec,
    IReady,
    IWindow,
)
from pyobs.interfaces.types import (
    CoolingState,
    ExposureTimeState,
    FocuserState,
    ImageTypeState,
    MotionState,
    RaDecState,
    ReadyState,
    WindowCapabilities,
)
from pyobs.utils.enums import ImageType, MotionStatus

pytestmark = pytest.mark.asyncio(loop_scope="session")


def fields(tagged: Any, cls: str) -> dict[str, Any]:
    """The fields of a tagged dataclass printed by pyobs-core's probe, checking its class."""
    assert isinstance(tagged, dict) and tagged.get("dataclass") == cls, f"expected a {cls}, got {tagged!r}"
    return tagged["fields"]  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------- pyobs-core reads ours


async def test_pyobs_core_reads_our_focuser_state(ours: Ours, core: Core) -> None:
    state = await core.sink.result("wait_for_state", module="ourfocus", interface="IFocuser", timeout=10)
    f = fields(state, "FocuserState")
    assert isinstance(f["focus"], float) and isinstance(f["focus_offset"], float)
    assert "time" in f["time"]
    motion = fields(
        await core.sink.result("wait_for_state", module="ourfocus", interface="IMotion", timeout=10), "MotionState"
    )
    assert motion["status"]["enum"] == "MotionStatus"

    # follow changes
    await core.sink.result("subscribe_state", module="ourfocus", interface="IFocuser")
    await ours.focus.set_focus(13.25)
    record = await core.sink.wait_record(
        "FocuserState 13.25 of ourfocus",
        20.0,
        kind="state",
        module="ourfocus",
        interface="IFocuser",
        predicate=lambda r: r["state"]["fields"]["focus"] == pytest.approx(13.25),
    )
    assert record["state"]["dataclass"] == "FocuserState"
    state = await core.sink.result("get_state", module="ourfocus", interface="IFocuser")
    assert fields(state, "FocuserState")["focus"] == pytest.approx(13.25)


async def test_pyobs_core_reads_our_telescope_state(ours: Ours, core: Core) -> None:
    await core.sink.result("subscribe_state", module="ourscope", interface="IPointingRaDec")
    await ours.scope.move_radec(120.5, -33.75)
    await core.sink.wait_record(
        "RaDecState of ourscope",
        20.0,
        kind="state",
        module="ourscope",
        interface="IPointingRaDec",
        predicate=lambda r: r["state"]["fields"]["ra"] == 120.5 and r["state"]["fields"]["dec"] == -33.75,
    )

    async def motion() -> Any:
        return fields(await core.sink.result("get_state", module="ourscope", interface="IMotion"), "MotionState")

    end = time.monotonic() + 20.0
    while (await motion())["status"] != {"enum": "MotionStatus", "value": "tracking"}:
        assert time.monotonic() < end, "pyobs-core never saw ourscope tracking"
    assert (await motion())["devices"] == []


async def test_pyobs_core_reads_our_camera_state_and_capabilities(ours: Ours, core: Core) -> None:
    exp = await core.sink.result("wait_for_state", module="ourcam", interface="IExposureTime", timeout=10)
    assert isinstance(fields(exp, "ExposureTimeState")["exposure_time"], float)
    it = await core.sink.result("wait_for_state", module="ourcam", interface="IImageType", timeout=10)
    assert fields(it, "ImageTypeState")["image_type"]["enum"] == "ImageType"
    win = await core.sink.result("wait_for_state", module="ourcam", interface="IWindow", timeout=10)
    assert fields(win, "WindowState")["width"] == 64
    caps = await core.sink.result("get_capabilities", module="ourcam", interface="IWindow")
    assert fields(caps, "WindowCapabilities")["full_frame_width"] == 64
    binning = await core.sink.result("get_capabilities", module="ourcam", interface="IBinning")
    assert fields(binning, "BinningCapabilities")["binnings"][0]["dataclass"] == "Binning"


# ---------------------------------------------------------------------------- we read pyobs-core's


async def test_we_read_pyobs_core_telescope_state(ours: Ours, core: Core) -> None:
    scope = await ours.probe.proxy("corescope", IPointingRaDec)
    focus = scope.get_state(IFocuser)
    assert isinstance(focus, FocuserState) and isinstance(focus.focus, float)
    assert isinstance(scope.get_state(IMotion), MotionState)
    assert isinstance(scope.get_state(IReady), ReadyState)

    changes: list[Any] = []

    async def on_change(state: Any, sender: str) -> None:
        changes.append((state, sender))

    await scope.subscribe_state(IPointingRaDec, on_change)
    await scope.move_radec(77.5, 12.25)
    state = await scope.wait_for_state(IPointingRaDec, lambda s: (s.ra, s.dec) == (77.5, 12.25), timeout=20)
    assert isinstance(state, RaDecState)
    await eventually(lambda: any(isinstance(s, RaDecState) and s.ra == 77.5 for s, _ in changes), 20.0, "state handler")
    assert all(sender == "corescope" for _, sender in changes)
    motion = await scope.wait_for_state(IMotion, lambda s: s.status is MotionStatus.TRACKING, timeout=20)
    assert isinstance(motion, MotionState) and motion.status is MotionStatus.TRACKING
    await scope.set_focus(21.5)
    focus = await scope.wait_for_state(IFocuser, lambda s: s.focus == 21.5, timeout=20)
    assert isinstance(focus, FocuserState)


async def test_we_read_pyobs_core_camera_state_and_capabilities(ours: Ours, core: Core) -> None:
    cam = await ours.probe.proxy("corecam", ICamera)
    await cam.set_exposure_time(0.5)
    try:
        exp = await cam.wait_for_state(IExposureTime, lambda s: s.exposure_time == 0.5, timeout=20)
        assert isinstance(exp, ExposureTimeState)
    finally:
        await cam.set_exposure_time(0.0)
    await cam.set_image_type(ImageType.SKYFLAT)
    try:
        it = await cam.wait_for_state(IImageType, lambda s: s.image_type is ImageType.SKYFLAT, timeout=20)
        assert isinstance(it, ImageTypeState)
    finally:
        await cam.set_image_type(ImageType.OBJECT)
    cooling = await cam.wait_for_state(ICooling, lambda s: True, timeout=20)
    assert isinstance(cooling, CoolingState) and cooling.enabled is True and cooling.setpoint == -10.0
    caps = await cam.wait_for_capabilities(IWindow)
    assert isinstance(caps, WindowCapabilities) and caps.full_frame_width > 0
    assert await cam.wait_for_capabilities(IBinning) is not None


# ---------------------------------------------------------------------------- late joiners


async def test_our_late_joiner_gets_pyobs_cores_current_state_at_once(ours: Ours, core: Core) -> None:
    await core.sink.call("corescope", "IPointingRaDec", "move_radec", 33.25, 44.5)
    # pyobs-core's own view first, so the value is surely published
    await core.sink.result("subscribe_state", module="corescope", interface="IPointingRaDec")
    await core.sink.wait_record(
        "corescope at 33.25",
        20.0,
        kind="state",
        module="corescope",
        predicate=lambda r: r["state"]["fields"]["ra"] == 33.25,
    )
    late = OurProbe(comm=ours.server.our_comm("ourlate"))
    await late.open()
    try:
        await eventually(lambda: late.comm.is_online("corescope"), 30.0, "ourlate sees corescope")
        proxy = await late.proxy("corescope", IPointingRaDec)
        start = time.monotonic()
        state = proxy.get_state(IPointingRaDec)  # the first read, no waiting for a change
        assert time.monotonic() - start < 5.0
        assert isinstance(state, RaDecState) and (state.ra, state.dec) == (33.25, 44.5)
    finally:
        await late.close()


async def test_pyobs_core_late_joiner_gets_our_current_state(ours: Ours, core: Core) -> None:
    await ours.scope.move_radec(55.5, -66.25)
    late = core.peers.make("corelate", "peer.probe.CoreSink").start()
    try:
        await late.wait_started()
        await late.wait_record("sees ourscope", 30.0, kind="event", type="ModuleOpenedEvent", sender="ourscope")
        state = await late.result("wait_for_state", module="ourscope", interface="IPointingRaDec", timeout=10)
        assert fields(state, "RaDecState")["ra"] == 55.5 and state["fields"]["dec"] == -66.25
        motion = await late.result("wait_for_state", module="ourscope", interface="IMotion", timeout=10)
        assert fields(motion, "MotionState")["status"] == {"enum": "MotionStatus", "value": "tracking"}
    finally:
        late.stop()
