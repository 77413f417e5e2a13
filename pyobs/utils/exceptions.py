"""Exceptions that travel between modules (names as in pyobs-core 2.19, so faults map both ways).

As in pyobs-core, every exception takes a message and context keyword arguments, which become
attributes (``MoveError("stuck", module="telescope").module``); ``str()`` is ``<MoveError> stuck``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any, ClassVar, NamedTuple


class PyobsError(Exception):
    """Base of all pyobs exceptions.

    Args:
        message: what went wrong (``.message``; None if not given).
        **context: extra facts, each set as an attribute and kept in ``.context``.
    """

    #: every subclass by qualified name (pyobs-core's ``PyobsError.resolve``)
    _registry: ClassVar[dict[str, type[PyobsError]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        PyobsError._registry[f"{cls.__module__}.{cls.__qualname__}"] = cls

    def __init__(self, message: str | None = None, **context: Any) -> None:
        # args holds the message only, so the wire form (errors.describe) carries the bare message
        super().__init__(*(() if message is None else (message,)))
        self.message = message
        self.logged = False
        self.context = context
        for key, value in context.items():
            setattr(self, key, value)

    def __str__(self) -> str:
        return f"<{type(self).__name__}>" + ("" if self.message is None else f" {self.message}")

    def log(self, log: logging.Logger, level: str, message: str, **kwargs: Any) -> None:
        """Log ``message`` at ``level`` (a level name) once per exception: later calls do nothing."""
        if self.logged:
            return
        log.log(logging.getLevelName(level.upper()), message, **kwargs)
        self.logged = True

    @classmethod
    def resolve(cls, qualified_name: str) -> type[PyobsError] | None:
        """The PyobsError subclass of that qualified name, if it was defined in this process."""
        return cls._registry.get(qualified_name)


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

    def __init__(self, message: str | None = None, original_type: str | None = None, **context: Any) -> None:
        super().__init__(message, **context)
        self.original_type = original_type


class RemoteError(PyobsError):
    """A remote call failed in transport, or raised an exception whose class is not importable here.

    ``original_type`` is the fully qualified name of the remote exception class, where known.
    """

    def __init__(self, message: str | None = None, original_type: str | None = None, **context: Any) -> None:
        super().__init__(message, **context)
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
        super().__init__(f"{key}: {problem}" if key else problem)
        self.key = key
        self.problem = problem

    def __str__(self) -> str:  # the CLI prints it after "error in": no class tag
        return self.message or ""


def error_text(exc: BaseException) -> str:
    """``<MoveError> stuck`` for pyobs exceptions (their str() names the class), ``ValueError: bad`` for others."""
    if isinstance(exc, PyobsError) and not isinstance(exc, ConfigError):
        return str(exc)
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class LoggedException(NamedTuple):
    """One occurrence of an exception (as pyobs-core records them for its error escalation)."""

    time: float
    exception: PyobsError


class ExceptionHandler(NamedTuple):
    """An escalation rule: ``limit`` exceptions of ``exc_type`` within ``timespan`` s (as pyobs-core)."""

    exc_type: type[PyobsError]
    limit: int
    timespan: float | None = None
    module: str | None = None
    callback: Callable[[PyobsError], Coroutine[Any, Any, None]] | None = None
