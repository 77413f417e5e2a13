"""A small UTC time type, so the comm core needs no astropy."""

from __future__ import annotations

import time as _time
from datetime import UTC, datetime
from typing import Any


class Time(datetime):
    """A timezone-aware UTC datetime whose wire form is ISO 8601 (``2026-01-01T00:00:00.000``)."""

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
        return cls(dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second, dt.microsecond, tzinfo=UTC)

    @property
    def isot(self) -> str:
        """ISO string with millisecond precision, no offset (the pyobs wire form)."""
        return self.strftime("%Y-%m-%dT%H:%M:%S.") + f"{self.microsecond // 1000:03d}"

    @property
    def unix(self) -> float:
        return self.timestamp()


def now() -> Time:
    return Time.now()
