"""The interface catalogue and its data classes match the wire spec (§10, §11)."""

import dataclasses
import enum
import inspect
import types
import typing
from typing import Any

import pytest

import pyobs.interfaces as ifaces
from pyobs.interfaces import (
    AcquisitionResult,
    AltAzState,
    AutoFocusResult,
    AutoFocusState,
    BinningCapabilities,
    BinningState,
    ConfigCapabilities,
    ConfigValue,
    CoolingState,
    DataSequenceState,
    ExposureTimeState,
    FitsHeaderEntry,
    FocuserState,
    IAbortable,
    IAutoFocus,
    IBinning,
    ICamera,
    IConfig,
    ICooling,
    IData,
    IDataSequence,
    IDome,
    IExposureTime,
    IFitsHeaderBefore,
    IFlatField,
    IFocuser,
    IImageType,
    ImageTypeState,
    IMode,
    IModule,
    IMotion,
    IMultiFiber,
    Interface,
    IOffsetsRaDec,
    IPointingAltAz,
    IPointingRaDec,
    IPushNotifications,
    IReady,
    IRoboticScheduler,
    IRoof,
    IRunning,
    IStartStop,
    ITemperatures,
    IWeather,
    IWindow,
    ModeCapabilities,
    ModeState,
    ModuleCapabilities,
    MotionState,
    MultiFiberCapabilities,
    MultiFiberState,
    OrbitalElements,
    RaDecOffsetState,
    RaDecState,
    RoboticTask,
    SchedulerState,
    WeatherSensorReading,
    WeatherState,
    WindowCapabilities,
    WindowState,
)
from pyobs.interfaces.interface import INTERFACES, interface_methods, own_methods
from pyobs.utils.casting import cast, dataclass_fields
from pyobs.utils.enums import (
    ExposureStatus,
    ImageType,
    MotionStatus,
    PushNotificationType,
    Unit,
    WeatherSensors,
)
from pyobs.utils.time import Time

E = inspect.Parameter.empty

# every interface of §10
ALL_INTERFACES = [
    "IModule", "IConfig", "IStructuredConfig", "IAbortable", "IRunning", "IStartStop", "IRunnable",
    "IAutonomous", "IReady", "IMotion", "ITelescope", "IRoof", "IDome", "IPointingRaDec", "IPointingAltAz",
    "IOffsetsRaDec", "IOffsetsAltAz", "IPointingBody", "IPointingOrbitalElements", "IPointingHelioprojective",
    "IPointingHeliographicStonyhurst", "IPointingHeliocentricPolar", "IPointingSeries", "ISyncTarget",
    "ITrackingMode", "ITrackingRate", "IRotation", "IFocuser", "IFocusModel", "IAutoFocus", "IFilters",
    "IData", "ICamera", "ISpectrograph", "IVideo", "IExposure", "IExposureTime", "IImageType", "IImageFormat",
    "IBinning", "IWindow", "IGain", "ITemperatures", "ICooling", "IDataSequence", "IDataStack",
    "IDataPipeline", "IResettable", "IMultiFiber", "IMode", "IFitsHeaderBefore", "IFitsHeaderAfter",
    "IWeather", "IAcquisition", "IAutoGuiding", "ICalibrate", "IFlatField", "IScriptRunner", "IRobotic",
    "IRoboticScheduler", "IPushNotifications",
]  # fmt: skip

Sig = tuple[list[tuple[str, Any, Any]], Any]  # [(name, type, default)], return type

