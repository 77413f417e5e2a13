"""Events: the base class and the pyobs event catalogue (§13, all ``version = 1``)."""

from .event import EVENTS, Event, EventFactory, event_by_name, get_registered_event, registered_events
from .image import ExposureStatusChangedEvent, NewImageEvent, NewSpectrumEvent
from .log import LogEvent
from .misc import TestEvent
from .module import ModuleClosedEvent, ModuleOpenedEvent
from .motion import (
    FilterChangedEvent,
    FocusFoundEvent,
    ModeChangedEvent,
    MotionStatusChangedEvent,
    MoveAltAzEvent,
    MoveEvent,
    MoveRaDecEvent,
    OffsetsAltAzEvent,
    OffsetsEvent,
    OffsetsRaDecEvent,
)
from .task import TaskFailedEvent, TaskFinishedEvent, TaskSkippedEvent, TaskStartedEvent
from .weather import BadWeatherEvent, GoodWeatherEvent, RoofClosingEvent, RoofOpenedEvent

__all__ = [
    "EVENTS",
    "BadWeatherEvent",
    "Event",
    "EventFactory",
    "ExposureStatusChangedEvent",
    "FilterChangedEvent",
    "FocusFoundEvent",
    "GoodWeatherEvent",
    "LogEvent",
    "ModeChangedEvent",
    "ModuleClosedEvent",
    "ModuleOpenedEvent",
    "MotionStatusChangedEvent",
    "MoveAltAzEvent",
    "MoveEvent",
    "MoveRaDecEvent",
    "NewImageEvent",
    "NewSpectrumEvent",
    "OffsetsAltAzEvent",
    "OffsetsEvent",
    "OffsetsRaDecEvent",
    "RoofClosingEvent",
    "RoofOpenedEvent",
    "TaskFailedEvent",
    "TaskFinishedEvent",
    "TaskSkippedEvent",
    "TaskStartedEvent",
    "TestEvent",
    "event_by_name",
    "get_registered_event",
    "registered_events",
]
