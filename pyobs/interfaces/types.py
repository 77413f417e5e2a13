"""Data classes of the interface catalogue: states, capabilities and structured values.

Field order is the wire order. Every state class (``...State`` and :class:`WeatherSensorReading`) ends
with ``time``, the moment the value was valid. Units are given in comments.

No ``from __future__ import annotations`` here on purpose: ``dataclasses.fields(...)[i].type`` holds real
types (except the self reference in :class:`ConfigFieldSchema`), and ``typing.get_type_hints`` resolves
everything against this module's globals.
"""

from dataclasses import dataclass, field
from typing import Any, TypeAlias

from pyobs.utils.enums import (
    ExposureStatus,
    ImageFormat,
    ImageType,
    MotionStatus,
    OffsetFrame,
    TrackingMode,
    Unit,
    WeatherSensors,
)
from pyobs.utils.time import Time

#: a scalar configuration value
ConfigScalar: TypeAlias = bool | int | float | str
#: a value of IConfig: scalar, list of scalars or dict of scalars
ConfigValue: TypeAlias = bool | int | float | str | list[ConfigScalar] | dict[str, ConfigScalar]
#: a value of IStructuredConfig: scalar, list or dict nested arbitrarily
ConfigValueTree: TypeAlias = Any


# ------------------------------------------------------------------------------------------ module


@dataclass
class ModuleLocation:
    """Geographic location of a module."""

    longitude: float = 0.0  # deg
    latitude: float = 0.0  # deg
    elevation: float = 0.0  # m
    timezone: str = "utc"


@dataclass
class ModuleCapabilities:
    """IModule capabilities: display name, pyobs version (PEP 440) and location."""

    label: str = ""
    version: str = ""
    location: ModuleLocation | None = None


@dataclass
class ConfigCapabilities:
    """IConfig capabilities: per option (has getter, has setter, has option list)."""

    caps: dict[str, tuple[bool, bool, bool]] = field(default_factory=dict)


@dataclass
class ConfigChoice:
    """One allowed value of a config field with its label."""

    value: str | int | float | bool
    label: str


@dataclass
class ConfigFieldSchema:
    """Schema of one structured config field."""

    type: str
    unit: Unit | None = None
    options: list[str] | None = None
    default: Any = None
    nested: "dict[str, ConfigFieldSchema] | None" = None
    level: int = 0  # AccessLevel: 0 basic, 1 expert, 2 hidden; sent as <int>
    description: str | None = None
    choices: list[ConfigChoice] | None = None


@dataclass
class ConfigSchema:
    """IStructuredConfig capabilities: schema of all config fields."""

    fields: dict[str, ConfigFieldSchema]


@dataclass
class ConfigAppliedState:
    """IStructuredConfig state: the config currently applied."""

    config: dict[str, ConfigValueTree]
    time: Time = field(default_factory=Time.now)


@dataclass
class RunningState:
    running: bool
    time: Time = field(default_factory=Time.now)


@dataclass
class ReadyState:
    ready: bool
    time: Time = field(default_factory=Time.now)


# ------------------------------------------------------------------------------------------ motion


@dataclass
class DeviceMotionStatus:
    """Motion status of one sub-device."""

    name: str
    status: MotionStatus


@dataclass
class MotionState:
    status: MotionStatus
    devices: list[DeviceMotionStatus] = field(default_factory=list)
    time: Time = field(default_factory=Time.now)


@dataclass
class RotationState:
    rotation: float  # deg
    time: Time = field(default_factory=Time.now)


# ---------------------------------------------------------------------------------------- pointing


@dataclass
class RaDecState:
    ra: float  # deg
    dec: float  # deg
    time: Time = field(default_factory=Time.now)


@dataclass
class RaDecOffsetState:
    ra: float  # deg
    dec: float  # deg
    time: Time = field(default_factory=Time.now)


@dataclass
class AltAzState:
    alt: float  # deg
    az: float  # deg
    time: Time = field(default_factory=Time.now)


@dataclass
class AltAzOffsetState:
    alt: float  # deg
    az: float  # deg
    time: Time = field(default_factory=Time.now)


@dataclass
class HelioprojectiveState:
    theta_x: float  # deg
    theta_y: float  # deg
    time: Time = field(default_factory=Time.now)


@dataclass
class HeliographicStonyhurstState:
    lon: float  # deg
    lat: float  # deg
    time: Time = field(default_factory=Time.now)


@dataclass
class HeliocentricPolarState:
    mu: float
    psi: float  # deg
    time: Time = field(default_factory=Time.now)


