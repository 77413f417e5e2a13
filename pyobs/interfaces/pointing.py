"""Pointing and tracking interfaces."""

from abc import abstractmethod
from typing import Any, ClassVar

from pyobs.utils.enums import TrackingMode

from .interface import Interface
from .types import (
    AltAzOffsetState,
    AltAzState,
    HeliocentricPolarState,
    HeliographicStonyhurstState,
    HelioprojectiveState,
    OrbitalElements,
    RaDecOffsetState,
    RaDecState,
    TrackingModeCapabilities,
    TrackingModeState,
    TrackingRateCapabilities,
    TrackingRateState,
)


class IPointingRaDec(Interface):
    """Pointing to equatorial coordinates."""

    state_class: ClassVar[type | None] = RaDecState

    @abstractmethod
    async def move_radec(self, ra: float, dec: float, **kwargs: Any) -> None:
        """Moves to RA/Dec [deg] and tracks."""
        ...


class IPointingAltAz(Interface):
    """Pointing to horizontal coordinates."""

    state_class: ClassVar[type | None] = AltAzState

    @abstractmethod
    async def move_altaz(self, alt: float, az: float, **kwargs: Any) -> None:
        """Moves to Alt/Az [deg]."""
        ...


class IOffsetsRaDec(Interface):
    """Offsets in RA/Dec."""

    state_class: ClassVar[type | None] = RaDecOffsetState

    @abstractmethod
    async def set_offsets_radec(self, dra: float, ddec: float, **kwargs: Any) -> None:
        """Sets offsets in RA/Dec [deg]."""
        ...


class IOffsetsAltAz(Interface):
    """Offsets in Alt/Az."""

    state_class: ClassVar[type | None] = AltAzOffsetState

    @abstractmethod
    async def set_offsets_altaz(self, dalt: float, daz: float, **kwargs: Any) -> None:
        """Sets offsets in Alt/Az [deg]."""
        ...


class IPointingBody(Interface):
    """Tracking a named solar system body."""

    @abstractmethod
    async def track_body(self, body: str, **kwargs: Any) -> None:
        """Tracks the named body."""
        ...


class IPointingOrbitalElements(Interface):
    """Tracking a body given by orbital elements."""

    @abstractmethod
    async def track_orbital_elements(self, elements: OrbitalElements, **kwargs: Any) -> None:
        """Tracks the body with the given orbital elements."""
        ...


class IPointingHelioprojective(Interface):
    """Pointing to helioprojective coordinates."""

    state_class: ClassVar[type | None] = HelioprojectiveState

    @abstractmethod
    async def move_helioprojective(self, theta_x: float, theta_y: float, **kwargs: Any) -> None:
        """Moves to helioprojective theta_x/theta_y [deg]."""
        ...


class IPointingHeliographicStonyhurst(Interface):
    """Pointing to heliographic Stonyhurst coordinates."""

    state_class: ClassVar[type | None] = HeliographicStonyhurstState

    @abstractmethod
    async def move_heliographic_stonyhurst(self, lon: float, lat: float, **kwargs: Any) -> None:
        """Moves to heliographic Stonyhurst lon/lat [deg]."""
        ...


class IPointingHeliocentricPolar(Interface):
    """Pointing to heliocentric polar coordinates."""

    state_class: ClassVar[type | None] = HeliocentricPolarState

    @abstractmethod
    async def move_heliocentric_polar(self, mu: float, psi: float, **kwargs: Any) -> None:
        """Moves to heliocentric polar mu, psi [deg]."""
        ...


class IPointingSeries(Interface):
    """Pointing model measurement series."""

    @abstractmethod
    async def add_pointing_measurement(self, **kwargs: Any) -> None:
        """Adds a pointing measurement at the current position."""
        ...


class ISyncTarget(Interface):
    """Syncing the mount on the current target."""

    @abstractmethod
    async def sync_target(self, **kwargs: Any) -> None:
        """Synchronizes the mount on the current target."""
        ...


class ITrackingMode(Interface):
    """Selectable tracking mode."""

    state_class: ClassVar[type | None] = TrackingModeState
    capabilities_class: ClassVar[type | None] = TrackingModeCapabilities

    @abstractmethod
    async def set_tracking_mode(self, mode: TrackingMode, **kwargs: Any) -> None:
        """Sets the tracking mode."""
        ...


class ITrackingRate(Interface):
    """Custom tracking rates."""

    state_class: ClassVar[type | None] = TrackingRateState
    capabilities_class: ClassVar[type | None] = TrackingRateCapabilities

    @abstractmethod
    async def set_tracking_rate(self, ra_rate: float, dec_rate: float, **kwargs: Any) -> None:
        """Sets tracking rates in RA/Dec [arcsec/s]."""
        ...
