"""A simulated weather station that follows a script of good and bad periods."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from pyobs.events import BadWeatherEvent, GoodWeatherEvent
from pyobs.interfaces import IRunning, IWeather, RunningState, WeatherSensorReading, WeatherState
from pyobs.modules import Module
from pyobs.utils.enums import WeatherSensors
from pyobs.utils.exceptions import ConfigError, InvalidArgumentError
from pyobs.utils.time import Time

from .common import caller
from .world import SimWorld

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Period:
    """One period of the weather script."""

    good: bool
    duration: float | None  # [s]; None: forever


def parse_script(script: list[dict[str, Any]] | None) -> list[Period]:
    """``[{good: true, duration: 8}, {good: false}]`` → periods; ConfigError naming the bad entry."""
    if not script:
        return [Period(True, None)]
    periods = []
    for i, entry in enumerate(script):
        key = f"script[{i}]"
        if not isinstance(entry, dict) or "good" not in entry:
            raise ConfigError(key, f"expected a mapping with 'good:' and optionally 'duration:', got {entry!r}")
        unknown = set(entry) - {"good", "duration"}
        if unknown:
            raise ConfigError(key, f"unknown keys {sorted(unknown)} (known: good, duration)")
        good, duration = entry["good"], entry.get("duration")
        if not isinstance(good, bool):
            raise ConfigError(f"{key}.good", f"expected true or false, got {good!r}")
        if duration is not None:
            if not isinstance(duration, (int, float)) or isinstance(duration, bool) or duration <= 0:
                raise ConfigError(f"{key}.duration", f"expected a positive number of seconds, got {duration!r}")
            duration = float(duration)
        elif i != len(script) - 1:
            raise ConfigError(f"{key}.duration", "only the last period may last forever (no duration)")
        periods.append(Period(good, duration))
    return periods


class SimWeather(Module, IWeather):
    """A weather station whose verdict follows ``script``, a list of periods ``{good: bool, duration: s}``
    that starts when the module opens (the last period lasts forever, or give it a duration and the script
    ends there and keeps its last verdict).

    Sends GoodWeatherEvent / BadWeatherEvent on every change and publishes WeatherState with plausible
    readings (the temperature comes from the :class:`SimWorld`). ``stop()`` pauses the script (the verdict
    stays as it is), ``start()`` resumes it.

    Args:
        script: the periods; default: always good.
        world: the simulation world (for the temperature).
        interval: how often [s] the readings are updated.
        eta: seconds until the observatory is operational after the weather turned good (in GoodWeatherEvent).
        autostart: run the script from open(); with false it waits at its beginning until ``start()`` is
            called (tests and demos decide when the weather changes, e.g. once the night observes).
    """

    def __init__(
        self,
        script: list[dict[str, Any]] | None = None,
        world: SimWorld | None = None,
        interval: float = 0.1,
        eta: float = 0.0,
        autostart: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if interval <= 0 or eta < 0:
            raise ConfigError("interval", "interval must be positive and eta not negative")
        self.script = parse_script(script)
        self.world = world or SimWorld()
        self.interval = float(interval)
        self.eta = float(eta)
        self._running = bool(autostart)
        self._elapsed = 0.0  # script time [s]
        self._good: bool | None = None
        self.add_background_task(self._run, restart=False)

    async def open(self) -> None:
        await super().open()
        await self.comm.register_event(GoodWeatherEvent)
        await self.comm.register_event(BadWeatherEvent)
        await self.comm.set_state(IRunning, RunningState(self._running))
        self._good = self.verdict()
        await self._publish()
        plan = ", ".join(
            f"{'good' if p.good else 'bad'} {p.duration:g} s" if p.duration else ("good" if p.good else "bad")
            for p in self.script
        )
        log.info(
            "%s: weather script: %s%s; weather is %s",
            self.name, plan, "" if self._running else " (waits for start())", "good" if self._good else "bad",
        )  # fmt: skip

    def verdict(self) -> bool:
        """Whether the weather is good at the current script time."""
        t = self._elapsed
        for period in self.script:
            if period.duration is None or t < period.duration:
                return period.good
            t -= period.duration
        return self.script[-1].good

    def readings(self) -> list[WeatherSensorReading]:
        good = bool(self._good)
        return [
            WeatherSensorReading(WeatherSensors.TEMPERATURE, round(self.world.temperature(), 2), "celsius"),
            WeatherSensorReading(WeatherSensors.HUMIDITY, 35.0 if good else 96.0, "percent"),
            WeatherSensorReading(WeatherSensors.WINDSPEED, 12.0 if good else 55.0, "km/h"),
            WeatherSensorReading(WeatherSensors.RAIN, 0.0 if good else 1.0, ""),
            WeatherSensorReading(WeatherSensors.SKYTEMP, -32.0 if good else -5.0, "celsius"),
        ]

    async def _publish(self) -> None:
        await self.comm.set_state(IWeather, WeatherState(bool(self._good), self.readings()))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last = published = loop.time()
        while True:
            await asyncio.sleep(self.interval)
            now = loop.time()
            if self._running:
                self._elapsed += now - last
            last = now
            good = self.verdict()
            if good != self._good:
                self._good = good
                if good:
                    log.info("%s: weather turned GOOD after %.1f s, sending GoodWeatherEvent", self.name, self._elapsed)
                    await self.comm.send_event(GoodWeatherEvent(eta=Time.from_unix(Time.now().unix + self.eta)))
                else:
                    log.info("%s: weather turned BAD after %.1f s, sending BadWeatherEvent", self.name, self._elapsed)
                    await self.comm.send_event(BadWeatherEvent())
            elif now - published < 1.0:
                continue  # readings change slowly: publish them once a second, and on every change
            published = now
            await self._publish()

    async def get_sensor_value(self, station: str, sensor: WeatherSensors, **kwargs: Any) -> WeatherSensorReading:
        """Current value of ``sensor``; ``station`` is this module's name, "" or "average"."""
        if station not in ("", "average", self.name):
            raise InvalidArgumentError(f"unknown weather station {station!r} (known: {self.name!r}, 'average')")
        for reading in self.readings():
            if reading.sensor == sensor:
                return reading
        known = ", ".join(str(r.sensor) for r in self.readings())
        raise InvalidArgumentError(f"sensor {sensor!s} is not measured by {self.name} (measured: {known})")

    async def start(self, **kwargs: Any) -> None:
        """Resume the weather script."""
        log.info("%s: start() called by %s", self.name, caller(kwargs))
        self._running = True
        await self.comm.set_state(IRunning, RunningState(True))

    async def stop(self, **kwargs: Any) -> None:
        """Pause the weather script (the verdict stays)."""
        log.info("%s: stop() called by %s", self.name, caller(kwargs))
        self._running = False
        await self.comm.set_state(IRunning, RunningState(False))


__all__ = ["Period", "SimWeather", "parse_script"]
