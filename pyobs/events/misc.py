"""Miscellaneous events."""

from __future__ import annotations

from .event import Event


class TestEvent(Event):
    """An event for testing, with an optional ``message``."""

    __test__ = False  # not a pytest test class

    message: str | None = None