@dataclass
class OrbitalElements:
    """Orbital elements of a solar system body."""

    epoch: Time
    semi_major_axis: float  # au
    eccentricity: float
    inclination: float  # deg
    longitude_ascending_node: float  # deg
    argument_of_periapsis: float  # deg
    mean_anomaly: float | None = None  # deg
    perihelion_time: Time | None = None


@dataclass
class TrackingModeState:
    mode: TrackingMode
    time: Time = field(default_factory=Time.now)


@dataclass
class TrackingModeCapabilities:
    modes: list[TrackingMode]


@dataclass
class TrackingRateState:
    ra_rate: float  # arcsec/s
    dec_rate: float  # arcsec/s
    time: Time = field(default_factory=Time.now)


@dataclass
class TrackingRateCapabilities:
    min_update_interval: float  # seconds


# ------------------------------------------------------------------------------------------- focus


@dataclass
class FocuserState:
    focus: float  # mm
    focus_offset: float  # mm
    time: Time = field(default_factory=Time.now)


@dataclass
class OptimalFocusState:
    focus: float
    time: Time = field(default_factory=Time.now)


@dataclass
class AutoFocusPoint:
    """One measured point of an auto-focus series."""

    focus: float
    value: float


@dataclass
class AutoFocusResult:
    """Result of an auto-focus series."""

    focus: float
    focus_err: float


@dataclass
class AutoFocusState:
    points: list[AutoFocusPoint] = field(default_factory=list)
    time: Time = field(default_factory=Time.now)


@dataclass
class FilterState:
    filter: str
    time: Time = field(default_factory=Time.now)


@dataclass
class FiltersCapabilities:
    filters: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------ camera


@dataclass
class VideoCapabilities:
    """URLs of the video streams."""

    mjpeg: str | None = None
    raw: str | None = None


@dataclass
class ExposureState:
    status: ExposureStatus
    progress: float  # percent
    exposure_time_left: float = 0.0  # seconds
    time: Time = field(default_factory=Time.now)


@dataclass
class ExposureTimeState:
    exposure_time: float  # seconds
    time: Time = field(default_factory=Time.now)


@dataclass
class ImageTypeState:
    image_type: ImageType
    time: Time = field(default_factory=Time.now)


@dataclass
class ImageFormatState:
    image_format: ImageFormat
    time: Time = field(default_factory=Time.now)


@dataclass
class ImageFormatCapabilities:
    image_formats: list[str] = field(default_factory=list)


@dataclass
class Binning:
    """One binning mode."""

    x: int
    y: int


@dataclass
class BinningState:
    x: int
    y: int
    time: Time = field(default_factory=Time.now)


@dataclass
class BinningCapabilities:
    binnings: list[Binning] = field(default_factory=list)


@dataclass
class WindowState:
    x: int
    y: int
    width: int
    height: int
    time: Time = field(default_factory=Time.now)


@dataclass
class WindowCapabilities:
    """Full frame of the sensor (0 = unknown)."""

    full_frame_x: int = 0
    full_frame_y: int = 0
    full_frame_width: int = 0
    full_frame_height: int = 0


@dataclass
class GainState:
    gain: float
    offset: float
    time: Time = field(default_factory=Time.now)


@dataclass
class SensorReading:
    """One temperature reading."""

    name: str
    value: float  # celsius


@dataclass
class TemperaturesState:
    readings: list[SensorReading] = field(default_factory=list)
    time: Time = field(default_factory=Time.now)


@dataclass
class CoolingState:
    setpoint: float | None  # celsius
    power: int | None  # percent
    enabled: bool
    time: Time = field(default_factory=Time.now)


@dataclass
class DataSequenceState:
    """Progress of a sequence (0/0 when idle)."""

    count_total: int
    count_left: int
    time: Time = field(default_factory=Time.now)


@dataclass
class DataStackState:
    """Progress of a stack (0/0 when idle)."""

    count_total: int
    count_left: int
    time: Time = field(default_factory=Time.now)


@dataclass
class DataPipelineState:
    pipeline: str | None
    time: Time = field(default_factory=Time.now)


@dataclass
class DataPipelineCapabilities:
    pipelines: list[str] = field(default_factory=list)


# -------------------------------------------------------------------------------------------- misc


@dataclass
class MultiFiberState:
    fiber: str = ""
    pixel_x: float = 0.0
    pixel_y: float = 0.0
    radius: float = 0.0
    time: Time = field(default_factory=Time.now)


