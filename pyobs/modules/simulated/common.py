"""Small helpers shared by the simulated modules."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from pyobs.utils.exceptions import ConfigError

#: the default site: McDonald Observatory, Texas
DEFAULT_SITE = {"latitude": 30.6797, "longitude": -104.0247, "elevation": 2075.0}


def caller(kwargs: dict[str, Any]) -> str:
    """Who called a method: the comm passes ``sender`` to methods that take ``**kwargs``."""
    sender = kwargs.get("sender")
    return str(sender) if sender else "a local caller"


def site(location: Any) -> tuple[float, float, float]:
    """(latitude, longitude, elevation) from an Object's ``location`` config (a mapping), or the default."""
    if location is None:
        loc = DEFAULT_SITE
    elif isinstance(location, dict):
        loc = {**DEFAULT_SITE, **location}
    else:
        raise ConfigError("location", f"expected a mapping with latitude/longitude/elevation, got {location!r}")
    try:
        lat, lon, elev = float(loc["latitude"]), float(loc["longitude"]), float(loc["elevation"])
    except (TypeError, ValueError) as exc:
        raise ConfigError("location", f"latitude, longitude and elevation must be numbers ({exc})") from None
    if not -90.0 <= lat <= 90.0:
        raise ConfigError("location.latitude", f"must be within -90..90 deg, got {lat}")
    return lat, lon, elev


async def wait_until(check: Callable[[], Awaitable[bool]], timeout: float, interval: float, what: str) -> None:
    """Poll ``check`` every ``interval`` s until it returns True; TimeoutError naming ``what`` after ``timeout`` s."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not await check():
        if loop.time() >= end:
            raise TimeoutError(f"{what} did not happen within {timeout:g} s")
        await asyncio.sleep(interval)