# interface -> (bases, {own method: signature}, all method names incl. bases, state class, capabilities class)
CATALOG: list[tuple[type[Interface], tuple[type, ...], dict[str, Sig], set[str], Any, Any]] = [
    (
        IModule,
        (Interface,),
        {"reset_error": ([], bool), "get_permitted_methods": ([], list[str])},
        {"reset_error", "get_permitted_methods"},
        None,
        ModuleCapabilities,
    ),
    (
        IConfig,
        (Interface,),
        {
            "get_config_value": ([("name", str, E)], ConfigValue),
            "set_config_value": ([("name", str, E), ("value", ConfigValue, E)], None),
        },
        {"get_config_value", "set_config_value"},
        None,
        ConfigCapabilities,
    ),
    (
        IMotion,
        (IReady,),
        {"init": ([], None), "park": ([], None), "stop_motion": ([("device", str | None, None)], None)},
        {"init", "park", "stop_motion"},
        MotionState,
        None,
    ),
    (
        IFocuser,
        (IMotion,),
        {
            "set_focus": ([("focus", float, E)], None),
            "set_focus_offset": ([("offset", float, E)], None),
        },
        {"init", "park", "stop_motion", "set_focus", "set_focus_offset"},
        FocuserState,
        None,
    ),
    (
        IPointingRaDec,
        (Interface,),
        {"move_radec": ([("ra", float, E), ("dec", float, E)], None)},
        {"move_radec"},
        RaDecState,
        None,
    ),
    (
        IPointingAltAz,
        (Interface,),
        {"move_altaz": ([("alt", float, E), ("az", float, E)], None)},
        {"move_altaz"},
        AltAzState,
        None,
    ),
    (
        IOffsetsRaDec,
        (Interface,),
        {"set_offsets_radec": ([("dra", float, E), ("ddec", float, E)], None)},
        {"set_offsets_radec"},
        RaDecOffsetState,
        None,
    ),
    (ICamera, (IData,), {}, {"grab_data"}, None, None),
    (IData, (Interface,), {"grab_data": ([("broadcast", bool, True)], str)}, {"grab_data"}, None, None),
    (
        IExposureTime,
        (Interface,),
        {"set_exposure_time": ([("exposure_time", float, E)], None)},
        {"set_exposure_time"},
        ExposureTimeState,
        None,
    ),
    (
        IImageType,
        (Interface,),
        {"set_image_type": ([("image_type", ImageType, E)], None)},
        {"set_image_type"},
        ImageTypeState,
        None,
    ),
    (
        IBinning,
        (Interface,),
        {"set_binning": ([("x", int, E), ("y", int, E)], None)},
        {"set_binning"},
        BinningState,
        BinningCapabilities,
    ),
    (
        IWindow,
        (Interface,),
        {"set_window": ([("left", int, E), ("top", int, E), ("width", int, E), ("height", int, E)], None)},
        {"set_window"},
        WindowState,
        WindowCapabilities,
    ),
    (
        ICooling,
        (ITemperatures,),
        {"set_cooling": ([("enabled", bool, E), ("setpoint", float, E)], None)},
        {"set_cooling"},
        CoolingState,
        None,
    ),
    (
        IDataSequence,
        (IAbortable,),
        {
            "grab_sequence": ([("count", int, E), ("broadcast", bool, True), ("delay", float, 0)], None),
            "abort_sequence": ([], None),
        },
        {"abort", "grab_sequence", "abort_sequence"},
        DataSequenceState,
        None,
    ),
    (
        IAutoFocus,
        (IRunning, IAbortable),
        {
            "auto_focus": (
                [("count", int, E), ("step", float, E), ("exposure_time", float, E)],
                AutoFocusResult,
            )
        },
        {"abort", "auto_focus"},
        AutoFocusState,
        None,
    ),
    (
        IWeather,
        (IStartStop,),
        {
            "get_sensor_value": (
                [("station", str, E), ("sensor", WeatherSensors, E)],
                WeatherSensorReading,
            )
        },
        {"start", "stop", "get_sensor_value"},
        WeatherState,
        None,
    ),
    (
        IFitsHeaderBefore,
        (Interface,),
        {
            "get_fits_header_before": (
                [("namespaces", list[str] | None, None)],
                dict[str, FitsHeaderEntry],
            )
        },
        {"get_fits_header_before"},
        None,
        None,
    ),
    (IRoof, (IMotion,), {}, {"init", "park", "stop_motion"}, None, None),
    (IDome, (IRoof, IPointingAltAz), {}, {"init", "park", "stop_motion", "move_altaz"}, None, None),
    (
        IFlatField,
        (IAbortable,),
        {"flat_field": ([("count", int, 20)], tuple[int, float])},
        {"abort", "flat_field"},
        None,
        None,
    ),
    (
        IRoboticScheduler,
        (IStartStop,),
        {"get_schedule": ([("limit", int, 20)], list[RoboticTask])},
        {"start", "stop", "get_schedule"},
        SchedulerState,
        None,
    ),
    (
        IPushNotifications,
        (Interface,),
        {
            "register_push_device": ([("token", str, E), ("platform", str, "android")], None),
            "get_push_preferences": ([], list[PushNotificationType]),
            "set_push_preferences": ([("types", list[PushNotificationType], E)], None),
        },
        {"register_push_device", "get_push_preferences", "set_push_preferences"},
        None,
        None,
    ),
    (
        IMultiFiber,
        (Interface,),
        {"abort": ([], None), "set_fiber": ([("fiber", str, E)], None)},
        {"abort", "set_fiber"},
        MultiFiberState,
        MultiFiberCapabilities,
    ),
    (
        IMode,
        (Interface,),
        {"set_mode": ([("mode", str, E), ("group", str, "")], None)},
        {"set_mode"},
        ModeState,
        ModeCapabilities,
    ),
]


