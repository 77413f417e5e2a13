"""A small night script: weather, slew, autofocus, science images, summary."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pyobs.events import (
    BadWeatherEvent,
    ExposureStatusChangedEvent,
    FocusFoundEvent,
    GoodWeatherEvent,
    MotionStatusChangedEvent,
    NewImageEvent,
)
from pyobs.interfaces import (
    AutoFocusResult,
    IAutoFocus,
    IAutonomous,
    ICamera,
    IExposureTime,
    IImageType,
    IRunning,
    ITelescope,
    IWeather,
    RunningState,
    WeatherState,
)
from pyobs.modules import Module
from pyobs.utils.enums import ImageType
from pyobs.utils.exceptions import AbortedError, ConfigError, FocusError, PointingLimitError, error_text

from .common import caller
from .world import SimWorld

T = TypeVar("T")

log = logging.getLogger(__name__)

#: well-known targets around the sky; NGC 188 (Dec +85) is above 25 deg all night from northern sites
DEFAULT_TARGETS: list[dict[str, Any]] = [
    {"name": "M13", "ra": 250.4235, "dec": 36.4613},
    {"name": "M57", "ra": 283.3963, "dec": 33.0292},
    {"name": "M51", "ra": 202.4696, "dec": 47.1952},
    {"name": "M42", "ra": 83.8221, "dec": -5.3911},
    {"name": "M45", "ra": 56.7500, "dec": 24.1167},
    {"name": "M31", "ra": 10.6847, "dec": 41.2690},
    {"name": "NGC 188", "ra": 12.1080, "dec": 85.2550},
]


@dataclass(frozen=True)
class Target:
    name: str
    ra: float  # deg
    dec: float  # deg


def parse_targets(targets: list[dict[str, Any]] | None) -> list[Target]:
    out = []
    for i, entry in enumerate(targets if targets is not None else DEFAULT_TARGETS):
        key = f"targets[{i}]"
        if not isinstance(entry, dict) or not {"ra", "dec"} <= set(entry):
            raise ConfigError(key, f"expected a mapping with ra, dec [deg] and optionally name, got {entry!r}")
        try:
            ra, dec = float(entry["ra"]), float(entry["dec"])
        except (TypeError, ValueError):
            raise ConfigError(key, f"ra and dec must be numbers, got {entry['ra']!r}, {entry['dec']!r}") from None
        if not (0 <= ra < 360 and -90 <= dec <= 90):
            raise ConfigError(key, f"ra must be in 0..360 and dec in -90..90, got {ra}, {dec}")
        out.append(Target(str(entry.get("name", f"target {i + 1}")), ra, dec))
    if not out:
        raise ConfigError("targets", "need at least one target")
    return out


@dataclass
class NightSummary:
    """What a night achieved (also kept on the module as ``summary`` for tests and callers)."""

    images: list[str] = field(default_factory=list)
    images_planned: int = 0
    target: str | None = None
    focus: AutoFocusResult | None = None
    true_focus: float | None = None  # the world's best focus when the focus was found
    reason: str = ""
    duration: float = 0.0

    def line(self) -> str:
        where = f" of {self.target}" if self.target else ""
        folder = f" in {os.path.dirname(self.images[0])}" if self.images else ""
        text = f"NIGHT SUMMARY: {len(self.images)} of {self.images_planned} images taken{where}{folder} ({self.reason})"
        if self.focus is not None:
            text += f"; focus found {self.focus.focus:.4f} ± {self.focus.focus_err:.4f} mm"
            if self.true_focus is not None:
                off = self.focus.focus - self.true_focus
                text += f" vs true best focus {self.true_focus:.4f} mm (off by {off:+.4f} mm)"
        else:
            text += "; no focus found"
        return f"{text}; {self.duration:.1f} s"


class _NightOver(Exception):
    """Ends the observing sequence early (bad weather, stop())."""


class NightScript(Module, IAutonomous):
    """Runs a short night: waits for good weather, initializes the telescope, slews to the first target
    above the altitude limit, runs the autofocus, takes ``images`` science images, stops when the weather
    turns bad (aborting a running exposure), parks and logs a one-line summary. Sets ``finished`` when
    the night is over, so ``pyobs CONFIG.yaml`` exits by itself.

    Everything happens through proxies, events and published state of the named modules. The ``world``
    is used only for the summary, to compare the focus found with the true one.

    Args:
        telescope, camera, autofocus, weather: module names.
        targets: candidates ``[{name, ra, dec}, ...]`` [deg], tried in order (default: a list around the sky).
        images: number of science images.
        exposure_time: of the science images [s].
        focus_count, focus_step, focus_exposure_time: the focus series [images, mm, s].
        startup_timeout: how long [s] to wait for the modules to come online.
        weather_timeout: how long [s] to wait for good weather.
        night_timeout: upper bound [s] of the whole night.
        autostart: start the night when the module opens.
        world: the simulation world (truth for the summary only).
    """

    def __init__(
        self,
        telescope: str = "telescope",
        camera: str = "camera",
        autofocus: str = "autofocus",
        weather: str = "weather",
        targets: list[dict[str, Any]] | None = None,
        images: int = 10,
        exposure_time: float = 0.5,
        focus_count: int = 7,
        focus_step: float = 0.15,
        focus_exposure_time: float = 0.3,
        startup_timeout: float = 10.0,
        weather_timeout: float = 30.0,
        night_timeout: float = 300.0,
        autostart: bool = True,
        world: SimWorld | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if images < 0 or exposure_time < 0 or focus_count < 3 or focus_step <= 0 or focus_exposure_time < 0:
            raise ConfigError("images", "images and times must not be negative, focus_count >= 3, focus_step > 0")
        if min(startup_timeout, weather_timeout, night_timeout) <= 0:
            raise ConfigError("night_timeout", "timeouts must be positive")
        self.telescope, self.camera, self.autofocus, self.weather = telescope, camera, autofocus, weather
        self.targets = parse_targets(targets)
        self.images = int(images)
        self.exposure_time = float(exposure_time)
        self.focus_count, self.focus_step = int(focus_count), float(focus_step)
        self.focus_exposure_time = float(focus_exposure_time)
        self.startup_timeout, self.weather_timeout = float(startup_timeout), float(weather_timeout)
        self.night_timeout = float(night_timeout)
        self.autostart = autostart
        self.world = world or SimWorld()
        #: set when a night is over (the CLI exits then)
        self.finished = asyncio.Event()
        self.summary: NightSummary | None = None
        self._task: asyncio.Task[None] | None = None
        self._good = asyncio.Event()
        self._over = ""  # why the night must end early ("" while it may go on)
        self._phase = "idle"
        self._long_call: asyncio.Future[Any] | None = None  # a running exposure or focus series

    async def open(self) -> None:
        await super().open()
        await self.comm.register_event(GoodWeatherEvent, self._on_good_weather)
        await self.comm.register_event(BadWeatherEvent, self._on_bad_weather)
        await self.comm.register_event(NewImageEvent, self._on_new_image)
        await self.comm.register_event(FocusFoundEvent, self._on_focus_found)
        await self.comm.register_event(MotionStatusChangedEvent, self._on_motion)
        await self.comm.register_event(ExposureStatusChangedEvent, self._on_exposure)
        await self.comm.set_state(IRunning, RunningState(False))
        if self.autostart:
            self._start_night()

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task], timeout=5.0)
        await super().close()

    # ------------------------------------------------------------------ events

    async def _on_good_weather(self, event: GoodWeatherEvent, sender: str) -> bool:
        log.info("%s: received GoodWeatherEvent from %s", self.name, sender)
        self._good.set()
        return True

    async def _on_bad_weather(self, event: BadWeatherEvent, sender: str) -> bool:
        log.info("%s: received BadWeatherEvent from %s (phase: %s)", self.name, sender, self._phase)
        self._good.clear()
        await self._end_early("weather turned bad")
        return True

    async def _on_new_image(self, event: NewImageEvent, sender: str) -> bool:
        log.info("%s: received NewImageEvent from %s: %s", self.name, sender, os.path.basename(event.filename))
        return True

    async def _on_focus_found(self, event: FocusFoundEvent, sender: str) -> bool:
        log.info("%s: received FocusFoundEvent from %s: %.4f mm", self.name, sender, event.focus)
        return True

    async def _on_motion(self, event: MotionStatusChangedEvent, sender: str) -> bool:
        level = logging.INFO if sender == self.telescope else logging.DEBUG
        log.log(level, "%s: received MotionStatusChangedEvent from %s: %s", self.name, sender, event.status)
        return True

    async def _on_exposure(self, event: ExposureStatusChangedEvent, sender: str) -> bool:
        log.debug(
            "%s: received ExposureStatusChangedEvent from %s: %s -> %s", self.name, sender, event.last, event.current
        )
        return True

    async def _on_weather_state(self, state: WeatherState, sender: str) -> None:
        if state.good:
            self._good.set()
        else:
            self._good.clear()

    async def _end_early(self, reason: str) -> None:
        """Make the night end now: cancel what runs (exposure or focus series) so nobody waits for it;
        the cancel reaches the camera or autofocus, which stop it."""
        if self._task is None or self._task.done() or self._over:
            return
        self._over = reason
        call = self._long_call
        if call is not None and not call.done():
            log.info("%s: %s, cancelling the running %s", self.name, reason, call)
            call.cancel()

    async def _long(self, call: Awaitable[T]) -> T:
        """Await a long remote call in a task of its own, so that _end_early can cancel just it."""
        task: asyncio.Future[T] = asyncio.ensure_future(call)
        self._long_call = task
        try:
            return await task
        except asyncio.CancelledError:
            running = asyncio.current_task()
            if self._over and task.cancelled() and running is not None and not running.cancelling():
                raise _NightOver(self._over) from None  # we cancelled it: the night ends early
            raise
        finally:
            self._long_call = None

    # ------------------------------------------------------------------ start/stop

    def _start_night(self) -> None:
        self.finished.clear()
        self._over = ""
        self._task = asyncio.create_task(self._night())

    async def start(self, **kwargs: Any) -> None:
        """Start a night (if none is running)."""
        log.info("%s: start() called by %s", self.name, caller(kwargs))
        if self._task is not None and not self._task.done():
            log.info("%s: a night is already running", self.name)
            return
        self._start_night()

    async def stop(self, **kwargs: Any) -> None:
        """End the running night early (running exposures are aborted, the telescope parks)."""
        log.info("%s: stop() called by %s", self.name, caller(kwargs))
        await self._end_early(f"stopped by {caller(kwargs)}")

    # ------------------------------------------------------------------ the night

    def _check(self) -> None:
        if self._over:
            raise _NightOver(self._over)

    async def _wait_for_modules(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        end = loop.time() + self.startup_timeout
        wanted = {self.telescope: ITelescope, self.camera: ICamera, self.autofocus: IAutoFocus, self.weather: IWeather}
        proxies: dict[str, Any] = {}
        while True:
            for name, iface in wanted.items():
                if name not in proxies:
                    try:
                        proxies[name] = await self.proxy(name, iface)
                    except ValueError:
                        pass  # not online yet
            if len(proxies) == len(wanted):
                return proxies
            if loop.time() > end:
                missing = ", ".join(f"{n} ({i.__name__})" for n, i in wanted.items() if n not in proxies)
                raise TimeoutError(
                    f"modules not online (or without the interface) after {self.startup_timeout:g} s: {missing}"
                )
            await asyncio.sleep(0.05)

    async def _night(self) -> None:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        self.summary = summary = NightSummary(images_planned=self.images)
        await self.comm.set_state(IRunning, RunningState(True))
        log.info("%s: night starts, %d targets, %d images planned", self.name, len(self.targets), self.images)
        cancelled = False
        try:
            async with asyncio.timeout(self.night_timeout):
                summary.reason = await self._observe(summary)
        except _NightOver as exc:
            summary.reason = f"stopped: {exc}"
        except TimeoutError as exc:
            summary.reason = f"failed: {exc}" if str(exc) else f"night_timeout of {self.night_timeout:g} s reached"
        except asyncio.CancelledError:
            summary.reason = "cancelled"
            cancelled = True
            raise
        except Exception as exc:
            log.error("%s: night failed: %s", self.name, error_text(exc))
            summary.reason = f"failed: {error_text(exc)}"
        finally:
            self._phase = "closing"
            if not cancelled:
                await self._park()
            summary.duration = loop.time() - t0
            self._phase = "idle"
            log.info("%s: %s", self.name, summary.line())
            if not cancelled:
                await self.comm.set_state(IRunning, RunningState(False))
            self.finished.set()

    async def _park(self) -> None:
        try:
            telescope = await self.proxy(self.telescope, ITelescope)
            log.info("%s: asking %s to park", self.name, self.telescope)
            await telescope.park()
        except Exception as exc:
            log.warning("%s: could not park %s: %s", self.name, self.telescope, exc)

    async def _observe(self, summary: NightSummary) -> str:
        self._phase = "starting"
        modules = await self._wait_for_modules()
        telescope, camera, autofocus = modules[self.telescope], modules[self.camera], modules[self.autofocus]
        weather = modules[self.weather]
        log.info("%s: %s are online", self.name, ", ".join(modules))

        # weather: the state tells the present, the events tell the changes
        await weather.subscribe_state(IWeather, self._on_weather_state)
        state: WeatherState | None = weather.get_state(IWeather)
        if state is not None and state.good:
            self._good.set()
        if not self._good.is_set():
            self._phase = "waiting"
            log.info("%s: weather is bad, waiting up to %g s for GoodWeatherEvent", self.name, self.weather_timeout)
            try:
                await asyncio.wait_for(self._good.wait(), timeout=self.weather_timeout)
            except TimeoutError:
                return f"no good weather within {self.weather_timeout:g} s"
            self._over = ""  # bad weather before the night began does not end it
        self._check()

        self._phase = "slewing"
        log.info("%s: weather is good, asking %s to init", self.name, self.telescope)
        await telescope.init()
        self._check()
        for target in self.targets:
            log.info(
                "%s: asking %s to slew to %s (RA %.4f, Dec %.4f)",
                self.name,
                self.telescope,
                target.name,
                target.ra,
                target.dec,
            )
            try:
                await telescope.move_radec(target.ra, target.dec)
            except PointingLimitError as exc:
                log.info("%s: %s refused %s: %s", self.name, self.telescope, target.name, error_text(exc))
                self._check()
                continue
            summary.target = target.name
            break
        else:
            return "no target above the telescope's altitude limit"
        self._check()

        self._phase = "focusing"
        log.info(
            "%s: asking %s for a focus series of %d images, %g mm apart",
            self.name,
            self.autofocus,
            self.focus_count,
            self.focus_step,
        )
        try:
            focus: AutoFocusResult = await self._long(
                autofocus.auto_focus(self.focus_count, self.focus_step, self.focus_exposure_time)
            )
            summary.focus = focus
            summary.true_focus = self.world.best_focus()
            log.info(
                "%s: %s found focus %.4f ± %.4f mm",
                self.name,
                self.autofocus,
                focus.focus,
                focus.focus_err,
            )
        except (FocusError, AbortedError) as exc:
            self._check()
            log.warning("%s: autofocus failed (%s), observing without", self.name, exc)
        self._check()

        self._phase = "observing"
        if isinstance(camera, IExposureTime):
            await camera.set_exposure_time(self.exposure_time)
        if isinstance(camera, IImageType):
            await camera.set_image_type(ImageType.OBJECT)
        for i in range(1, self.images + 1):
            self._check()
            log.info(
                "%s: image %d/%d: asking %s for a %g s exposure",
                self.name,
                i,
                self.images,
                self.camera,
                self.exposure_time,
            )
            try:
                filename = await self._long(camera.grab_data())
            except AbortedError:
                self._check()
                raise
            summary.images.append(filename)
        return f"all {self.images} images taken"


__all__ = ["DEFAULT_TARGETS", "NightScript", "NightSummary", "Target", "parse_targets"]
