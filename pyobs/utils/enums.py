"""Enumerations of the pyobs vocabulary (values as on the pyobs-core 2.19 wire)."""

from enum import IntEnum, StrEnum


class ModuleState(StrEnum):
    CLOSED = "closed"
    STARTING = "starting"
    READY = "ready"
    ERROR = "error"
    LOCAL = "local"


class ExposureStatus(StrEnum):
    IDLE = "idle"
    EXPOSING = "exposing"
    READOUT = "readout"
    ERROR = "error"


class ImageType(StrEnum):
    BIAS = "bias"
    DARK = "dark"
    OBJECT = "object"
    SKYFLAT = "skyflat"
    FOCUS = "focus"
    ACQUISITION = "acquisition"
    GUIDING = "guiding"


class ImageFormat(StrEnum):
    INT8 = "int8"
    INT16 = "int16"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    RGB24 = "rgb24"


class MotionStatus(StrEnum):
    ABORTING = "aborting"
    ERROR = "error"
    IDLE = "idle"
    INITIALIZING = "initializing"
    PARKING = "parking"
    PARKED = "parked"
    POSITIONED = "positioned"
    SLEWING = "slewing"
    TRACKING = "tracking"
    CALIBRATING = "calibrating"
    UNKNOWN = "unknown"


class WeatherSensors(StrEnum):
    TIME = "time"
    TEMPERATURE = "temp"
    HUMIDITY = "humid"
    PRESSURE = "press"
    WINDDIR = "winddir"
    WINDSPEED = "windspeed"
    RAIN = "rain"
    SKYTEMP = "skytemp"
    DEWPOINT = "dewpoint"
    PARTICLES = "particles"
    SKYMAG = "skymag"


class OffsetFrame(StrEnum):
    RADEC = "radec"
    ALTAZ = "altaz"
    # pyobs-core's names (aliases: the same members)
    RA_DEC = "radec"
    ALT_AZ = "altaz"


class TrackingMode(StrEnum):
    SIDEREAL = "sidereal"
    SOLAR = "solar"
    LUNAR = "lunar"
    OFF = "off"


class PushNotificationType(StrEnum):
    MODULE_ERROR = "module_error"
    LOG_ERROR = "log_error"
    LOG_CRITICAL = "log_critical"


class Unit(StrEnum):
    DEG = "deg"
    DEGREES = "deg"  # pyobs-core's name (an alias)
    ARCSEC = "arcsec"
    CELSIUS = "celsius"
    SECONDS = "seconds"
    PERCENT = "percent"
    HPA = "hpa"
    KMH = "km/h"
    KM_PER_HOUR = "km/h"  # pyobs-core's name (an alias)
    MM = "mm"
    ARCSEC_PER_SEC = "arcsec/s"
    AU = "au"


class AccessLevel(IntEnum):
    BASIC = 0
    EXPERT = 1
    HIDDEN = 2
