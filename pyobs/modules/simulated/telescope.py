"""A simulated telescope: slews that take time, an altitude limit, sidereal tracking."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from pyobs.events import MotionStatusChangedEvent, MoveAltAzEvent, MoveRaDecEvent, OffsetsRaDecEvent
from pyobs.interfaces import (
    AltAzState,
    FitsHeaderEntry,
    IFitsHeaderBefore,
    IMotion,
    IOffsetsRaDec,
    IPointingAltAz,
    IPointingRaDec,
    IReady,
    ITelescope,
    MotionState,
    RaDecOffsetState,
    RaDecState,
    ReadyState,
)
from pyobs.modules import Module, timeout
from pyobs.utils.enums import MotionStatus
from pyobs.utils.exceptions import (
    AbortedError,
    ConfigError,
    DeviceBusyError,
    InvalidArgumentError,
    MoveError,
    PointingLimitError,
)

from . import astro
from .common import caller, site

log = logging.getLogger(__name__)

AltAzFunc = Callable[[float], tuple[float, float]]


class AltitudeLimitError(PointingLimitError):
    """The target is below the telescope's altitude limit (a :class:`PointingLimitError`, so callers that
    know only pyobs' exceptions catch it too)."""


class SimTelescope(Module, ITelescope, IPointingRaDec, IPointingAltAz, IOffsetsRaDec, IFitsHeaderBefore):
    """A telescope on an alt-az mount at the module's ``location`` (default: McDonald Observatory).

    Starts parked; ``init()`` makes it ready. Slews move along a great circle at ``slew_speed`` and end
    tracking (RA/Dec) or positioned (Alt/Az); targets below ``min_altitude`` are refused with
    :class:`AltitudeLimitError`. A new move or ``stop_motion()`` aborts a running one (it raises
    :class:`AbortedError`). Tracking stops by itself when the target sets below the limit.

    Args:
        slew_speed: [deg/s] (fast by default, so that a simulated night is short).
        settle_time: time [s] added to each slew.
        min_altitude: altitude limit [deg].
        init_time: time [s] ``init()`` takes.
        park_position: [alt, az] of the park position [deg].
        state_interval: how often [s] the position is published while tracking or slewing.
    """

    def __init__(
        self,
        slew_speed: float = 40.0,
        settle_time: float = 0.2,
        min_altitude: float = 20.0,
        init_time: float = 0.5,
        park_position: list[float] | None = None,
        state_interval: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if slew_speed <= 0:
            raise ConfigError("slew_speed", f"must be positive, got {slew_speed}")
        if not -90.0 <= min_altitude < 90.0:
            raise ConfigError("min_altitude", f"must be within -90..90 deg, got {min_altitude}")
        if settle_time < 0 or init_time < 0 or state_interval <= 0:
            raise ConfigError("settle_time", "settle_time and init_time must be >= 0, state_interval > 0")
        park = park_position if park_position is not None else [80.0, 0.0]
        if len(park) != 2:
            raise ConfigError("park_position", f"expected [alt, az], got {park!r}")
        self.latitude, self.longitude, self.elevation = site(self.location)
        self.slew_speed = float(slew_speed)
        self.settle_time = float(settle_time)
        self.min_altitude = float(min_altitude)
        self.init_time = float(init_time)
        self.park_altaz = (float(park[0]), float(park[1]) % 360.0)
        self.state_interval = float(state_interval)

        self._status = MotionStatus.PARKED
        #: RA/Dec being tracked, or None (then the mount stands still at _fixed_altaz)
        self._tracking: tuple[float, float] | None = None
        self._fixed_altaz = self.park_altaz
        self._offsets = (0.0, 0.0)  # on-sky RA/Dec offsets [deg]
        #: a running slew: (start alt/az, target alt/az over time, start time, duration)
        self._slew: tuple[tuple[float, float], AltAzFunc, float, float] | None = None
        self._lock = asyncio.Lock()
        self._abort = asyncio.Event()
        self._abort_reason = ""
        self.add_background_task(self._monitor)

    async def open(self) -> None:
        await super().open()
        for event in (MotionStatusChangedEvent, MoveRaDecEvent, MoveAltAzEvent, OffsetsRaDecEvent):
            await self.comm.register_event(event)
        await self._publish_status()
        await self._publish_position()
        log.info(
            "%s: alt-az telescope at lat %.4f, lon %.4f, %g m; parked at alt %.0f az %.0f; altitude limit %g deg",
            self.name,
            self.latitude,
            self.longitude,
            self.elevation,
            *self.park_altaz,
            self.min_altitude,
        )

    # ------------------------------------------------------------------ position

    def _radec_to_altaz(self, ra: float, dec: float, unix: float | None = None) -> tuple[float, float]:
        return astro.radec_to_altaz(ra, dec, self.latitude, self.longitude, unix)

    def _pointing_radec(self) -> tuple[float, float] | None:
        """RA/Dec the mount tracks, offsets included (None when not tracking)."""
        if self._tracking is None:
            return None
        ra, dec = self._tracking
        dra, ddec = self._offsets
        dec2 = max(-90.0, min(90.0, dec + ddec))
        return (ra + dra / max(math.cos(math.radians(dec2)), 1e-6)) % 360.0, dec2

    def altaz(self, unix: float | None = None) -> tuple[float, float]:
        """Where the telescope points now: (alt, az) [deg]."""
        t = time.time() if unix is None else unix
        if self._slew is not None:
            (alt0, az0), target, t0, duration = self._slew
            alt1, az1 = target(t)
            frac = min(1.0, max(0.0, (t - t0) / duration)) if duration > 0 else 1.0
            az, alt = astro.interpolate(az0, alt0, az1, alt1, frac)
            return alt, az
        pointing = self._pointing_radec()
        if pointing is not None:
            return self._radec_to_altaz(*pointing, t)
        return self._fixed_altaz

    def radec(self, unix: float | None = None) -> tuple[float, float]:
        """Where the telescope points now: (ra, dec) [deg]."""
        pointing = self._pointing_radec()
        if pointing is not None and self._slew is None:
            return pointing
        alt, az = self.altaz(unix)
        return astro.altaz_to_radec(alt, az, self.latitude, self.longitude, unix)

    def slew_time(self, alt: float, az: float) -> float:
        """How long [s] a slew from here to ``alt``/``az`` takes."""
        alt0, az0 = self.altaz()
        return astro.separation(az0, alt0, az, alt) / self.slew_speed + self.settle_time

    def _move_timeout(self, alt: float, az: float) -> float:
        # a waiting move has to abort the running one first: allow for that too
        running = self._slew[3] if self._slew is not None else 0.0
        return self.slew_time(alt, az) + running + 10.0

    def _check_altitude(self, alt: float, what: str) -> None:
        if alt < self.min_altitude:
            raise AltitudeLimitError(
                f"{what} is at altitude {alt:.1f} deg, below the telescope's limit of {self.min_altitude:g} deg"
            )

    # ------------------------------------------------------------------ state

    async def _set_status(self, status: MotionStatus) -> None:
        if status == self._status:
            return
        log.info("%s: status %s -> %s", self.name, self._status, status)
        self._status = status
        await self.comm.send_event(MotionStatusChangedEvent(status=status, interfaces={"ITelescope": status}))
        await self._publish_status()

    async def _publish_status(self) -> None:
        ready = self._status not in (MotionStatus.PARKED, MotionStatus.INITIALIZING, MotionStatus.ERROR)
        await self.comm.set_state(IMotion, MotionState(self._status))
        await self.comm.set_state(IReady, ReadyState(ready))

    async def _publish_position(self) -> None:
        now = time.time()
        alt, az = self.altaz(now)
        ra, dec = self.radec(now)
        await self.comm.set_state(IPointingAltAz, AltAzState(alt, az))
        await self.comm.set_state(IPointingRaDec, RaDecState(ra, dec))
        await self.comm.set_state(IOffsetsRaDec, RaDecOffsetState(*self._offsets))

    async def _monitor(self) -> None:
        """Publish the position while it changes; stop tracking a target that sets below the limit."""
        while True:
            await asyncio.sleep(self.state_interval)
            if self._slew is not None or self._lock.locked():
                continue  # the move publishes its own progress
            if self._tracking is not None:
                alt, _ = self.altaz()
                if alt < self.min_altitude:
                    log.warning(
                        "%s: target set below the altitude limit (%.1f < %g deg), tracking stopped",
                        self.name,
                        alt,
                        self.min_altitude,
                    )
                    self._fixed_altaz = self.altaz()
                    self._tracking = None
                    await self._set_status(MotionStatus.IDLE)
            if self._status != MotionStatus.PARKED:
                await self._publish_position()

    # ------------------------------------------------------------------ motion

    async def _take_control(self, reason: str) -> None:
        """Abort whatever moves now and wait (bounded) until it has stopped; then hold the lock."""
        if self._lock.locked():
            self._abort_reason = reason
            self._abort.set()
        try:
            await asyncio.wait_for(self._lock.acquire(), timeout=self._move_timeout(*self.altaz()))
        except TimeoutError:
            raise DeviceBusyError(f"{self.name}: the running motion did not stop in time") from None
        self._abort = asyncio.Event()

    async def _wait(self, seconds: float, what: str) -> None:
        """Wait ``seconds`` (publishing the position and the caller's progress), or raise AbortedError
        if the motion is aborted."""
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while (left := end - loop.time()) > 0:
            self.report_progress(1.0 - left / seconds, f"{what}: {left:.1f} s left")
            try:
                await asyncio.wait_for(self._abort.wait(), timeout=min(left, self.state_interval / 4))
            except TimeoutError:
                await self._publish_position()
                continue
            raise AbortedError(f"{self.name}: {what} aborted by {self._abort_reason}")

    async def _slew_to(self, target: AltAzFunc, final: MotionStatus, moving: MotionStatus, what: str) -> None:
        """Slew from the current position to ``target`` (called with the lock held)."""
        start = self.altaz()
        alt1, az1 = target(time.time())
        duration = astro.separation(start[1], start[0], az1, alt1) / self.slew_speed + self.settle_time
        self._tracking = None
        self._slew = (start, target, time.time(), duration)
        await self._set_status(moving)
        log.info(
            "%s: %s, %.1f deg away: %.1f s", self.name, what, astro.separation(start[1], start[0], az1, alt1), duration
        )
        try:
            await self._wait(duration, what)
        except (AbortedError, asyncio.CancelledError) as exc:
            # aborted, or the caller cancelled the call: stop where we are
            if isinstance(exc, asyncio.CancelledError):
                log.info("%s: %s cancelled by the caller, stopping", self.name, what)
            self._fixed_altaz = self.altaz()
            self._slew = None
            await self._set_status(MotionStatus.IDLE)
            await self._publish_position()
            raise
        self._slew = None
        self._fixed_altaz = target(time.time())
        await self._set_status(final)

    def _check_ready(self, what: str) -> None:
        if self._status in (MotionStatus.PARKED, MotionStatus.INITIALIZING, MotionStatus.PARKING):
            raise MoveError(f"{self.name}: cannot {what}: telescope is {self._status}, call init() first")

    @timeout(lambda self, ra, dec, **kw: self._move_timeout(*self._radec_to_altaz(ra, dec)))
    async def move_radec(self, ra: float, dec: float, **kwargs: Any) -> None:
        """Slew to RA/Dec [deg] and track; AltitudeLimitError if the target is below the limit."""
        if not (0.0 <= ra < 360.0 and -90.0 <= dec <= 90.0):
            raise InvalidArgumentError(f"RA/Dec out of range: ra={ra} (0..360), dec={dec} (-90..90)")
        log.info("%s: move_radec(ra=%.4f, dec=%.4f) called by %s", self.name, ra, dec, caller(kwargs))
        self._check_ready("move")
        alt, az = self._radec_to_altaz(ra, dec)
        self._check_altitude(alt, f"RA {ra:.4f}, Dec {dec:.4f}")
        await self._take_control(f"a new move_radec from {caller(kwargs)}")
        try:
            await self.comm.send_event(MoveRaDecEvent(ra=ra, dec=dec))
            self._offsets = (0.0, 0.0)
            await self._slew_to(
                lambda t: self._radec_to_altaz(ra, dec, t),
                MotionStatus.TRACKING,
                MotionStatus.SLEWING,
                f"slew to RA {ra:.4f} Dec {dec:.4f} (alt {alt:.1f} az {az:.1f})",
            )
            self._tracking = (ra, dec)
            await self._publish_position()
            log.info("%s: tracking RA %.4f Dec %.4f", self.name, ra, dec)
        finally:
            self._lock.release()

    @timeout(lambda self, alt, az, **kw: self._move_timeout(alt, az))
    async def move_altaz(self, alt: float, az: float, **kwargs: Any) -> None:
        """Slew to Alt/Az [deg] and stay there; AltitudeLimitError below the limit."""
        if not (-90.0 <= alt <= 90.0):
            raise InvalidArgumentError(f"altitude out of range: {alt} (-90..90)")
        log.info("%s: move_altaz(alt=%.3f, az=%.3f) called by %s", self.name, alt, az, caller(kwargs))
        self._check_ready("move")
        self._check_altitude(alt, f"Alt {alt:.1f}, Az {az:.1f}")
        az %= 360.0
        await self._take_control(f"a new move_altaz from {caller(kwargs)}")
        try:
            await self.comm.send_event(MoveAltAzEvent(alt=alt, az=az))
            await self._slew_to(
                lambda t: (alt, az), MotionStatus.POSITIONED, MotionStatus.SLEWING, f"slew to alt {alt:.1f} az {az:.1f}"
            )
            await self._publish_position()
        finally:
            self._lock.release()

    async def set_offsets_radec(self, dra: float, ddec: float, **kwargs: Any) -> None:
        """Set on-sky offsets [deg] from the tracked RA/Dec (a short move)."""
        log.info("%s: set_offsets_radec(dra=%.5f, ddec=%.5f) called by %s", self.name, dra, ddec, caller(kwargs))
        if self._tracking is None:
            raise MoveError(f"{self.name}: cannot set RA/Dec offsets: not tracking a target")
        if abs(dra) > 10 or abs(ddec) > 10:
            raise InvalidArgumentError(f"offsets larger than 10 deg: dra={dra}, ddec={ddec}")
        old = self._pointing_radec()
        await self._take_control(f"new offsets from {caller(kwargs)}")
        try:
            self._offsets = (float(dra), float(ddec))
            new = self._pointing_radec()
            assert old is not None and new is not None
            await self._wait(astro.separation(*old, *new) / self.slew_speed, "offset move")
            await self.comm.send_event(OffsetsRaDecEvent(ra=dra, dec=ddec))
            await self._publish_position()
        finally:
            self._lock.release()

    @timeout(lambda self, **kw: self.init_time + 10.0)
    async def init(self, **kwargs: Any) -> None:
        """Unpark: make the telescope ready."""
        log.info("%s: init() called by %s", self.name, caller(kwargs))
        if self._status not in (MotionStatus.PARKED, MotionStatus.ERROR, MotionStatus.PARKING):
            log.info("%s: already initialized (%s)", self.name, self._status)
            return
        await self._take_control(f"init() from {caller(kwargs)}")
        try:
            await self._set_status(MotionStatus.INITIALIZING)
            try:
                await self._wait(self.init_time, "initialization")
            except (AbortedError, asyncio.CancelledError):
                await self._set_status(MotionStatus.PARKED)
                raise
            await self._set_status(MotionStatus.IDLE)
        finally:
            self._lock.release()

    @timeout(lambda self, **kw: self._move_timeout(*self.park_altaz))
    async def park(self, **kwargs: Any) -> None:
        """Slew to the park position and stop."""
        log.info("%s: park() called by %s", self.name, caller(kwargs))
        if self._status == MotionStatus.PARKED:
            return
        await self._take_control(f"park() from {caller(kwargs)}")
        try:
            await self._slew_to(lambda t: self.park_altaz, MotionStatus.PARKED, MotionStatus.PARKING, "park")
            self._offsets = (0.0, 0.0)
            await self._publish_position()
        finally:
            self._lock.release()

    async def stop_motion(self, device: str | None = None, **kwargs: Any) -> None:
        """Abort a running move and stop tracking."""
        log.info("%s: stop_motion() called by %s", self.name, caller(kwargs))
        if device not in (None, "", "ITelescope", self.name):
            raise InvalidArgumentError(f"{self.name} has no device {device!r}")
        await self._take_control(f"stop_motion() from {caller(kwargs)}")
        try:
            if self._tracking is not None:
                self._fixed_altaz = self.altaz()
                self._tracking = None
                await self._set_status(MotionStatus.IDLE)
            await self._publish_position()
        finally:
            self._lock.release()

    # ------------------------------------------------------------------ FITS

    async def get_fits_header_before(
        self, namespaces: list[str] | None = None, **kwargs: Any
    ) -> dict[str, FitsHeaderEntry]:
        """Pointing and site cards for the images of a camera."""
        now = time.time()
        alt, az = self.altaz(now)
        ra, dec = self.radec(now)
        zd = 90.0 - alt
        airmass = 1.0 / math.cos(math.radians(zd)) if zd < 85 else 11.5
        return {
            "TEL-RA": FitsHeaderEntry(round(ra, 6), "telescope right ascension [deg]"),
            "TEL-DEC": FitsHeaderEntry(round(dec, 6), "telescope declination [deg]"),
            "TEL-ALT": FitsHeaderEntry(round(alt, 4), "telescope altitude [deg]"),
            "TEL-AZ": FitsHeaderEntry(round(az, 4), "telescope azimuth [deg]"),
            "TEL-ZD": FitsHeaderEntry(round(zd, 4), "telescope zenith distance [deg]"),
            "AIRMASS": FitsHeaderEntry(round(airmass, 4), "airmass (plane-parallel)"),
            "TEL-STAT": FitsHeaderEntry(str(self._status), "telescope motion status"),
            "LATITUDE": FitsHeaderEntry(self.latitude, "site latitude [deg]"),
            "LONGITUD": FitsHeaderEntry(self.longitude, "site longitude [deg], east positive"),
            "HEIGHT": FitsHeaderEntry(self.elevation, "site elevation [m]"),
            "LST": FitsHeaderEntry(round(astro.lst(self.longitude, now) / 15.0, 6), "local sidereal time [h]"),
        }


__all__ = ["AltitudeLimitError", "SimTelescope"]
