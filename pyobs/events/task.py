"""Events about tasks run by the mastermind."""

from __future__ import annotations

from typing import Any

from pyobs.utils.time import Time

from .event import Event


class TaskStartedEvent(Event):
    """Task ``name`` (scheduler id ``id``) started; ``eta`` is its expected end (ISO on the wire)."""

    name: str
    id: Any = None
    eta: Time | None = None
    obsnum: str | None = None


class TaskFinishedEvent(Event):
    """Task ``name`` finished."""

    name: str
    id: Any = None
    obsnum: str | None = None


class TaskFailedEvent(Event):
    """Task ``name`` failed."""

    name: str
    id: Any = None
    obsnum: str | None = None


class TaskSkippedEvent(Event):
    """Task ``name`` was skipped for ``reason``."""

    name: str
    id: Any = None
    reason: str = ""
