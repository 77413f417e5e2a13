"""Events about exposures, images and spectra."""

from __future__ import annotations

from pyobs.utils.enums import ExposureStatus, ImageType

from .event import Event


class NewImageEvent(Event):
    """A new image was written to ``filename``; ``raw`` is the raw frame of a reduced image."""

    filename: str
    image_type: ImageType | None = None
    raw: str | None = None

    @property
    def is_reduced(self) -> bool:
        """A reduced image names its raw frame."""
        return self.raw is not None


class NewSpectrumEvent(Event):
    """A new spectrum was written to ``filename``."""

    filename: str


class ExposureStatusChangedEvent(Event):
    """A camera's exposure status changed from ``last`` to ``current``."""

    current: ExposureStatus
    last: ExposureStatus | None = None
