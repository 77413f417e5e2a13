"""Events about the weather and the roof."""

from __future__ import annotations

from pyobs.utils.time import Time

from .event import Event


class GoodWeatherEvent(Event):
    """The weather turned good; ``eta`` is when everything will be fully operational (ISO on the wire)."""

    eta: Time | None = None


class BadWeatherEvent(Event):
    """The weather turned bad."""


class RoofOpenedEvent(Event):
    """A roof finished opening."""


class RoofClosingEvent(Event):
    """A roof started closing."""
