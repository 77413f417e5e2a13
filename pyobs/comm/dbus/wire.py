"""The names of our D-Bus wire format (see docs/dbus.md): interfaces, signatures, error names.

Constants only; every part of the transport imports what it speaks from here.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from dbus_fast import MessageFlag, MessageType
from dbus_fast.validators import is_bus_name_valid

from .codec import escape_name, unescape_name

MODULE_IFACE = "org.pyobs.Module"
#: longest error text of a peer's lifecycle state kept (the rest is cut off)
MAX_STATUS = 1000
EVENT_IFACE = "org.pyobs.Event"
IFACE_PREFIX = "org.pyobs."
ERROR_PREFIX = "org.pyobs.Error."
PROPS_IFACE = "org.freedesktop.DBus.Properties"
INTROSPECTABLE = "org.freedesktop.DBus.Introspectable"
DBUS_NAME = "org.freedesktop.DBus"
DBUS_PATH = "/org/freedesktop/DBus"
EVENT_SIGNATURE = "sda{sv}"
DESCRIBE_SIGNATURE = "a(su)ass"
ERROR_SIGNATURE = "ssas"

E_UNKNOWN_METHOD = "org.freedesktop.DBus.Error.UnknownMethod"
E_INVALID_ARGS = "org.freedesktop.DBus.Error.InvalidArgs"
E_UNKNOWN_OBJECT = "org.freedesktop.DBus.Error.UnknownObject"
E_UNKNOWN_INTERFACE = "org.freedesktop.DBus.Error.UnknownInterface"
E_UNKNOWN_PROPERTY = "org.freedesktop.DBus.Error.UnknownProperty"
E_READ_ONLY = "org.freedesktop.DBus.Error.PropertyReadOnly"
E_FAILED = "org.freedesktop.DBus.Error.Failed"
#: errors of the bus itself that mean the callee is gone
E_GONE = frozenset(
    {
        "org.freedesktop.DBus.Error.NoReply",
        "org.freedesktop.DBus.Error.ServiceUnknown",
        "org.freedesktop.DBus.Error.NameHasNoOwner",
        "org.freedesktop.DBus.Error.Disconnected",
    }
)

CALL = MessageType.METHOD_CALL
RETURN = MessageType.METHOD_RETURN
SIGNAL = MessageType.SIGNAL
ERROR = MessageType.ERROR
NO_REPLY = MessageFlag.NO_REPLY_EXPECTED

_PREFIX_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")


@dataclass(frozen=True)
class Names:
    """Who we are on the bus: module name, well-known name, object path. Fixed at construction."""

    name: str
    prefix: str
    bus_name: str
    path: str

    @classmethod
    def of(cls, name: str, prefix: str) -> Names:
        if not isinstance(name, str) or not name:
            raise ValueError(f"invalid module name {name!r}")
        if not isinstance(prefix, str) or not _PREFIX_RE.match(prefix):
            raise ValueError(
                f"invalid D-Bus name prefix {prefix!r}: expected dot-separated elements of [A-Za-z0-9_] "
                "not starting with a digit, e.g. 'org.pyobs.module'"
            )
        return cls(name, prefix, bus_name_of(prefix, name), "/" + prefix.replace(".", "/"))

    def peer_of(self, bus_name: str) -> str | None:
        """The module name of one of our prefix's well-known names (not ours), else None."""
        head = self.prefix + "."
        if not bus_name.startswith(head) or bus_name == self.bus_name:
            return None
        rest = bus_name[len(head) :]
        if not rest or "." in rest:
            return None
        return unescape_name(rest)


def bus_name_of(prefix: str, module: str) -> str:
    """The well-known name of module ``module``; ValueError if it gives no valid bus name."""
    name = f"{prefix}.{escape_name(module)}"
    if not is_bus_name_valid(name) or len(name) > 255:
        raise ValueError(f"module name {module!r} gives no valid D-Bus name ({name!r} is too long)")
    return name


def _ignore_result(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


def sent(fut: asyncio.Future[Any]) -> None:
    """A send nobody waits for: its failure is retrieved here (at once if the write failed at once,
    before the loop may be gone); write failures end up in the link's loss handling."""
    if fut.done():
        _ignore_result(fut)
    else:
        fut.add_done_callback(_ignore_result)


def spawn(tasks: set[asyncio.Task[Any]], coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    """Run ``coro`` in a task kept in ``tasks`` (its owner's set, cancelled when it closes)."""
    task = asyncio.get_running_loop().create_task(coro)
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    return task
