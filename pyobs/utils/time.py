"""A UTC time type with the everyday API of pyobs-core's astropy-based ``Time``, without astropy.

The comm core (state dataclasses, casting, the wire) needs times but must import fast and work
without astropy, so :class:`Time` is a timezone-aware UTC :class:`datetime.datetime`. It takes the
calls pyobs-core module code makes on its ``Time`` (an ``astropy.time.Time``)::

    Time("2025-11-03T23:00:00", scale="utc"); Time.now(); Time(60000.5, format="mjd")
    t + 1 * u.second; t + TimeDelta(30, format="sec"); (t2 - t1).sec; t.isot; t.mjd; t.unix

and converts both ways: ``t.to_astropy()`` (needs astropy) and ``Time(astropy_time)``.
Anything beyond (sidereal time, other scales, arrays) needs astropy: ``t.to_astropy()``.
"""

from __future__ import annotations

import datetime as _dt
import time as _time
from datetime import UTC, datetime, timedelta
from typing import Any

#: Julian date of the Unix epoch, and of the MJD zero point
_JD_UNIX_EPOCH = 2440587.5
_MJD_OFFSET = 2400000.5
_SECONDS = {"s": 1.0, "sec": 1.0, "second": 1.0, "min": 60.0, "h": 3600.0, "hour": 3600.0, "d": 86400.0, "day": 86400.0}


def _seconds_of(value: Any) -> float | None:
    """Seconds of a duration: timedelta, astropy TimeDelta (``.sec``) or Quantity (``.to_value``)."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    sec = getattr(value, "sec", None)
    if isinstance(sec, (int, float)):
        return float(sec)
    to_value = getattr(value, "to_value", None)
    if callable(to_value) and hasattr(value, "unit"):
        try:
            return float(to_value("s"))
        except Exception:
            return None
    return None


class TimeDelta(timedelta):
    """A duration (``t2 - t1``) with astropy's ``.sec`` / ``.jd`` / ``to_value(unit)``."""

    @classmethod
    def from_seconds(cls, seconds: float) -> TimeDelta:
        return cls(seconds=seconds)

    def __new__(cls, *args: Any, format: str | None = None, **kwargs: Any) -> TimeDelta:
        if format is not None or (len(args) == 1 and not kwargs and not isinstance(args[0], timedelta)):
            value = float(args[0]) if args else 0.0
            unit = {"sec": 1.0, "jd": 86400.0, None: 86400.0}.get(format)
            if unit is None:
                raise ValueError(f"TimeDelta format {format!r} is not supported (use 'sec' or 'jd')")
            return super().__new__(cls, seconds=value * unit)
        if len(args) == 1 and isinstance(args[0], timedelta):
            return super().__new__(cls, seconds=args[0].total_seconds())
        return super().__new__(cls, *args, **kwargs)

    @property
    def sec(self) -> float:
        return self.total_seconds()

    @property
    def jd(self) -> float:
        return self.total_seconds() / 86400.0

    def to_value(self, unit: Any = "s") -> float:
        name = str(getattr(unit, "name", unit))
        if name not in _SECONDS:
            raise ValueError(f"unit {unit!r} is not supported here (use s, min, h or d)")
        return self.total_seconds() / _SECONDS[name]

    def __add__(self, other: Any) -> Any:
        if isinstance(other, datetime):
            return NotImplemented
        seconds = _seconds_of(other)
        if seconds is None:
            return NotImplemented
        return TimeDelta(seconds=self.total_seconds() + seconds)

    __radd__ = __add__

    def __neg__(self) -> TimeDelta:
        return TimeDelta(seconds=-self.total_seconds())