def _norm_return(tp: Any) -> Any:
    return None if tp is type(None) else tp


@pytest.mark.parametrize("row", CATALOG, ids=lambda r: r[0].__name__)
def test_interface_declaration(row: Any) -> None:
    iface, bases, own, all_names, state, caps = row
    assert iface.__bases__ == bases
    assert iface.version == 1
    assert INTERFACES[iface.__name__] is iface

    assert set(own_methods(iface)) == set(own)
    assert set(interface_methods(iface)) == all_names
    for name, (params, ret) in own.items():
        spec = own_methods(iface)[name]
        got = [(p.name, p.annotation, p.default) for p in spec.params]
        assert got == params, name
        for (_, _, got_default), (_, _, want_default) in zip(got, params, strict=True):
            assert type(got_default) is type(want_default) or isinstance(got_default, float), name
        assert _norm_return(spec.returns) == ret, name
        assert inspect.iscoroutinefunction(getattr(iface, name)), name

    assert iface.own_state_class() is state
    assert iface.own_capabilities_class() is caps


def test_inherited_state_is_not_declared() -> None:
    # IStartStop and IRoof only inherit state, IDome too
    assert ifaces.IStartStop.own_state_class() is None
    assert ifaces.IStartStop.state_class is ifaces.RunningState
    assert IRoof.own_state_class() is None
    assert IDome.own_state_class() is None
    assert ICamera.own_capabilities_class() is None


def test_every_interface_registered_and_exported() -> None:
    assert len(ALL_INTERFACES) == 61
    for name in ALL_INTERFACES:
        assert name in INTERFACES, name
        assert getattr(ifaces, name) is INTERFACES[name]
        assert name in ifaces.__all__
        cls = INTERFACES[name]
        assert cls.version == 1
        # method table resolves for every interface; all methods async and abstract
        for spec in interface_methods(cls).values():
            func = getattr(cls, spec.name)
            assert getattr(func, "__isabstractmethod__", False)
            assert inspect.iscoroutinefunction(func)
            # **kwargs is accepted (caller context) but never a parameter
            sig = inspect.signature(func)
            assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
    # and no extra built-in interfaces beyond §10
    builtin = {n for n, c in INTERFACES.items() if c.__module__.startswith("pyobs.interfaces.")}
    assert builtin == set(ALL_INTERFACES)


def test_interfaces_cannot_be_instantiated() -> None:
    with pytest.raises(TypeError):
        IFocuser()  # type: ignore[abstract]


def _dataclasses() -> list[type]:
    return [getattr(ifaces, n) for n in ifaces.__all__ if dataclasses.is_dataclass(getattr(ifaces, n))]


def _state_classes() -> list[type]:
    return [c for c in _dataclasses() if c.__name__.endswith("State")] + [WeatherSensorReading]


