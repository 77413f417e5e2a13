"""Events about motion devices, telescopes, filter wheels, focus and modes."""

from __future__ import annotations

from dataclasses import field

from pyobs.utils.enums import MotionStatus

from .event import Event


class MotionStatusChangedEvent(Event):
    """A motion device's status changed; ``interfaces`` maps interface/device names to their status."""

    status: MotionStatus
    interfaces: dict[str, MotionStatus] = field(default_factory=dict)


class FilterChangedEvent(Event):
    """A filter wheel now has filter ``current`` in the beam."""

    current: str

    @property
    def filter(self) -> str:
        """The filter now in the beam (pyobs-core's name for ``current``)."""
        return self.current


class FocusFoundEvent(Event):
    """An auto-focus run found ``focus`` (with ``error``) for ``filter_name``."""

    focus: float
    error: float | None = None
    filter_name: str | None = None


class ModeChangedEvent(Event):
    """Mode group ``group`` switched to mode ``current``."""

    group: str
    current: str

    @property
    def mode(self) -> str:
        """The new mode (pyobs-core's name for ``current``)."""
        return self.current


class MoveEvent(Event):
    """Abstract base of telescope moves; has no data and is never sent itself."""


class MoveRaDecEvent(MoveEvent):
    """A telescope started moving to ``ra``/``dec`` (degrees)."""

    ra: float
    dec: float


class MoveAltAzEvent(MoveEvent):
    """A telescope started moving to ``alt``/``az`` (degrees)."""

    alt: float
    az: float


class OffsetsEvent(Event):
    """Abstract base of telescope offsets; has no data and is never sent itself."""


class OffsetsRaDecEvent(OffsetsEvent):
    """A telescope's RA/Dec offsets changed to ``ra``/``dec`` (degrees)."""

    ra: float
    dec: float


class OffsetsAltAzEvent(OffsetsEvent):
    """A telescope's Alt/Az offsets changed to ``alt``/``az`` (degrees)."""

    alt: float
    az: float