class Time(datetime):
    """A timezone-aware UTC datetime whose wire form is ISO 8601 (``2026-01-01T00:00:00.000``).

    ``Time(value, format=None, scale="utc")`` as astropy: an ISO string, a datetime, an astropy
    Time, or a number with ``format="unix"``, ``"mjd"`` or ``"jd"``. Only the UTC scale exists.
    The datetime constructor (``Time(2026, 1, 1, tzinfo=UTC)``) works too.
    """

    def __new__(cls, *args: Any, format: str | None = None, scale: str | None = None, **kwargs: Any) -> Time:
        if scale is not None and str(scale).lower() != "utc":
            raise ValueError(f"time scale {scale!r} is not supported here (only 'utc'; use t.to_astropy())")
        if "val" in kwargs and not args:
            args = (kwargs.pop("val"),)
        if len(args) == 1 and not kwargs and not isinstance(args[0], bytes):  # bytes: datetime's pickle form
            return cls._from_value(args[0], format)
        if format is not None:
            raise TypeError("format is only accepted with a single value")
        return super().__new__(cls, *args, **kwargs)

    @classmethod
    def _from_value(cls, value: Any, format: str | None) -> Time:
        if isinstance(value, str) and format in (None, "isot", "iso", "fits"):
            return cls.parse(value)
        if isinstance(value, datetime):
            return cls.from_datetime(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if format == "unix":
                return cls.from_unix(float(value))
            if format == "mjd":
                return cls.from_unix((float(value) + _MJD_OFFSET - _JD_UNIX_EPOCH) * 86400.0)
            if format == "jd":
                return cls.from_unix((float(value) - _JD_UNIX_EPOCH) * 86400.0)
            raise ValueError(f"a number needs format='unix', 'mjd' or 'jd', got format={format!r}")
        to_datetime = getattr(value, "to_datetime", None)
        if callable(to_datetime) and getattr(value, "isot", None) is not None:  # an astropy Time
            utc = getattr(value, "utc", value)
            return cls.parse(str(utc.isot))
        raise ValueError(f"cannot make a Time of {value!r}" + (f" with format {format!r}" if format else ""))

    @classmethod
    def now(cls, tz: Any = None) -> Time:
        return cls.fromtimestamp(_time.time(), tz=UTC)

    @classmethod
    def from_unix(cls, seconds: float) -> Time:
        return cls.fromtimestamp(seconds, tz=UTC)

    @classmethod
    def parse(cls, text: str) -> Time:
        """Parse ISO 8601; a missing offset means UTC (as on the pyobs wire)."""
        t = text.strip()
        if t.endswith("Z"):
            t = t[:-1] + "+00:00"
        try:
            dt = datetime.fromisoformat(t)
        except ValueError:
            raise ValueError(f"not an ISO 8601 time: {text!r}") from None
        return cls.from_datetime(dt)

    @classmethod
    def from_datetime(cls, dt: datetime) -> Time:
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        dt = dt.astimezone(UTC)
        return datetime.__new__(cls, dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second, dt.microsecond, UTC)

    # -- astropy's everyday properties
    @property
    def isot(self) -> str:
        """ISO string with millisecond precision, no offset (the pyobs wire form)."""
        return self.strftime("%Y-%m-%dT%H:%M:%S.") + f"{self.microsecond // 1000:03d}"

    @property
    def iso(self) -> str:
        return self.strftime("%Y-%m-%d %H:%M:%S.") + f"{self.microsecond // 1000:03d}"

    @property
    def unix(self) -> float:
        return self.timestamp()

    @property
    def jd(self) -> float:
        return self.timestamp() / 86400.0 + _JD_UNIX_EPOCH

    @property
    def mjd(self) -> float:
        return self.jd - _MJD_OFFSET

    @property
    def scale(self) -> str:
        return "utc"

    @property
    def datetime(self) -> _dt.datetime:
        """A plain datetime (UTC, aware)."""
        return _dt.datetime.fromtimestamp(self.timestamp(), tz=UTC)

    def to_datetime(self, timezone: Any = None, leap_second_strict: str = "raise") -> _dt.datetime:
        """A plain datetime, in ``timezone`` if given (astropy: naive UTC without one).

        ``leap_second_strict`` is astropy's; a time here never falls on a leap second.
        """
        if timezone is None:
            return self.datetime.replace(tzinfo=None)
        return self.datetime.astimezone(timezone)

    def to_astropy(self) -> Any:
        """This time as an ``astropy.time.Time`` (imports astropy)."""
        import astropy.time

        return astropy.time.Time(self.isot, format="isot", scale="utc")

    # -- arithmetic with durations of any kind
    def __add__(self, other: Any) -> Any:
        seconds = _seconds_of(other)
        if seconds is None:
            return NotImplemented
        return Time.from_unix(self.timestamp() + seconds)

    __radd__ = __add__

    def __sub__(self, other: Any) -> Any:
        if isinstance(other, datetime):
            if other.tzinfo is None:
                other = other.replace(tzinfo=UTC)
            return TimeDelta(seconds=self.timestamp() - other.timestamp())
        to_datetime = getattr(other, "to_datetime", None)
        if callable(to_datetime) and getattr(other, "isot", None) is not None:  # an astropy Time
            return self - Time(other)
        seconds = _seconds_of(other)
        if seconds is None:
            return NotImplemented
        return Time.from_unix(self.timestamp() - seconds)


def now() -> Time:
    return Time.now()


__all__ = ["Time", "TimeDelta", "now"]
