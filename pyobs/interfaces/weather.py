"""Weather station interface."""

from abc import abstractmethod
from typing import Any, ClassVar

from pyobs.utils.enums import WeatherSensors

from .module import IStartStop
from .types import WeatherSensorReading, WeatherState


class IWeather(IStartStop):
    """A weather station (or aggregator)."""

    state_class: ClassVar[type | None] = WeatherState

    @abstractmethod
    async def get_sensor_value(
        self, station: str, sensor: WeatherSensors, **kwargs: Any
    ) -> WeatherSensorReading:
        """Returns the current value of ``sensor`` at ``station``."""
        ...