@dataclass
class MultiFiberCapabilities:
    fiber_count: int = 0


@dataclass
class ModeState:
    """Current mode per group (group → mode)."""

    modes: dict[str, str] = field(default_factory=dict)
    time: Time = field(default_factory=Time.now)


@dataclass
class ModeCapabilities:
    """Available modes per group (group → modes)."""

    modes: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class FitsHeaderEntry:
    """One FITS header card value with comment."""

    value: int | float | str | None
    comment: str


# ----------------------------------------------------------------------------------------- weather


@dataclass
class WeatherSensorReading:
    """One weather sensor value."""

    sensor: WeatherSensors
    value: float
    unit: str
    time: Time = field(default_factory=Time.now)


@dataclass
class WeatherState:
    good: bool
    readings: list[WeatherSensorReading] = field(default_factory=list)
    time: Time = field(default_factory=Time.now)


# ----------------------------------------------------------------------------------------- robotic


@dataclass
class AcquisitionResult:
    """Result of a target acquisition."""

    time: Time
    ra: float  # deg
    dec: float  # deg
    alt: float  # deg
    az: float  # deg
    offset_frame: OffsetFrame | None = None
    offset_lon: float | None = None  # deg
    offset_lat: float | None = None  # deg


@dataclass
class AcquisitionAttempt:
    """One iteration of a target acquisition."""

    attempt: int
    distance: float  # arcsec
    offset_applied: bool
    offset_frame: OffsetFrame | None = None
    offset_lon: float | None = None  # deg
    offset_lat: float | None = None  # deg


@dataclass
class AcquisitionState:
    attempts: list[AcquisitionAttempt] = field(default_factory=list)
    result: AcquisitionResult | None = None
    time: Time = field(default_factory=Time.now)


@dataclass
class GuidingState:
    loop_closed: bool = False
    offset_frame: OffsetFrame | None = None
    offset_lon: float | None = None  # deg
    offset_lat: float | None = None  # deg
    time: Time = field(default_factory=Time.now)


@dataclass
class RoboticTask:
    """A task of a robotic scheduler."""

    id: Any
    name: str
    target: str | None = None
    start: Time | None = None
    end: Time | None = None
    obsnum: str | None = None
    state: str | None = None
    priority: float | None = None


@dataclass
class RoboticState:
    current: RoboticTask | None = None
    next: RoboticTask | None = None
    cant_run_reason: str | None = None
    time: Time = field(default_factory=Time.now)


@dataclass
class SchedulerState:
    last_reschedule: Time | None = None
    time: Time = field(default_factory=Time.now)


__all__ = [
    "AcquisitionAttempt",
    "AcquisitionResult",
    "AcquisitionState",
    "AltAzOffsetState",
    "AltAzState",
    "AutoFocusPoint",
    "AutoFocusResult",
    "AutoFocusState",
    "Binning",
    "BinningCapabilities",
    "BinningState",
    "ConfigAppliedState",
    "ConfigCapabilities",
    "ConfigChoice",
    "ConfigFieldSchema",
    "ConfigScalar",
    "ConfigSchema",
    "ConfigValue",
    "ConfigValueTree",
    "CoolingState",
    "DataPipelineCapabilities",
    "DataPipelineState",
    "DataSequenceState",
    "DataStackState",
    "DeviceMotionStatus",
    "ExposureState",
    "ExposureTimeState",
    "FilterState",
    "FiltersCapabilities",
    "FitsHeaderEntry",
    "FocuserState",
    "GainState",
    "GuidingState",
    "HeliocentricPolarState",
    "HeliographicStonyhurstState",
    "HelioprojectiveState",
    "ImageFormatCapabilities",
    "ImageFormatState",
    "ImageTypeState",
    "ModeCapabilities",
    "ModeState",
    "ModuleCapabilities",
    "ModuleLocation",
    "MotionState",
    "MultiFiberCapabilities",
    "MultiFiberState",
    "OptimalFocusState",
    "OrbitalElements",
    "RaDecOffsetState",
    "RaDecState",
    "ReadyState",
    "RoboticState",
    "RoboticTask",
    "RotationState",
    "RunningState",
    "SchedulerState",
    "SensorReading",
    "TemperaturesState",
    "TrackingModeCapabilities",
    "TrackingModeState",
    "TrackingRateCapabilities",
    "TrackingRateState",
    "VideoCapabilities",
    "WeatherSensorReading",
    "WeatherState",
    "WindowCapabilities",
    "WindowState",
]
