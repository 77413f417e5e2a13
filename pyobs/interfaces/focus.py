"""Focusing interfaces."""

from abc import abstractmethod
from typing import Any, ClassVar

from .interface import Interface
from .module import IAbortable, IRunning
from .motion import IMotion
from .types import AutoFocusResult, AutoFocusState, FocuserState, OptimalFocusState


class IFocuser(IMotion):
    """A focuser."""

    state_class: ClassVar[type | None] = FocuserState

    @abstractmethod
    async def set_focus(self, focus: float, **kwargs: Any) -> None:
        """Sets focus [mm]."""
        ...

    @abstractmethod
    async def set_focus_offset(self, offset: float, **kwargs: Any) -> None:
        """Sets focus offset [mm]."""
        ...


class IFocusModel(Interface):
    """A focus model (e.g. temperature dependent)."""

    state_class: ClassVar[type | None] = OptimalFocusState

    @abstractmethod
    async def set_optimal_focus(self, **kwargs: Any) -> None:
        """Sets the focus predicted by the model."""
        ...


class IAutoFocus(IRunning, IAbortable):
    """An auto-focus series."""

    state_class: ClassVar[type | None] = AutoFocusState

    @abstractmethod
    async def auto_focus(
        self, count: int, step: float, exposure_time: float, **kwargs: Any
    ) -> AutoFocusResult:
        """Runs a focus series of ``count`` images ``step`` apart, exposing ``exposure_time`` [seconds]."""
        ...
