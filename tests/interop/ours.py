"""Our side of the interop tests: modules written against our API (``pyobs`` = pyobs-comm)."""

from __future__ import annotations

import asyncio
from typing import Any

from support import KitchenSink

from pyobs.events import (
    Event,
    ExposureStatusChangedEvent,
    ModuleClosedEvent,
    ModuleOpenedEvent,
    MotionStatusChangedEvent,
    NewImageEvent,
    TestEvent,
)
from pyobs.interfaces import IMotion, IPointingRaDec, ITelescope
from pyobs.interfaces.types import MotionState, RaDecState
from pyobs.modules import Module, timeout
from pyobs.utils.enums import MotionStatus


class FlapMoved(Event):
    """The user-defined event; pyobs-core's side declares the same name and data."""

    flap: str
    angle: float


class OurSink(KitchenSink):
    """support.KitchenSink whose announced timeout of ``sleep_announced`` can be lowered by the test
    (to see that pyobs-core's caller obeys the value we announce)."""

    announce: float | None = None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: what report_progress answered in each sleep_announced (False: nobody to tell, a pyobs-core caller)
        self.progress_told: list[bool] = []

    @timeout(lambda self, seconds, **kw: self.announce if self.announce is not None else seconds + 1.0)
    async def sleep_announced(self, seconds: float, **kwargs: Any) -> float:
        self.started.set()
        self.progress_told.append(self.report_progress(0.0, "sleeping"))
        await asyncio.sleep(seconds)
        self.progress_told.append(self.report_progress(1.0, "slept"))
        return seconds


class OurTelescope(Module, ITelescope, IPointingRaDec):
    """Moves at once; publishes IMotion and IPointingRaDec state and MotionStatusChangedEvent."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.status = MotionStatus.PARKED
        self.radec = (0.0, 0.0)

    async def open(self) -> None:
        await super().open()
        await self.comm.register_event(MotionStatusChangedEvent)
        await self._publish()

    async def _publish(self) -> None:
        await self.comm.set_state(IMotion, MotionState(status=self.status))
        await self.comm.set_state(IPointingRaDec, RaDecState(ra=self.radec[0], dec=self.radec[1]))

    async def _set(self, status: MotionStatus) -> None:
        self.status = status
        await self._publish()
        await self.comm.send_event(MotionStatusChangedEvent(status=status, interfaces={"ITelescope": status}))

    async def move_radec(self, ra: float, dec: float, **kwargs: Any) -> None:
        self.radec = (ra, dec)
        await self._set(MotionStatus.TRACKING)

    async def init(self, **kwargs: Any) -> None:
        await self._set(MotionStatus.IDLE)

    async def park(self, **kwargs: Any) -> None:
        await self._set(MotionStatus.PARKED)

    async def stop_motion(self, device: str | None = None, **kwargs: Any) -> None:
        await self._set(MotionStatus.IDLE)


class OurProbe(Module):
    """Records every event it receives; sends the user-defined event."""

    WATCH = (
        NewImageEvent,
        ExposureStatusChangedEvent,
        MotionStatusChangedEvent,
        ModuleOpenedEvent,
        ModuleClosedEvent,
        TestEvent,
        FlapMoved,
    )

    SENDS = (TestEvent, FlapMoved)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.received: list[tuple[Event, str]] = []

    async def open(self) -> None:
        await super().open()
        for ev in self.WATCH:
            await self.comm.register_event(ev, self._on_event)
        for ev in self.SENDS:  # handling a type does not make it sendable (pyobs-core's semantics)
            await self.comm.register_event(ev)

    async def _on_event(self, event: Event, sender: str) -> bool:
        self.received.append((event, sender))
        return True

    def events(self, event_type: type[Event], sender: str | None = None) -> list[Event]:
        return [e for e, s in self.received if type(e) is event_type and (sender is None or s == sender)]
