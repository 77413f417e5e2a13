"""Cameras and other data producers, and their settings."""

from abc import abstractmethod
from typing import Any, ClassVar

from pyobs.utils.enums import ImageFormat, ImageType

from .interface import Interface
from .module import IAbortable
from .types import (
    BinningCapabilities,
    BinningState,
    CoolingState,
    DataPipelineCapabilities,
    DataPipelineState,
    DataSequenceState,
    DataStackState,
    ExposureState,
    ExposureTimeState,
    GainState,
    ImageFormatCapabilities,
    ImageFormatState,
    ImageTypeState,
    TemperaturesState,
    VideoCapabilities,
    WindowCapabilities,
    WindowState,
)


class IData(Interface):
    """Something that produces data files."""

    @abstractmethod
    async def grab_data(self, broadcast: bool = True, **kwargs: Any) -> str:
        """Takes data and returns its file name; ``broadcast`` sends a NewImageEvent."""
        ...


class ICamera(IData):
    """A camera."""


class ISpectrograph(IData):
    """A spectrograph."""


class IVideo(IData):
    """A video camera."""

    capabilities_class: ClassVar[type | None] = VideoCapabilities


class IExposure(Interface):
    """Exposure status and progress."""

    state_class: ClassVar[type | None] = ExposureState


class IExposureTime(Interface):
    """Settable exposure time."""

    state_class: ClassVar[type | None] = ExposureTimeState

    @abstractmethod
    async def set_exposure_time(self, exposure_time: float, **kwargs: Any) -> None:
        """Sets the exposure time [seconds]."""
        ...


class IImageType(Interface):
    """Settable image type."""

    state_class: ClassVar[type | None] = ImageTypeState

    @abstractmethod
    async def set_image_type(self, image_type: ImageType, **kwargs: Any) -> None:
        """Sets the image type."""
        ...


class IImageFormat(Interface):
    """Settable image format."""

    state_class: ClassVar[type | None] = ImageFormatState
    capabilities_class: ClassVar[type | None] = ImageFormatCapabilities

    @abstractmethod
    async def set_image_format(self, fmt: ImageFormat, **kwargs: Any) -> None:
        """Sets the image format."""
        ...


class IBinning(Interface):
    """Settable binning."""

    state_class: ClassVar[type | None] = BinningState
    capabilities_class: ClassVar[type | None] = BinningCapabilities

    @abstractmethod
    async def set_binning(self, x: int, y: int, **kwargs: Any) -> None:
        """Sets the binning."""
        ...


class IWindow(Interface):
    """Settable readout window."""

    state_class: ClassVar[type | None] = WindowState
    capabilities_class: ClassVar[type | None] = WindowCapabilities

    @abstractmethod
    async def set_window(self, left: int, top: int, width: int, height: int, **kwargs: Any) -> None:
        """Sets the readout window [pixels]."""
        ...


class IGain(Interface):
    """Settable gain and offset."""

    state_class: ClassVar[type | None] = GainState

    @abstractmethod
    async def set_gain(self, gain: float, **kwargs: Any) -> None:
        """Sets the gain."""
        ...

    @abstractmethod
    async def set_offset(self, offset: float, **kwargs: Any) -> None:
        """Sets the offset."""
        ...


class ITemperatures(Interface):
    """Temperature readings."""

    state_class: ClassVar[type | None] = TemperaturesState


class ICooling(ITemperatures):
    """A cooled device."""

    state_class: ClassVar[type | None] = CoolingState

    @abstractmethod
    async def set_cooling(self, enabled: bool, setpoint: float, **kwargs: Any) -> None:
        """Enables/disables cooling to ``setpoint`` [celsius]."""
        ...


class IDataSequence(IAbortable):
    """A sequence of data taken in the background."""

    state_class: ClassVar[type | None] = DataSequenceState

    @abstractmethod
    async def grab_sequence(
        self, count: int, broadcast: bool = True, delay: float = 0.0, **kwargs: Any
    ) -> None:
        """Starts a sequence of ``count`` exposures ``delay`` [seconds] apart; returns at once."""
        ...

    @abstractmethod
    async def abort_sequence(self, **kwargs: Any) -> None:
        """Aborts the running sequence."""
        ...


class IDataStack(IAbortable):
    """A stack of exposures combined into one file."""

    state_class: ClassVar[type | None] = DataStackState

    @abstractmethod
    async def grab_stack(self, count: int, broadcast: bool = True, **kwargs: Any) -> str:
        """Takes and stacks ``count`` exposures; returns the file name."""
        ...


class IDataPipeline(Interface):
    """A selectable processing pipeline."""

    state_class: ClassVar[type | None] = DataPipelineState
    capabilities_class: ClassVar[type | None] = DataPipelineCapabilities

    @abstractmethod
    async def set_pipeline(self, pipeline: str | None = None, **kwargs: Any) -> None:
        """Selects a pipeline (None = none)."""
        ...
