"""A simulated focuser: moves take time; the optics' true best focus lives in the SimWorld."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pyobs.events import MotionStatusChangedEvent
from pyobs.interfaces import FocuserState, IFocuser, IMotion, IReady, MotionState, ReadyState
from pyobs.modules import Module, timeout
from pyobs.utils.enums import MotionStatus
from pyobs.utils.exceptions import AbortedError, ConfigError, DeviceBusyError, InvalidArgumentError

from .common import caller
from .world import SimWorld

log = logging.getLogger(__name__)


class SimFocuser(Module, IFocuser):
    """A focuser with a travel range and a finite speed.

    It knows its position, nothing more: the focus that gives the sharpest stars is a property of the
    optics and drifts with the temperature; it lives in the :class:`SimWorld` (``world:``), which the
    camera uses to blur its stars. The focuser only logs it (at DEBUG), so that a human can follow.

    Args:
        focus: initial position [mm].
        focus_range: [min, max] of the travel [mm].
        speed: [mm/s].
        world: the simulation world (for the DEBUG log of the true best focus only).
        state_interval: how often [s] the position is published during a move.
    """

    def __init__(
        self,
        focus: float = 11.8,
        focus_range: list[float] | None = None,
        speed: float = 2.0,
        world: SimWorld | None = None,
        state_interval: float = 0.1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        rng = focus_range if focus_range is not None else [0.0, 25.0]
        if len(rng) != 2 or rng[0] >= rng[1]:
            raise ConfigError("focus_range", f"expected [min, max] with min < max, got {rng!r}")
        if not rng[0] <= focus <= rng[1]:
            raise ConfigError("focus", f"{focus} is outside the focus range {rng}")
        if speed <= 0 or state_interval <= 0:
            raise ConfigError("speed", "speed and state_interval must be positive")
        self.focus_range = (float(rng[0]), float(rng[1]))
        self.speed = float(speed)
        self.world = world or SimWorld()
        self.state_interval = float(state_interval)
        self._focus = float(focus)
        self._offset = 0.0
        self._status = MotionStatus.POSITIONED
        self._lock = asyncio.Lock()
        self._abort = asyncio.Event()
        self._abort_reason = ""

    async def open(self) -> None:
        await super().open()
        await self.comm.register_event(MotionStatusChangedEvent)
        await self._publish()
        log.info("%s: focuser at %.3f mm, range %s mm, %g mm/s", self.name, self._focus, self.focus_range, self.speed)

    @property
    def position(self) -> float:
        """Current effective focus [mm]: position plus offset."""
        return self._focus + self._offset

    async def _publish(self) -> None:
        await self.comm.set_state(IFocuser, FocuserState(self._focus, self._offset))
        await self.comm.set_state(IMotion, MotionState(self._status))
        await self.comm.set_state(IReady, ReadyState(self._status != MotionStatus.PARKED))

    async def _set_status(self, status: MotionStatus) -> None:
        if status != self._status:
            self._status = status
            await self.comm.send_event(MotionStatusChangedEvent(status=status, interfaces={"IFocuser": status}))
        await self._publish()

    def _move_time(self, focus: float, offset: float) -> float:
        return abs((focus + offset) - self.position) / self.speed

    async def _move(self, focus: float, offset: float, what: str, sender: str) -> None:
        """Drive to ``focus`` + ``offset``, publishing the position; abortable by stop_motion()."""
        lo, hi = self.focus_range
        if not lo <= focus + offset <= hi:
            raise InvalidArgumentError(
                f"{what}: {focus + offset:.4f} mm is outside the focus range [{lo:g}, {hi:g}] mm"
            )
        if self._lock.locked():
            raise DeviceBusyError(f"{self.name} is moving; stop_motion() first or wait")
        async with self._lock:
            self._abort = asyncio.Event()
            start_focus, start_offset = self._focus, self._offset
            duration = self._move_time(focus, offset)
            log.info(
                "%s: %s called by %s: %.4f -> %.4f mm (%.2f s)",
                self.name,
                what,
                sender,
                self.position,
                focus + offset,
                duration,
            )
            log.debug("%s: (truth) best focus now %.4f mm", self.name, self.world.best_focus())
            await self._set_status(MotionStatus.SLEWING)
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            while (elapsed := loop.time() - t0) < duration:
                frac = elapsed / duration
                self._focus = start_focus + frac * (focus - start_focus)
                self._offset = start_offset + frac * (offset - start_offset)
                try:
                    await asyncio.wait_for(self._abort.wait(), timeout=min(self.state_interval, duration - elapsed))
                except TimeoutError:
                    await self._publish()
                    continue
                await self._set_status(MotionStatus.POSITIONED)
                raise AbortedError(f"{self.name}: {what} aborted at {self.position:.4f} mm by {self._abort_reason}")
            self._focus, self._offset = focus, offset
            await self._set_status(MotionStatus.POSITIONED)

    @timeout(lambda self, focus, **kw: self._move_time(focus, self._offset) + 10.0)
    async def set_focus(self, focus: float, **kwargs: Any) -> None:
        """Move to ``focus`` [mm] (the offset stays)."""
        await self._move(float(focus), self._offset, f"set_focus({focus:.4f})", caller(kwargs))

    @timeout(lambda self, offset, **kw: self._move_time(self._focus, offset) + 10.0)
    async def set_focus_offset(self, offset: float, **kwargs: Any) -> None:
        """Set the focus offset [mm] (the position moves by the change)."""
        await self._move(self._focus, float(offset), f"set_focus_offset({offset:.4f})", caller(kwargs))

    async def init(self, **kwargs: Any) -> None:
        """Power the motor (leaves the parked state)."""
        log.info("%s: init() called by %s", self.name, caller(kwargs))
        if self._status == MotionStatus.PARKED:
            await self._set_status(MotionStatus.POSITIONED)

    async def park(self, **kwargs: Any) -> None:
        """Power the motor down where it is; the next move powers it up again."""
        log.info("%s: park() called by %s", self.name, caller(kwargs))
        if self._lock.locked():
            raise DeviceBusyError(f"{self.name} is moving; stop_motion() first")
        await self._set_status(MotionStatus.PARKED)

    async def stop_motion(self, device: str | None = None, **kwargs: Any) -> None:
        """Abort a running move (it raises AbortedError); waits up to 1 s for the motor to stop."""
        log.info("%s: stop_motion() called by %s", self.name, caller(kwargs))
        if self._lock.locked():
            self._abort_reason = f"stop_motion() from {caller(kwargs)}"
            self._abort.set()
            try:
                await asyncio.wait_for(self._lock.acquire(), timeout=1.0)
            except TimeoutError:
                raise DeviceBusyError(f"{self.name}: the motor did not stop within 1 s") from None
            self._lock.release()


__all__ = ["SimFocuser"]
