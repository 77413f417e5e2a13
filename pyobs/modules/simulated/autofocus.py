"""Auto-focus: a focus series with camera and focuser through proxies, star widths measured in the images."""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

from pyobs.events import FocusFoundEvent
from pyobs.interfaces import (
    AutoFocusPoint,
    AutoFocusResult,
    AutoFocusState,
    FocuserState,
    IAutoFocus,
    ICamera,
    IExposureTime,
    IFocuser,
    IImageType,
    IRunning,
    RunningState,
)
from pyobs.modules import Module, timeout
from pyobs.utils.enums import ImageType
from pyobs.utils.exceptions import (
    AbortedError,
    ConfigError,
    DeviceBusyError,
    FocusError,
    InvalidArgumentError,
)

from .common import caller
from .fits import read_fits
from .imaging import fit_focus, measure_fwhm

log = logging.getLogger(__name__)


class SimAutoFocus(Module, IAutoFocus):
    """Finds the best focus the way a real auto-focus does: it knows nothing but what it measures.

    ``auto_focus(count, step, exposure_time)`` moves the focuser (``IFocuser``) to ``count`` positions
    ``step`` mm apart around its current focus, takes an image at each with the camera (``ICamera``),
    reads the FITS file back and measures the median star FWHM (second moments), fits FWHM² with a
    parabola (seeing and defocus add in quadrature), moves the focuser to the vertex and sends
    FocusFoundEvent. The focuser is moved back to where it was if no focus is found.

    Args:
        camera, focuser: module names.
        overhead: expected time [s] per point beyond the exposure time (focuser move, readout, analysis);
            goes into the deadline callers get for ``auto_focus``.
        min_stars: fewer stars than this in an image make the point invalid.
    """

    def __init__(
        self, camera: str = "camera", focuser: str = "focuser", overhead: float = 3.0, min_stars: int = 3, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if overhead < 0 or min_stars < 1:
            raise ConfigError("overhead", "overhead must not be negative and min_stars must be at least 1")
        self.camera = camera
        self.focuser = focuser
        self.overhead = float(overhead)
        self.min_stars = int(min_stars)
        self._running = False
        self._abort = asyncio.Event()
        self._abort_reason = ""
        self._points: list[AutoFocusPoint] = []

    async def open(self) -> None:
        await super().open()
        await self.comm.register_event(FocusFoundEvent)
        await self.comm.set_state(IRunning, RunningState(False))
        await self.comm.set_state(IAutoFocus, AutoFocusState([]))

    def _check_abort(self) -> None:
        if self._abort.is_set():
            raise AbortedError(f"{self.name}: focus series aborted by {self._abort_reason}")

    @timeout(lambda self, count, step, exposure_time, **kw: count * (exposure_time + self.overhead) + 15.0)
    async def auto_focus(self, count: int, step: float, exposure_time: float, **kwargs: Any) -> AutoFocusResult:
        """Run a focus series of ``count`` images ``step`` mm apart with ``exposure_time`` s each."""
        sender = caller(kwargs)
        if count < 3:
            raise InvalidArgumentError(f"a focus series needs at least 3 images to fit a curve, got count={count}")
        if step <= 0 or exposure_time < 0:
            raise InvalidArgumentError(
                f"step must be positive and exposure_time not negative, got {step}, {exposure_time}"
            )
        if self._running:
            raise DeviceBusyError(f"{self.name} is already running a focus series")
        self._running = True
        self._abort = asyncio.Event()
        self._points = []
        await self.comm.set_state(IRunning, RunningState(True))
        await self.comm.set_state(IAutoFocus, AutoFocusState([]))
        try:
            return await self._series(count, step, exposure_time, sender)
        except asyncio.CancelledError:  # the caller cancelled: the running image is cancelled too
            log.info("%s: focus series cancelled by %s", self.name, sender)
            raise
        finally:
            self._running = False
            await self.comm.set_state(IRunning, RunningState(False))

    async def _series(self, count: int, step: float, exposure_time: float, sender: str) -> AutoFocusResult:
        focuser = await self.proxy(self.focuser, IFocuser)
        camera = await self.proxy(self.camera, ICamera)
        state: FocuserState | None = focuser.get_state(IFocuser)
        if state is None:
            raise FocusError(f"{self.name}: focuser '{self.focuser}' has not published its position yet")
        start = state.focus
        positions = [start + (i - (count - 1) / 2) * step for i in range(count)]
        log.info(
            "%s: auto_focus(count=%d, step=%g, exposure_time=%g) called by %s: focus %.3f..%.3f mm around %.3f",
            self.name,
            count,
            step,
            exposure_time,
            sender,
            positions[0],
            positions[-1],
            start,
        )
        if isinstance(camera, IExposureTime):
            await camera.set_exposure_time(exposure_time)
        if isinstance(camera, IImageType):
            await camera.set_image_type(ImageType.FOCUS)
        found = False
        try:
            for i, pos in enumerate(positions, start=1):
                self._check_abort()
                self.report_progress((i - 1) / count, f"point {i} of {count}: focus {pos:.3f} mm")
                log.info("%s: point %d/%d: asking %s to set focus %.3f", self.name, i, count, self.focuser, pos)
                await focuser.set_focus(pos)
                self._check_abort()
                log.info("%s: point %d/%d: asking %s for an image", self.name, i, count, self.camera)
                filename = await camera.grab_data(broadcast=False)
                data, _ = await asyncio.to_thread(read_fits, filename)
                width = await asyncio.to_thread(measure_fwhm, data)
                if width.stars < self.min_stars:
                    log.warning(
                        "%s: point %d/%d: only %d stars in %s, skipped", self.name, i, count, width.stars, filename
                    )
                    continue
                log.info(
                    "%s: point %d/%d: focus %.3f mm -> FWHM %.2f px (%d stars)",
                    self.name,
                    i,
                    count,
                    pos,
                    width.fwhm,
                    width.stars,
                )
                self._points.append(AutoFocusPoint(pos, width.fwhm))
                await self.comm.set_state(IAutoFocus, AutoFocusState(list(self._points)))
            self._check_abort()
            try:
                fit = fit_focus([p.focus for p in self._points], [p.value for p in self._points])
            except ValueError as exc:
                raise FocusError(f"{self.name}: no focus found: {exc}") from None
            lo, hi = positions[0], positions[-1]
            if not lo <= fit.focus <= hi:
                raise FocusError(
                    f"{self.name}: best focus {fit.focus:.3f} mm is outside the scanned range {lo:.3f}..{hi:.3f} mm;"
                    " start closer to focus or use a larger step"
                )
            error = fit.error if math.isfinite(fit.error) else step / 2
            log.info(
                "%s: best focus %.4f ± %.4f mm (FWHM %.2f px), asking %s to go there",
                self.name,
                fit.focus,
                error,
                fit.min_fwhm,
                self.focuser,
            )
            self.report_progress(1.0, f"best focus {fit.focus:.4f} mm")
            await focuser.set_focus(fit.focus)
            found = True
            await self.comm.send_event(FocusFoundEvent(focus=fit.focus, error=error))
            return AutoFocusResult(fit.focus, error)
        finally:
            if not found:
                log.warning("%s: no focus found, moving %s back to %.3f mm", self.name, self.focuser, start)
                try:
                    await focuser.set_focus(start)  # a remote call: the comm's deadline applies
                except Exception as exc:
                    log.error("%s: could not move %s back to %.3f mm: %s", self.name, self.focuser, start, exc)

    async def abort(self, **kwargs: Any) -> None:
        """Abort a running focus series (a running exposure and focuser move are aborted too)."""
        log.info("%s: abort() called by %s", self.name, caller(kwargs))
        if not self._running:
            return
        self._abort_reason = f"abort() from {caller(kwargs)}"
        self._abort.set()
        for name, stop in ((self.camera, "abort"), (self.focuser, "stop_motion")):
            try:
                proxy = await self.proxy(name)
                await proxy.execute(stop)
            except Exception as exc:
                log.warning("%s: %s.%s() failed: %s", self.name, name, stop, exc)


__all__ = ["SimAutoFocus"]
