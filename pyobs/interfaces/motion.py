"""Moving devices: telescope, roof, dome, rotator, filter wheel."""

from abc import abstractmethod
from typing import Any, ClassVar

from .module import IReady
from .pointing import IPointingAltAz
from .types import FiltersCapabilities, FilterState, MotionState, RotationState


class IMotion(IReady):
    """A device that moves, initializes and parks."""

    state_class: ClassVar[type | None] = MotionState

    @abstractmethod
    async def init(self, **kwargs: Any) -> None:
        """Initializes the device."""
        ...

    @abstractmethod
    async def park(self, **kwargs: Any) -> None:
        """Parks the device."""
        ...

    @abstractmethod
    async def stop_motion(self, device: str | None = None, **kwargs: Any) -> None:
        """Stops the motion of ``device`` (all if None)."""
        ...


class ITelescope(IMotion):
    """A telescope."""


class IRoof(IMotion):
    """A roof (init = open, park = close)."""


class IDome(IRoof, IPointingAltAz):
    """A dome: a roof that can be pointed."""


class IRotation(IMotion):
    """A field rotator."""

    state_class: ClassVar[type | None] = RotationState

    @abstractmethod
    async def set_rotation(self, angle: float, **kwargs: Any) -> None:
        """Sets the rotation angle [deg]."""
        ...


class IFilters(IMotion):
    """A filter wheel."""

    state_class: ClassVar[type | None] = FilterState
    capabilities_class: ClassVar[type | None] = FiltersCapabilities

    @abstractmethod
    async def set_filter(self, filter_name: str, **kwargs: Any) -> None:
        """Sets the filter."""
        ...
