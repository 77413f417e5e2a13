"""Events both ways: catalog events from real exposures and motions, and a user-defined event."""

from __future__ import annotations

from typing import Any

import pytest
from harness import Core, Ours, eventually
from ours import FlapMoved

from pyobs.events import (
    ExposureStatusChangedEvent,
    MotionStatusChangedEvent,
    NewImageEvent,
    TestEvent,
)
from pyobs.interfaces import ICamera, IPointingRaDec
from pyobs.utils.enums import ExposureStatus, ImageType, MotionStatus

pytestmark = pytest.mark.asyncio(loop_scope="session")

TRICKY = 'x & y <z> "q" &amp; \\u0026 ünï'


async def test_pyobs_core_camera_events_reach_us(ours: Ours, core: Core) -> None:
    probe = ours.probe
    cam = await probe.proxy("corecam", ICamera)
    filename = await cam.grab_data()

    def image() -> list[Any]:
        return [e for e in probe.events(NewImageEvent, "corecam") if e.filename == filename]

    (event,) = await eventually(image, 20.0, f"NewImageEvent for {filename}")
    assert event.image_type is ImageType.OBJECT
    assert event.raw is None

    def statuses() -> list[tuple[Any, Any]]:
        return [(e.last, e.current) for e in probe.events(ExposureStatusChangedEvent, "corecam")]

    await eventually(lambda: (ExposureStatus.READOUT, ExposureStatus.IDLE) in statuses(), 20.0, "exposure → idle")
    seen = statuses()
    assert (ExposureStatus.IDLE, ExposureStatus.EXPOSING) in seen
    assert (ExposureStatus.EXPOSING, ExposureStatus.READOUT) in seen
    assert all(isinstance(c, ExposureStatus) for _, c in seen)


async def test_pyobs_core_motion_events_reach_us(ours: Ours, core: Core) -> None:
    probe = ours.probe
    before = len(probe.events(MotionStatusChangedEvent, "corescope"))
    scope = await probe.proxy("corescope", IPointingRaDec)
    await scope.move_radec(1.0, 2.0)

    def moved() -> list[Any]:
        new = probe.events(MotionStatusChangedEvent, "corescope")[before:]
        return [e for e in new if e.status is MotionStatus.TRACKING]

    (event,) = await eventually(moved, 20.0, "MotionStatusChangedEvent(tracking) from corescope")
    assert isinstance(event.interfaces, dict)


async def test_pyobs_core_user_event_reaches_us(ours: Ours, core: Core) -> None:
    probe = ours.probe
    await core.sink.result("send_event", event="FlapMoved", kwargs={"flap": "left", "angle": 12.5})

    def flaps() -> list[Any]:
        return [e for e in probe.events(FlapMoved, "coresink") if e.flap == "left"]

    (event,) = await eventually(flaps, 20.0, "FlapMoved from coresink")
    assert event.angle == 12.5 and isinstance(event.angle, float)


async def test_pyobs_core_event_text_arrives_unchanged(ours: Ours, core: Core) -> None:
    probe = ours.probe
    await core.sink.result("send_event", event="TestEvent", kwargs={"message": TRICKY})
    events = await eventually(lambda: probe.events(TestEvent, "coresink"), 20.0, "TestEvent from coresink")
    assert [e.message for e in events] == [TRICKY]


async def test_our_camera_events_reach_pyobs_core(ours: Ours, core: Core) -> None:
    filename = await ours.cam.grab_data()
    record = await core.sink.wait_record(
        "NewImageEvent from ourcam",
        20.0,
        kind="event",
        type="NewImageEvent",
        sender="ourcam",
        predicate=lambda r: r["data"]["dict"]["filename"] == filename,
    )
    assert record["data"]["dict"]["image_type"] == {"enum": "ImageType", "value": "object"}
    await core.sink.wait_record(
        "ExposureStatusChangedEvent exposing from ourcam",
        20.0,
        kind="event",
        type="ExposureStatusChangedEvent",
        sender="ourcam",
        predicate=lambda r: r["data"]["dict"]["current"] == {"enum": "ExposureStatus", "value": "exposing"},
    )
    await core.sink.wait_record(
        "ExposureStatusChangedEvent idle from ourcam",
        20.0,
        kind="event",
        type="ExposureStatusChangedEvent",
        sender="ourcam",
        predicate=lambda r: r["data"]["dict"]["current"] == {"enum": "ExposureStatus", "value": "idle"},
    )


async def test_our_motion_events_reach_pyobs_core(ours: Ours, core: Core) -> None:
    def tracking(r: dict[str, Any]) -> bool:
        return bool(r["data"]["dict"]["status"] == {"enum": "MotionStatus", "value": "tracking"})

    await ours.scope.move_radec(5.0, 6.0)
    record = await core.sink.wait_record(
        "MotionStatusChangedEvent from ourscope",
        20.0,
        kind="event",
        type="MotionStatusChangedEvent",
        sender="ourscope",
        predicate=tracking,
    )
    # pyobs-core must see it exactly like the same event from its own telescope
    await core.sink.call("corescope", "IPointingRaDec", "move_radec", 5.0, 6.0)
    own = await core.sink.wait_record(
        "MotionStatusChangedEvent from corescope",
        20.0,
        kind="event",
        type="MotionStatusChangedEvent",
        sender="corescope",
        predicate=tracking,
    )
    assert record["data"] == own["data"]
    assert "ITelescope" in record["data"]["dict"]["interfaces"]["dict"]


async def test_our_user_event_reaches_pyobs_core(ours: Ours, core: Core) -> None:
    await ours.probe.comm.send_event(FlapMoved(flap="right", angle=7.25))
    record = await core.sink.wait_record(
        "FlapMoved from ourprobe", 20.0, kind="event", type="FlapMoved", sender="ourprobe"
    )
    assert record["data"] == {"dict": {"flap": "right", "angle": 7.25}}


async def test_our_event_text_arrives_unchanged_at_pyobs_core(ours: Ours, core: Core) -> None:
    await ours.probe.comm.send_event(TestEvent(message=TRICKY))
    record = await core.sink.wait_record(
        "TestEvent from ourprobe", 20.0, kind="event", type="TestEvent", sender="ourprobe"
    )
    assert record["data"] == {"dict": {"message": TRICKY}}
    assert len(core.sink.find(kind="event", type="TestEvent", sender="ourprobe")) == 1


async def test_our_log_records_reach_pyobs_core_like_its_own(ours: Ours, core: Core) -> None:
    import logging

    await core.sink.result("register_event", event="LogEvent")
    # pyobs-core's own camera logs "Setting exposure time ..." at INFO: it arrives as LogEvent
    await core.sink.call("corecam", "IExposureTime", "set_exposure_time", 0.0)
    await core.sink.wait_record("LogEvent from corecam", 20.0, kind="event", type="LogEvent", sender="corecam")
    logging.getLogger("pyobs.modules.simulated.camera").warning("interop log line from ourcam")
    await ours.cam.set_exposure_time(0.25)
    await core.sink.wait_record("LogEvent from ourcam", 10.0, kind="event", type="LogEvent", sender="ourcam")
