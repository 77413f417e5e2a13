"""Robotic operation: acquisition, guiding, calibration, flats, scripts, scheduling."""

from abc import abstractmethod
from typing import Any, ClassVar

from .camera import IExposureTime
from .interface import Interface
from .module import IAbortable, IRunning, IStartStop
from .types import (
    AcquisitionResult,
    AcquisitionState,
    GuidingState,
    RoboticState,
    RoboticTask,
    SchedulerState,
)


class IAcquisition(IRunning, IAbortable):
    """Fine acquisition of a target."""

    state_class: ClassVar[type | None] = AcquisitionState

    @abstractmethod
    async def acquire_target(self, **kwargs: Any) -> AcquisitionResult:
        """Acquires the current target."""
        ...


class IAutoGuiding(IStartStop, IExposureTime):
    """An auto-guider."""

    state_class: ClassVar[type | None] = GuidingState


class ICalibrate(Interface):
    """Something that can be calibrated."""

    @abstractmethod
    async def calibrate(self, **kwargs: Any) -> None:
        """Calibrates."""
        ...


class IFlatField(IAbortable):
    """Taking flat fields."""

    @abstractmethod
    async def flat_field(self, count: int = 20, **kwargs: Any) -> tuple[int, float]:
        """Takes ``count`` flats; returns (number taken, total exposure time [seconds])."""
        ...


class IScriptRunner(Interface):
    """Running scripts."""

    @abstractmethod
    async def run_script(self, script: str, **kwargs: Any) -> None:
        """Runs the given script."""
        ...


class IRobotic(IStartStop):
    """A robotic system running tasks."""

    state_class: ClassVar[type | None] = RoboticState


class IRoboticScheduler(IStartStop):
    """A scheduler of robotic tasks."""

    state_class: ClassVar[type | None] = SchedulerState

    @abstractmethod
    async def get_schedule(self, limit: int = 20, **kwargs: Any) -> list[RoboticTask]:
        """Returns the next ``limit`` scheduled tasks."""
        ...
