"""Exceptions across the wire: a class travels as its qualified name plus its pyobs ancestors.

The receiver raises the same class when it can import it (builtins, ``pyobs.utils.exceptions``,
user classes), else the nearest importable pyobs base, else a :class:`RemoteError` carrying the
original type name and message.
"""

from __future__ import annotations

import builtins
import importlib
import sys
from dataclasses import dataclass

from pyobs.utils import exceptions as exc_mod
from pyobs.utils.exceptions import PyobsError, RemoteError, UnclassifiedError


@dataclass(frozen=True)
class RemoteException:
    """An exception in transit."""

    type: str  # fully qualified class name, e.g. "builtins.ValueError"
    message: str
    bases: tuple[str, ...] = ()  # pyobs ancestors, nearest first


#: set on an exception the core raised because a call's arguments do not fit its declaration
_BAD_ARGUMENTS = "__pyobs_bad_arguments__"


def mark_bad_arguments(exc: BaseException) -> BaseException:
    """Mark ``exc`` as "the arguments do not fit" (raised by the core while casting a call's
    arguments), so a transport can answer with its wire's own error for that."""
    setattr(exc, _BAD_ARGUMENTS, True)
    return exc


def is_bad_arguments(exc: BaseException) -> bool:
    return getattr(exc, _BAD_ARGUMENTS, False) is True


def qualified_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def describe(exc: BaseException) -> RemoteException:
    """What to send for an exception raised by a method."""
    cls = type(exc)
    bases = tuple(
        qualified_name(b)
        for b in cls.__mro__[1:]
        if issubclass(b, PyobsError) and b not in (PyobsError, UnclassifiedError) and b is not cls
    )
    message = str(exc.args[0]) if len(exc.args) == 1 else (str(exc) if exc.args else "")
    return RemoteException(qualified_name(cls), message, bases)


def _lookup(qualname: str) -> type[BaseException] | None:
    """Find an exception class by qualified name without importing anything new but pyobs modules."""
    module_name, _, cls_name = qualname.rpartition(".")
    if not module_name:
        return None
    if module_name == "builtins":
        obj = getattr(builtins, cls_name, None)
    else:
        mod = sys.modules.get(module_name)
        if mod is None and module_name.split(".")[0] == "pyobs":
            try:
                mod = importlib.import_module(module_name)
            except Exception:
                mod = None
        if mod is None:
            return None
        obj = mod
        for part in cls_name.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                return None
    if isinstance(obj, type) and issubclass(obj, Exception):
        return obj
    return None


# exceptions named by pyobs-core that live elsewhere there, mapped to ours
_ALIASES = {"pyobs.utils.exceptions.RemoteTimeoutError": exc_mod.RemoteTimeoutError}


def rebuild(remote: RemoteException, context: str = "") -> BaseException:
    """The exception to raise in the caller for one that travelled."""
    cls = _ALIASES.get(remote.type) or _lookup(remote.type)
    if cls is not None:
        try:
            return cls(remote.message)
        except Exception:
            pass  # a constructor with other arguments: fall through to a base
    for base in remote.bases:
        bcls = _lookup(base)
        if bcls is not None:
            try:
                err = bcls(remote.message)
                err.original_type = remote.type  # type: ignore[attr-defined]
                return err
            except Exception:
                continue
    prefix = f"{context}: " if context else ""
    return RemoteError(f"{prefix}{remote.type}: {remote.message}", original_type=remote.type)
