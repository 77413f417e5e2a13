"""FITS headers, multi-fiber, modes and push notifications."""

from abc import abstractmethod
from typing import Any, ClassVar

from pyobs.utils.enums import PushNotificationType

from .interface import Interface
from .types import FitsHeaderEntry, ModeCapabilities, ModeState, MultiFiberCapabilities, MultiFiberState


class IFitsHeaderBefore(Interface):
    """FITS header cards collected before an exposure."""

    @abstractmethod
    async def get_fits_header_before(
        self, namespaces: list[str] | None = None, **kwargs: Any
    ) -> dict[str, FitsHeaderEntry]:
        """Returns FITS header cards for the given namespaces (None = all)."""
        ...


class IFitsHeaderAfter(Interface):
    """FITS header cards collected after an exposure."""

    @abstractmethod
    async def get_fits_header_after(
        self, namespaces: list[str] | None = None, **kwargs: Any
    ) -> dict[str, FitsHeaderEntry]:
        """Returns FITS header cards for the given namespaces (None = all)."""
        ...


class IMultiFiber(Interface):
    """A multi-fiber unit."""

    state_class: ClassVar[type | None] = MultiFiberState
    capabilities_class: ClassVar[type | None] = MultiFiberCapabilities

    @abstractmethod
    async def abort(self, **kwargs: Any) -> None:
        """Aborts the current action."""
        ...

    @abstractmethod
    async def set_fiber(self, fiber: str, **kwargs: Any) -> None:
        """Selects a fiber."""
        ...


class IMode(Interface):
    """Modes selectable per group."""

    state_class: ClassVar[type | None] = ModeState
    capabilities_class: ClassVar[type | None] = ModeCapabilities

    @abstractmethod
    async def set_mode(self, mode: str, group: str = "", **kwargs: Any) -> None:
        """Sets ``mode`` in ``group``."""
        ...


class IPushNotifications(Interface):
    """Push notifications to mobile devices."""

    @abstractmethod
    async def register_push_device(self, token: str, platform: str = "android", **kwargs: Any) -> None:
        """Registers a device token for push notifications."""
        ...

    @abstractmethod
    async def get_push_preferences(self, **kwargs: Any) -> list[PushNotificationType]:
        """Returns the notification types the caller receives."""
        ...

    @abstractmethod
    async def set_push_preferences(self, types: list[PushNotificationType], **kwargs: Any) -> None:
        """Sets the notification types the caller receives."""
        ...
