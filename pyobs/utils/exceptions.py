"""Exceptions that travel between modules (names as in pyobs-core 2.19, so faults map both ways)."""

from __future__ import annotations


class PyobsError(Exception):
    """Base of all pyobs exceptions."""


class ModuleError(PyobsError):
    """Module is broken or in error state."""


class GeneralError(PyobsError):
    """Generic failure."""


class ImageError(PyobsError):
    """Image processing failed."""


class ArchiveError(PyobsError):
    """Archive backend unreachable."""


class MotionError(PyobsError):
    """Motion failed."""


class InitError(MotionError):
    """Init failed."""


class ParkError(MotionError):
    """Park failed."""


class MoveError(MotionError):
    """Move failed."""


class PointingLimitError(PyobsError):
    """Target outside pointing limits; nothing attempted."""


class GrabImageError(PyobsError):
    """Exposure failed."""


class AbortedError(PyobsError):
    """Operation aborted."""


class FocusError(PyobsError):
    """Focusing failed."""


class AcquisitionError(PyobsError):
    """Acquisition failed."""


class DeviceBusyError(PyobsError):
    """Busy; retry later."""


class ModuleStartingError(PyobsError):
    """Module still starting; retry later."""


class NotSupportedError(PyobsError):
    """Operation not supported by this module."""


class InvalidArgumentError(PyobsError):
    """Bad argument (unknown name, out of range)."""


class UnclassifiedError(PyobsError):
    """A remote exception whose class is not known here."""

    def __init__(self, message: str = "", original_type: str | None = None) -> None:
        super().__init__(message)
        self.original_type = original_type


class RemoteError(PyobsError):
    """A remote call failed in transport, or raised an exception whose class is not importable here.

    ``original_type`` is the fully qualified name of the remote exception class, where known.
    """

    def __init__(self, message: str = "", original_type: str | None = None) -> None:
        super().__init__(message)
        self.original_type = original_type


class RemoteTimeoutError(RemoteError, TimeoutError):
    """A remote call missed its deadline (also a builtin ``TimeoutError``)."""


class ModuleBusyError(RemoteError):
    """The callee serves as many calls as it may at once (``max_calls``); try again later."""


class ForbiddenError(RemoteError):
    """The callee refused the call (ACL)."""


class UnknownMethodError(RemoteError, AttributeError):
    """The callee has no such method."""


class ConfigError(PyobsError, ValueError):
    """A configuration is invalid: names the key and the problem."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"{key}: {problem}" if key else problem)