def _dummy(tp: Any) -> Any:
    """A value for a required field."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return None if type(None) in typing.get_args(tp) else _dummy(typing.get_args(tp)[0])
    if origin is list:
        return []
    if origin is dict:
        return {}
    if tp is bool:
        return True
    if tp is int:
        return 1
    if tp is float:
        return 1.5
    if tp is str:
        return "x"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return next(iter(tp))
    return object()


def test_state_classes() -> None:
    states = _state_classes()
    assert len(states) == 38  # 37 declared in §10 + WeatherSensorReading
    for cls in states:
        fields = dataclasses.fields(cls)
        assert fields[-1].name == "time", cls.__name__
        hints = typing.get_type_hints(cls)
        assert hints["time"] is Time, cls.__name__
        kwargs = {n: _dummy(t) for n, t, required in dataclass_fields(cls) if required}
        before = Time.now()
        obj = cls(**kwargs)
        assert isinstance(obj.time, Time)
        assert obj.time >= before
        assert obj.time.tzinfo is not None


def test_every_declared_state_and_caps_is_exported_dataclass() -> None:
    for name in ALL_INTERFACES:
        cls = INTERFACES[name]
        for dc in (cls.own_state_class(), cls.own_capabilities_class()):
            if dc is not None:
                assert dataclasses.is_dataclass(dc)
                assert getattr(ifaces, dc.__name__) is dc
                dataclass_fields(dc)  # annotations resolve
                if dc is cls.own_state_class():
                    assert dataclasses.fields(dc)[-1].name == "time"


def _field_spec(cls: type) -> list[tuple[str, Any, Any]]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            d: Any = f.default
        elif f.default_factory is not dataclasses.MISSING:
            d = "factory"
        else:
            d = E
        out.append((f.name, hints[f.name], d))
    return out


def test_selected_data_class_fields() -> None:
    F = "factory"
    assert _field_spec(MotionState) == [
        ("status", MotionStatus, E),
        ("devices", list[ifaces.DeviceMotionStatus], F),
        ("time", Time, F),
    ]
    assert _field_spec(CoolingState) == [
        ("setpoint", float | None, E),
        ("power", int | None, E),
        ("enabled", bool, E),
        ("time", Time, F),
    ]
    assert _field_spec(ifaces.ExposureState) == [
        ("status", ExposureStatus, E),
        ("progress", float, E),
        ("exposure_time_left", float, 0.0),
        ("time", Time, F),
    ]
    assert _field_spec(ifaces.ModuleLocation) == [
        ("longitude", float, 0.0),
        ("latitude", float, 0.0),
        ("elevation", float, 0.0),
        ("timezone", str, "utc"),
    ]
    assert _field_spec(ifaces.ConfigFieldSchema) == [
        ("type", str, E),
        ("unit", Unit | None, None),
        ("options", list[str] | None, None),
        ("default", Any, None),
        ("nested", dict[str, ifaces.ConfigFieldSchema] | None, None),
        ("level", int, 0),
        ("description", str | None, None),
        ("choices", list[ifaces.ConfigChoice] | None, None),
    ]
    assert _field_spec(OrbitalElements) == [
        ("epoch", Time, E),
        ("semi_major_axis", float, E),
        ("eccentricity", float, E),
        ("inclination", float, E),
        ("longitude_ascending_node", float, E),
        ("argument_of_periapsis", float, E),
        ("mean_anomaly", float | None, None),
        ("perihelion_time", Time | None, None),
    ]
    assert _field_spec(AcquisitionResult)[0] == ("time", Time, E)
    assert [n for n, _, _ in _field_spec(RoboticTask)] == [
        "id", "name", "target", "start", "end", "obsnum", "state", "priority",
    ]  # fmt: skip
    assert _field_spec(FitsHeaderEntry) == [("value", int | float | str | None, E), ("comment", str, E)]
    assert _field_spec(WeatherSensorReading) == [
        ("sensor", WeatherSensors, E),
        ("value", float, E),
        ("unit", str, E),
        ("time", Time, F),
    ]
    assert _field_spec(ifaces.WindowCapabilities) == [
        ("full_frame_x", int, 0),
        ("full_frame_y", int, 0),
        ("full_frame_width", int, 0),
        ("full_frame_height", int, 0),
    ]
    assert _field_spec(ifaces.ConfigCapabilities) == [("caps", dict[str, tuple[bool, bool, bool]], F)]


def test_default_factories_are_not_shared() -> None:
    a, b = MotionState(MotionStatus.IDLE), MotionState(MotionStatus.IDLE)
    a.devices.append(ifaces.DeviceMotionStatus("dome", MotionStatus.TRACKING))
    assert b.devices == []


def test_nested_data_classes_cast_from_plain() -> None:
    state = cast(
        {
            "status": "tracking",
            "devices": [{"name": "dome", "status": "parked"}],
            "time": "2026-01-01T00:00:00.000",
        },
        MotionState,
    )
    assert state == MotionState(
        MotionStatus.TRACKING,
        [ifaces.DeviceMotionStatus("dome", MotionStatus.PARKED)],
        Time.parse("2026-01-01T00:00:00"),
    )
    schema = cast({"type": "dict", "nested": {"a": {"type": "int", "level": 1}}}, ifaces.ConfigFieldSchema)
    assert schema.nested is not None and schema.nested["a"].level == 1
    assert cast({"x": 2, "y": 2}, ifaces.Binning) == ifaces.Binning(2, 2)
    assert cast(None, ifaces.ModuleCapabilities | None) is None
    assert cast({"image_type": "object"}, ImageTypeState).image_type is ImageType.OBJECT
