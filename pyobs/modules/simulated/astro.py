"""Just enough spherical astronomy for the simulated telescope (no astropy, no numpy).

Sidereal time from the IAU 1982 GMST polynomial truncated to its linear term (good to about a second of
time over decades), no precession, nutation, aberration or refraction: fine for a simulation.
Azimuth counts from north through east. All angles in degrees.
"""

from __future__ import annotations

import math
import time as _time

#: Unix time of J2000.0 (2000-01-01T12:00:00 TT, taken as UTC here)
_J2000_UNIX = 946728000.0


def gmst(unix: float | None = None) -> float:
    """Greenwich mean sidereal time [deg] at ``unix`` time (now if None)."""
    t = _time.time() if unix is None else unix
    days = (t - _J2000_UNIX) / 86400.0
    return (280.46061837 + 360.98564736629 * days) % 360.0


def lst(longitude: float, unix: float | None = None) -> float:
    """Local sidereal time [deg] at east ``longitude`` [deg]."""
    return (gmst(unix) + longitude) % 360.0


def radec_to_altaz(
    ra: float, dec: float, latitude: float, longitude: float, unix: float | None = None
) -> tuple[float, float]:
    """Equatorial → horizontal: (alt, az) of ``ra``/``dec`` seen from the site at ``unix`` time."""
    ha = math.radians(lst(longitude, unix) - ra)
    d, phi = math.radians(dec), math.radians(latitude)
    sin_alt = math.sin(d) * math.sin(phi) + math.cos(d) * math.cos(phi) * math.cos(ha)
    alt = math.asin(max(-1.0, min(1.0, sin_alt)))
    az = math.atan2(
        -math.cos(d) * math.sin(ha), math.sin(d) * math.cos(phi) - math.cos(d) * math.sin(phi) * math.cos(ha)
    )
    return math.degrees(alt), math.degrees(az) % 360.0


def altaz_to_radec(
    alt: float, az: float, latitude: float, longitude: float, unix: float | None = None
) -> tuple[float, float]:
    """Horizontal → equatorial: (ra, dec) of the point at ``alt``/``az`` at ``unix`` time."""
    a, z, phi = math.radians(alt), math.radians(az), math.radians(latitude)
    sin_dec = math.sin(a) * math.sin(phi) + math.cos(a) * math.cos(phi) * math.cos(z)
    dec = math.asin(max(-1.0, min(1.0, sin_dec)))
    ha = math.atan2(-math.cos(a) * math.sin(z), math.sin(a) * math.cos(phi) - math.cos(a) * math.sin(phi) * math.cos(z))
    ra = (lst(longitude, unix) - math.degrees(ha)) % 360.0
    return ra, math.degrees(dec)


def separation(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance [deg] between two points given as (longitude, latitude) pairs [deg]."""
    l1, b1, l2, b2 = map(math.radians, (lon1, lat1, lon2, lat2))
    # haversine: well-conditioned for small distances
    h = math.sin((b2 - b1) / 2) ** 2 + math.cos(b1) * math.cos(b2) * math.sin((l2 - l1) / 2) ** 2
    return math.degrees(2 * math.asin(min(1.0, math.sqrt(h))))


def interpolate(lon1: float, lat1: float, lon2: float, lat2: float, fraction: float) -> tuple[float, float]:
    """The point ``fraction`` (0..1) of the way along the great circle from point 1 to point 2."""
    l1, b1, l2, b2 = map(math.radians, (lon1, lat1, lon2, lat2))
    v1 = (math.cos(b1) * math.cos(l1), math.cos(b1) * math.sin(l1), math.sin(b1))
    v2 = (math.cos(b2) * math.cos(l2), math.cos(b2) * math.sin(l2), math.sin(b2))
    omega = math.radians(separation(lon1, lat1, lon2, lat2))
    if omega < 1e-9:
        return lon2 % 360.0, lat2
    s = math.sin(omega)
    w1, w2 = math.sin((1 - fraction) * omega) / s, math.sin(fraction * omega) / s
    x, y, z = (w1 * a + w2 * b for a, b in zip(v1, v2, strict=True))
    return math.degrees(math.atan2(y, x)) % 360.0, math.degrees(math.atan2(z, math.hypot(x, y)))
