"""The event catalogue of xmpp-wire.md §13: names, constructor signatures, and the §9.1 ``data`` form."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import json
from datetime import UTC
from typing import Any

import pytest

import pyobs.events as events_pkg
from pyobs.events import (
    EVENTS,
    BadWeatherEvent,
    Event,
    ExposureStatusChangedEvent,
    FilterChangedEvent,
    FocusFoundEvent,
    GoodWeatherEvent,
    LogEvent,
    ModeChangedEvent,
    ModuleClosedEvent,
    ModuleOpenedEvent,
    MotionStatusChangedEvent,
    MoveAltAzEvent,
    MoveEvent,
    MoveRaDecEvent,
    NewImageEvent,
    NewSpectrumEvent,
    OffsetsAltAzEvent,
    OffsetsEvent,
    OffsetsRaDecEvent,
    RoofClosingEvent,
    RoofOpenedEvent,
    TaskFailedEvent,
    TaskFinishedEvent,
    TaskSkippedEvent,
    TaskStartedEvent,
    TestEvent,
    event_by_name,
)
from pyobs.utils.enums import ExposureStatus, ImageType, MotionStatus
from pyobs.utils.time import Time

REQ = inspect.Parameter.empty
T1 = Time(2026, 8, 10, 21, 30, 15, 123000, tzinfo=UTC)
T1_ISO = "2026-08-10T21:30:15.123"

# §13: event -> data keys in order (all always present)
SPEC_KEYS: dict[str, list[str]] = {
    "LogEvent": ["time", "level", "filename", "function", "line", "message", "sender"],
    "NewImageEvent": ["filename", "image_type", "raw"],
    "NewSpectrumEvent": ["filename"],
    "ExposureStatusChangedEvent": ["current", "last"],
    "MotionStatusChangedEvent": ["status", "interfaces"],
    "FilterChangedEvent": ["current"],
    "FocusFoundEvent": ["focus", "error", "filter_name"],
    "ModeChangedEvent": ["group", "current"],
    "MoveRaDecEvent": ["ra", "dec"],
    "MoveAltAzEvent": ["alt", "az"],
    "OffsetsRaDecEvent": ["ra", "dec"],
    "OffsetsAltAzEvent": ["alt", "az"],
    "GoodWeatherEvent": ["eta"],
    "BadWeatherEvent": [],
    "RoofOpenedEvent": [],
    "RoofClosingEvent": [],
    "TaskStartedEvent": ["name", "id", "eta", "obsnum"],
    "TaskFinishedEvent": ["name", "id", "obsnum"],
    "TaskFailedEvent": ["name", "id", "obsnum"],
    "TaskSkippedEvent": ["name", "id", "reason"],
    "TestEvent": ["message"],
}

# constructor signatures as pyobs users know them: (name, default or REQ)
SIGNATURES: dict[type[Event], list[tuple[str, Any]]] = {
    LogEvent: [
        ("time", REQ),
        ("level", REQ),
        ("filename", REQ),
        ("function", REQ),
        ("line", REQ),
        ("message", REQ),
        ("sender", ""),
    ],
    NewImageEvent: [("filename", REQ), ("image_type", None), ("raw", None)],
    NewSpectrumEvent: [("filename", REQ)],
    ExposureStatusChangedEvent: [("current", REQ), ("last", None)],
    MotionStatusChangedEvent: [("status", REQ), ("interfaces", "factory")],
    FilterChangedEvent: [("current", REQ)],
    FocusFoundEvent: [("focus", REQ), ("error", None), ("filter_name", None)],
    ModeChangedEvent: [("group", REQ), ("current", REQ)],
    MoveEvent: [],
    MoveRaDecEvent: [("ra", REQ), ("dec", REQ)],
    MoveAltAzEvent: [("alt", REQ), ("az", REQ)],
    OffsetsEvent: [],
    OffsetsRaDecEvent: [("ra", REQ), ("dec", REQ)],
    OffsetsAltAzEvent: [("alt", REQ), ("az", REQ)],
    GoodWeatherEvent: [("eta", None)],
    BadWeatherEvent: [],
    RoofOpenedEvent: [],
    RoofClosingEvent: [],
    TaskStartedEvent: [("name", REQ), ("id", None), ("eta", None), ("obsnum", None)],
    TaskFinishedEvent: [("name", REQ), ("id", None), ("obsnum", None)],
    TaskFailedEvent: [("name", REQ), ("id", None), ("obsnum", None)],
    TaskSkippedEvent: [("name", REQ), ("id", None), ("reason", "")],
    TestEvent: [("message", None)],
    ModuleOpenedEvent: [("module", None)],
    ModuleClosedEvent: [("module", None)],
}

# one fully populated instance per wire event, with its expected §9.1 "data"
SAMPLES: list[tuple[Event, dict[str, Any]]] = [
    (
        LogEvent("2026-08-10T21:30:15.123456", "WARNING", "camera.py", "expose", 42, "hot <&>", "camera"),
        {
            "time": "2026-08-10T21:30:15.123456",
            "level": "WARNING",
            "filename": "camera.py",
            "function": "expose",
            "line": 42,
            "message": "hot <&>",
            "sender": "camera",
        },
    ),
    (
        NewImageEvent("/cache/img.fits.gz", ImageType.OBJECT, "/cache/raw.fits.gz"),
        {"filename": "/cache/img.fits.gz", "image_type": "object", "raw": "/cache/raw.fits.gz"},
    ),
    (NewImageEvent("/cache/a.fits"), {"filename": "/cache/a.fits", "image_type": None, "raw": None}),
    (NewSpectrumEvent("/cache/spec.fits"), {"filename": "/cache/spec.fits"}),
    (
        ExposureStatusChangedEvent(ExposureStatus.READOUT, ExposureStatus.EXPOSING),
        {"current": "readout", "last": "exposing"},
    ),
    (ExposureStatusChangedEvent(ExposureStatus.IDLE), {"current": "idle", "last": None}),
    (
        MotionStatusChangedEvent(
            MotionStatus.SLEWING, {"ITelescope": MotionStatus.SLEWING, "IFocuser": MotionStatus.POSITIONED}
        ),
        {"status": "slewing", "interfaces": {"ITelescope": "slewing", "IFocuser": "positioned"}},
    ),
    (MotionStatusChangedEvent(MotionStatus.PARKED), {"status": "parked", "interfaces": {}}),
    (FilterChangedEvent("Red"), {"current": "Red"}),
    (FocusFoundEvent(41.5, 0.25, "Clear"), {"focus": 41.5, "error": 0.25, "filter_name": "Clear"}),
    (FocusFoundEvent(41.5), {"focus": 41.5, "error": None, "filter_name": None}),
    (ModeChangedEvent("binning", "2x2"), {"group": "binning", "current": "2x2"}),
    (MoveRaDecEvent(83.5, -5.25), {"ra": 83.5, "dec": -5.25}),
    (MoveAltAzEvent(60.0, 180.0), {"alt": 60.0, "az": 180.0}),
    (OffsetsRaDecEvent(0.001, -0.002), {"ra": 0.001, "dec": -0.002}),
    (OffsetsAltAzEvent(-0.003, 0.004), {"alt": -0.003, "az": 0.004}),
    (GoodWeatherEvent(T1), {"eta": T1_ISO}),
    (GoodWeatherEvent(), {"eta": None}),
    (BadWeatherEvent(), {}),
    (RoofOpenedEvent(), {}),
    (RoofClosingEvent(), {}),
    (
        TaskStartedEvent("flats", {"request": 7, "block": [1, 2]}, T1, "20260810-001"),
        {"name": "flats", "id": {"request": 7, "block": [1, 2]}, "eta": T1_ISO, "obsnum": "20260810-001"},
    ),
    (TaskStartedEvent("focus"), {"name": "focus", "id": None, "eta": None, "obsnum": None}),
    (TaskFinishedEvent("flats", 17, "20260810-001"), {"name": "flats", "id": 17, "obsnum": "20260810-001"}),
    (TaskFailedEvent("flats", "abc", None), {"name": "flats", "id": "abc", "obsnum": None}),
    (TaskSkippedEvent("flats", 17, "bad weather"), {"name": "flats", "id": 17, "reason": "bad weather"}),
    (TestEvent("hello"), {"message": "hello"}),
    (TestEvent(), {"message": None}),
]


def _ids(samples: list[tuple[Event, dict[str, Any]]]) -> list[str]:
    return [f"{e.type}-{i}" for i, (e, _) in enumerate(samples)]


def _payload(name: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": name,
        "timestamp": 1767225600.5,
        "uuid": "c0ffee00-0000-4000-8000-000000000000",
        "data": data,
    }


# ---------------------------------------------------------------- catalogue and signatures


def test_catalogue_is_exported_and_registered() -> None:
    exported = {n for n in events_pkg.__all__ if isinstance(getattr(events_pkg, n), type)} - {"EventFactory"}
    expected = set(SPEC_KEYS) | {
        "Event",
        "MoveEvent",
        "OffsetsEvent",
        "ModuleOpenedEvent",
        "ModuleClosedEvent",
    }
    assert exported == expected
    for name in expected - {"Event"}:
        cls = getattr(events_pkg, name)
        assert issubclass(cls, Event)
        assert EVENTS[name] is cls
        assert cls.version == 1
        assert event_by_name(name, 1) is cls
        assert event_by_name(name, 2) is None
    assert event_by_name("NoSuchEvent") is None


def test_every_catalogue_event_has_a_signature_and_sample() -> None:
    assert {c.__name__ for c in SIGNATURES} == set(SPEC_KEYS) | {
        "MoveEvent",
        "OffsetsEvent",
        "ModuleOpenedEvent",
        "ModuleClosedEvent",
    }
    assert {e.type for e, _ in SAMPLES} == set(SPEC_KEYS)


@pytest.mark.parametrize("cls", list(SIGNATURES), ids=lambda c: c.__name__)
def test_constructor_signature(cls: type[Event]) -> None:
    params = list(inspect.signature(cls).parameters.values())
    assert [p.name for p in params] == [n for n, _ in SIGNATURES[cls]]
    for p, (name, default) in zip(params, SIGNATURES[cls], strict=True):
        assert p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD, name
        if default == "factory":
            assert p.default is not REQ, name
        else:
            assert p.default == default, name
            if default is not REQ:
                assert type(p.default) is type(default), name


def test_keyword_construction() -> None:
    e = ExposureStatusChangedEvent(current=ExposureStatus.EXPOSING, last=ExposureStatus.IDLE)
    assert e.current is ExposureStatus.EXPOSING and e.last is ExposureStatus.IDLE
    t = TaskStartedEvent(name="x", id=3, eta=T1, obsnum="n")
    assert (t.name, t.id, t.eta, t.obsnum) == ("x", 3, T1, "n")


def test_motion_interfaces_default_is_not_shared() -> None:
    a = MotionStatusChangedEvent(MotionStatus.IDLE)
    b = MotionStatusChangedEvent(MotionStatus.IDLE)
    assert a.interfaces == {} and b.interfaces == {}
    a.interfaces["ITelescope"] = MotionStatus.SLEWING
    assert b.interfaces == {}


def test_abstract_bases() -> None:
    assert issubclass(MoveRaDecEvent, MoveEvent) and issubclass(MoveAltAzEvent, MoveEvent)
    assert issubclass(OffsetsRaDecEvent, OffsetsEvent) and issubclass(OffsetsAltAzEvent, OffsetsEvent)
    assert not issubclass(OffsetsRaDecEvent, MoveEvent)
    assert MoveEvent().data == {} and OffsetsEvent().data == {}
    # decoding via a base accepts its subclasses only
    payload = MoveRaDecEvent(1.0, 2.0).to_dict()
    assert isinstance(MoveEvent.from_dict(payload), MoveRaDecEvent)
    with pytest.raises(ValueError, match=r"MoveRaDecEvent.*OffsetsEvent"):
        OffsetsEvent.from_dict(payload)


def test_local_events() -> None:
    for cls in (ModuleOpenedEvent, ModuleClosedEvent):
        assert cls.local is True
        e = cls("camera")
        assert e.module == "camera" and e.data == {"module": "camera"}
        assert cls().module is None
    for name in SPEC_KEYS:
        assert EVENTS[name].local is False, name
    assert MoveEvent.local is False and OffsetsEvent.local is False


# ---------------------------------------------------------------- wire form (§9.1)


@pytest.mark.parametrize(("event", "data"), SAMPLES, ids=_ids(SAMPLES))
def test_data_keys_match_spec(event: Event, data: dict[str, Any]) -> None:
    d = event.to_dict()
    assert list(d["data"]) == SPEC_KEYS[event.type]
    assert list(data) == SPEC_KEYS[event.type]  # the sample itself follows §13


@pytest.mark.parametrize(("event", "data"), SAMPLES, ids=_ids(SAMPLES))
def test_to_dict_wire_form(event: Event, data: dict[str, Any]) -> None:
    d = event.to_dict()
    assert set(d) == {"type", "timestamp", "uuid", "data"}
    assert d["type"] == type(event).__name__
    assert isinstance(d["timestamp"], float) and isinstance(d["uuid"], str) and len(d["uuid"]) == 36
    assert d["data"] == data
    # enums travel as plain strings, times as ISO strings
    for key, value in d["data"].items():
        if isinstance(value, str):
            assert type(value) is str, key
        if isinstance(value, dict):
            assert all(type(v) is str or not isinstance(v, str) for v in value.values()), key
    # JSON-able as is
    assert json.loads(json.dumps(d)) == d


@pytest.mark.parametrize(("event", "data"), SAMPLES, ids=_ids(SAMPLES))
def test_round_trip(event: Event, data: dict[str, Any]) -> None:
    d = json.loads(json.dumps(event.to_dict()))
    back = Event.from_dict(d)
    assert type(back) is type(event)
    assert back == event
    assert back.data == event.data == data
    assert back.uuid == event.uuid and back.timestamp == event.timestamp
    # the specific class decodes it too
    assert type(event).from_dict(d) == event


def test_decoded_types() -> None:
    e = Event.from_dict(ExposureStatusChangedEvent(ExposureStatus.READOUT, ExposureStatus.EXPOSING).to_dict())
    assert isinstance(e, ExposureStatusChangedEvent)
    assert type(e.current) is ExposureStatus and e.current is ExposureStatus.READOUT
    assert type(e.last) is ExposureStatus

    m = Event.from_dict(
        _payload("MotionStatusChangedEvent", {"status": "slewing", "interfaces": {"ITelescope": "slewing"}})
    )
    assert isinstance(m, MotionStatusChangedEvent)
    assert m.status is MotionStatus.SLEWING and m.interfaces == {"ITelescope": MotionStatus.SLEWING}
    assert type(m.interfaces["ITelescope"]) is MotionStatus

    n = Event.from_dict(
        _payload("NewImageEvent", {"filename": "/cache/img.fits.gz", "image_type": "object", "raw": None})
    )
    assert isinstance(n, NewImageEvent) and n.image_type is ImageType.OBJECT and n.raw is None
    assert n.uuid == "c0ffee00-0000-4000-8000-000000000000" and n.timestamp == 1767225600.5

    g = Event.from_dict(_payload("GoodWeatherEvent", {"eta": T1_ISO}))
    assert isinstance(g, GoodWeatherEvent) and isinstance(g.eta, Time) and g.eta == T1

    t = Event.from_dict(
        _payload("TaskStartedEvent", {"name": "x", "id": [1, "a"], "eta": T1_ISO, "obsnum": None})
    )
    assert isinstance(t, TaskStartedEvent) and t.id == [1, "a"] and t.eta == T1

    f = Event.from_dict(_payload("FocusFoundEvent", {"focus": 41, "error": None, "filter_name": None}))
    assert isinstance(f, FocusFoundEvent) and f.focus == 41.0 and type(f.focus) is float


def test_unknown_keys_are_ignored() -> None:
    e = Event.from_dict(_payload("FilterChangedEvent", {"current": "Red", "extra": 1}))
    assert e == FilterChangedEvent("Red")


def test_missing_timestamp_counts_as_zero() -> None:
    d = FilterChangedEvent("Red").to_dict()
    del d["timestamp"]
    assert Event.from_dict(d).timestamp == 0.0


def test_missing_uuid_is_an_error() -> None:
    d = FilterChangedEvent("Red").to_dict()
    del d["uuid"]
    with pytest.raises(ValueError, match="FilterChangedEvent"):
        Event.from_dict(d)


def test_unknown_type_is_an_error() -> None:
    with pytest.raises(ValueError, match="NoSuchEvent"):
        Event.from_dict(_payload("NoSuchEvent", {}))
    with pytest.raises(ValueError):
        Event.from_dict({"timestamp": 1.0, "uuid": "x", "data": {}})


INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("ExposureStatusChangedEvent", {"current": "bogus", "last": None}, "current"),
    ("ExposureStatusChangedEvent", {"current": "idle", "last": "bogus"}, "last"),
    ("NewImageEvent", {"filename": "/a.fits", "image_type": "science", "raw": None}, "image_type"),
    ("NewImageEvent", {"filename": 5, "image_type": None, "raw": None}, "filename"),
    ("NewSpectrumEvent", {"filename": None}, "filename"),
    ("MotionStatusChangedEvent", {"status": "flying", "interfaces": {}}, "status"),
    ("MotionStatusChangedEvent", {"status": "idle", "interfaces": {"ITelescope": "flying"}}, "interfaces"),
    ("GoodWeatherEvent", {"eta": "not a time"}, "eta"),
    ("TaskStartedEvent", {"name": 7, "id": None, "eta": None, "obsnum": None}, "name"),
    ("TaskStartedEvent", {"name": "x", "id": None, "eta": "soon", "obsnum": None}, "eta"),
    ("FocusFoundEvent", {"focus": "far", "error": None, "filter_name": None}, "focus"),
    ("LogEvent", dict.fromkeys(SPEC_KEYS["LogEvent"], "x"), "line"),
]


@pytest.mark.parametrize(("name", "data", "field"), INVALID, ids=[f"{n}.{f}" for n, _, f in INVALID])
def test_invalid_value_is_an_error(name: str, data: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=rf"{name}\.{field}"):
        Event.from_dict(_payload(name, data))


# required keys per §13 (no |null, no default)
REQUIRED: dict[str, list[str]] = {
    "LogEvent": ["time", "level", "filename", "function", "line", "message"],
    "NewImageEvent": ["filename"],
    "NewSpectrumEvent": ["filename"],
    "ExposureStatusChangedEvent": ["current"],
    "MotionStatusChangedEvent": ["status"],
    "FilterChangedEvent": ["current"],
    "FocusFoundEvent": ["focus"],
    "ModeChangedEvent": ["group", "current"],
    "MoveRaDecEvent": ["ra", "dec"],
    "MoveAltAzEvent": ["alt", "az"],
    "OffsetsRaDecEvent": ["ra", "dec"],
    "OffsetsAltAzEvent": ["alt", "az"],
    "TaskStartedEvent": ["name"],
    "TaskFinishedEvent": ["name"],
    "TaskFailedEvent": ["name"],
    "TaskSkippedEvent": ["name"],
}
MISSING = [(n, k) for n, keys in REQUIRED.items() for k in keys]


@pytest.mark.parametrize(("name", "key"), MISSING, ids=[f"{n}.{k}" for n, k in MISSING])
def test_missing_required_key_is_an_error(name: str, key: str) -> None:
    sample = next(d for e, d in SAMPLES if e.type == name)
    data = copy.deepcopy(sample)
    del data[key]
    with pytest.raises(ValueError, match=rf"{name}.*{key}"):
        Event.from_dict(_payload(name, data))


def test_optional_keys_may_be_missing() -> None:
    e = Event.from_dict(_payload("NewImageEvent", {"filename": "/a.fits"}))
    assert e == NewImageEvent("/a.fits")
    assert Event.from_dict(_payload("GoodWeatherEvent", {})) == GoodWeatherEvent()
    assert Event.from_dict(_payload("BadWeatherEvent", {})) == BadWeatherEvent()


# ---------------------------------------------------------------- user-defined events


class FilterWheelJammedEvent(Event):
    wheel: str
    status: MotionStatus
    position: int | None = None
    since: Time | None = None
    slots: list[str] = dataclasses.field(default_factory=list)


def test_user_event_round_trips() -> None:
    assert EVENTS["FilterWheelJammedEvent"] is FilterWheelJammedEvent
    assert FilterWheelJammedEvent.version == 1 and FilterWheelJammedEvent.local is False
    params = inspect.signature(FilterWheelJammedEvent).parameters
    assert list(params) == ["wheel", "status", "position", "since", "slots"]
    e = FilterWheelJammedEvent("fw1", MotionStatus.ERROR, 3, T1, ["R", "G"])
    d = e.to_dict()
    assert d["type"] == "FilterWheelJammedEvent"
    assert d["data"] == {
        "wheel": "fw1",
        "status": "error",
        "position": 3,
        "since": T1_ISO,
        "slots": ["R", "G"],
    }
    back = Event.from_dict(json.loads(json.dumps(d)))
    assert isinstance(back, FilterWheelJammedEvent) and back == e
    assert back.status is MotionStatus.ERROR and back.since == T1
    with pytest.raises(ValueError, match=r"FilterWheelJammedEvent.*status"):
        Event.from_dict(_payload("FilterWheelJammedEvent", {"wheel": "fw1"}))
    with pytest.raises(ValueError, match=r"FilterWheelJammedEvent\.status"):
        Event.from_dict(_payload("FilterWheelJammedEvent", {"wheel": "fw1", "status": "stuck"}))


def test_user_event_without_fields() -> None:
    class PingEvent(Event):
        pass

    e = PingEvent()
    assert e.data == {}
    assert Event.from_dict(e.to_dict()) == e


def test_type_checkers_see_event_subclasses_as_dataclasses() -> None:
    # without this, mypy thinks every event constructor takes no arguments
    assert "field_specifiers" in getattr(Event, "__dataclass_transform__", {})
