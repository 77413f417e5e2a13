"""Shared core of the D-Bus transport: constants, the connection-wide state and the bus helpers.

Owns the names and signatures of the wire format (interfaces, error names), the attributes every
part of :class:`~pyobs.comm.dbus.transport.DbusTransport` works on (set up in ``__init__``), and the
small helpers to name peers, spawn tasks, send messages and make the transport's own bus requests.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dbus_fast import BusType, Message, MessageFlag, MessageType, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.validators import is_bus_name_valid

from pyobs.events.event import Event
from pyobs.utils.exceptions import RemoteError
from pyobs.utils.ratelimit import RateLimitedLog

from ..calls import Call
from ..transport import Announcement, Extend, NotConnected, Transport, TransportHandler
from .codec import (
    escape_name,
    unescape_name,
)

if TYPE_CHECKING:
    from .calls import _Outgoing
    from .introspection import _Incoming

log = logging.getLogger("pyobs.comm.dbus.transport")


MODULE_IFACE = "org.pyobs.Module"
#: longest error text of a peer's lifecycle state kept (the rest is cut off)
MAX_STATUS = 1000
EVENT_IFACE = "org.pyobs.Event"
IFACE_PREFIX = "org.pyobs."
ERROR_PREFIX = "org.pyobs.Error."
PROPS_IFACE = "org.freedesktop.DBus.Properties"
DBUS_NAME = "org.freedesktop.DBus"
DBUS_PATH = "/org/freedesktop/DBus"
EVENT_SIGNATURE = "sda{sv}"
DESCRIBE_SIGNATURE = "a(su)ass"
ERROR_SIGNATURE = "ssas"
#: after a reconnect, how long [s] to wait for the peers that were online to come back before
#: sending the events kept meanwhile
RESTORE_GRACE = 3.0
#: flow control of event bursts: a round trip to the bus daemon after this many event signals sent
#: less than BURST_WINDOW [s] apart (a full socket would make dbus-fast drop the connection)
BURST = 32
BURST_WINDOW = 0.05

E_UNKNOWN_METHOD = "org.freedesktop.DBus.Error.UnknownMethod"
E_INVALID_ARGS = "org.freedesktop.DBus.Error.InvalidArgs"
E_UNKNOWN_OBJECT = "org.freedesktop.DBus.Error.UnknownObject"
E_UNKNOWN_INTERFACE = "org.freedesktop.DBus.Error.UnknownInterface"
E_UNKNOWN_PROPERTY = "org.freedesktop.DBus.Error.UnknownProperty"
E_READ_ONLY = "org.freedesktop.DBus.Error.PropertyReadOnly"
#: errors of the bus itself that mean the callee is gone
E_GONE = frozenset(
    {
        "org.freedesktop.DBus.Error.NoReply",
        "org.freedesktop.DBus.Error.ServiceUnknown",
        "org.freedesktop.DBus.Error.NameHasNoOwner",
        "org.freedesktop.DBus.Error.Disconnected",
    }
)

_CALL = MessageType.METHOD_CALL
_RETURN = MessageType.METHOD_RETURN
_SIGNAL = MessageType.SIGNAL
_ERROR = MessageType.ERROR
_NO_REPLY = MessageFlag.NO_REPLY_EXPECTED
_PREFIX_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
_PURE = frozenset({bool, int, float, str})


def _ignore_result(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


class DbusBase(Transport):
    """The state every part of :class:`DbusTransport` shares, and the bus helpers they all use.

    See :class:`~pyobs.comm.dbus.transport.DbusTransport` for the arguments.
    """

    def __init__(
        self, name: str, bus: str = "session", prefix: str = "org.pyobs.module", timeout: float = 10.0
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"invalid module name {name!r}")
        if not isinstance(prefix, str) or not _PREFIX_RE.match(prefix):
            raise ValueError(
                f"invalid D-Bus name prefix {prefix!r}: expected dot-separated elements of [A-Za-z0-9_] "
                "not starting with a digit, e.g. 'org.pyobs.module'"
            )
        if bus == "session":
            self._bus_type, self._address = BusType.SESSION, None
        elif bus == "system":
            self._bus_type, self._address = BusType.SYSTEM, None
        elif isinstance(bus, str) and ":" in bus:
            self._bus_type, self._address = BusType.SESSION, bus
        else:
            raise ValueError(
                f"invalid bus {bus!r}: expected 'session', 'system' or an address like 'unix:path=/tmp/bus'"
            )
        self.name = name
        self.prefix = prefix
        self.bus_description = bus
        self.bus_name = f"{prefix}.{escape_name(name)}"
        if not is_bus_name_valid(self.bus_name) or len(self.bus_name) > 255:
            raise ValueError(f"module name {name!r} gives no valid D-Bus name ({self.bus_name!r} is too long)")
        self.path = "/" + prefix.replace(".", "/")
        self.timeout = float(timeout)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handler: TransportHandler | None = None
        self._bus: MessageBus | None = None
        self._closing = False
        self._watch: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        # what we announced
        self._info: Announcement | None = None
        self._xml = ""
        self._describe_body: list[Any] = [[], [], ""]
        #: the lifecycle state we show (``ready``, ``error`` + message, ``local``): GetModuleState / ModuleState
        self._module_state: tuple[str, str] = ("ready", "")
        self._incoming: dict[tuple[str, str], _Incoming] = {}
        self._members: dict[str, _Incoming] = {}
        self._state_ifaces: set[str] = set()
        self._caps_ifaces: set[str] = set()
        self._state: dict[str, dict[str, Variant]] = {}
        self._receives: set[str] = set()
        # discovery
        self._owners: dict[str, str] = {}  # unique name -> module name
        #: lines another process can trigger per message go through this (one per kind every 10 s)
        self._limited = RateLimitedLog(logging.getLogger("pyobs.comm.dbus"))
        # set once the owners of the names listed at (re)connection are known: until then a caller
        # we cannot name yet may be a module of ours, whose name its call must be checked under
        self._owners_settled = asyncio.Event()
        self._names: dict[str, str] = {}  # module name -> unique name
        self._online: set[str] = set()
        #: peers that were online when the bus went away (waited for, bounded, after reconnecting)
        self._returning: set[str] = set()
        #: the last event signal dbus-fast has not written yet, and its event (see events.py)
        self._unwritten: tuple[asyncio.Future[Any], Event] | None = None
        self._burst = 0
        self._burst_start = 0.0
        #: progress signals: how many went out in quick succession, and the calls whose newest
        #: notice waits for the bus round trip that lets the socket drain (see CallsMixin)
        self._progress_burst = 0
        self._progress_burst_start = 0.0
        self._progress_held: dict[int, Callable[[], None]] | None = None
        self._describing: dict[str, asyncio.Task[None]] = {}
        # calls out
        self._outgoing: dict[int, _Outgoing] = {}
        self._dest: dict[str, str] = {}
        self._pending: dict[int, tuple[str, Extend, Call | None]] = {}
        # subscriptions
        self._event_rules: set[str] = set()
        self._state_rules: set[tuple[str, str]] = set()
        parts = self.path.strip("/").split("/")
        self._parents = {"/" + "/".join(parts[:i]): parts[i] for i in range(len(parts))}

    # ------------------------------------------------------------------ helpers

    def peer_bus_name(self, peer: str) -> str:
        dest = self._dest.get(peer)
        if dest is None:
            dest = f"{self.prefix}.{escape_name(peer)}"
            if not is_bus_name_valid(dest) or len(dest) > 255:
                raise ValueError(f"module name {peer!r} gives no valid D-Bus name ({dest!r} is too long)")
            self._dest[peer] = dest
        return dest

    def _peer_of(self, bus_name: str) -> str | None:
        """The module name of one of our prefix's well-known names, else None."""
        head = self.prefix + "."
        if not bus_name.startswith(head):
            return None
        rest = bus_name[len(head) :]
        if not rest or "." in rest:
            return None
        return unescape_name(rest)

    async def _caller(self, unique_name: str) -> str:
        """The module name of the connection ``unique_name`` (stamped by the bus daemon, never taken
        from a message's body); a connection that owns no module name of ours is named by its unique name.
        """
        name = self._owners.get(unique_name)
        if name is None and not self._owners_settled.is_set():
            try:
                async with asyncio.timeout(self.timeout):
                    await self._owners_settled.wait()
            except TimeoutError:
                pass
            name = self._owners.get(unique_name)
        return name if name is not None else unique_name

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        assert self._loop is not None
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _send(self, msg: Message) -> None:
        """Send without waiting; write failures end up in the disconnect handling."""
        bus = self._bus
        if bus is None:
            return
        bus.send(msg).add_done_callback(_ignore_result)

    async def _request(
        self,
        destination: str,
        path: str,
        interface: str,
        member: str,
        signature: str = "",
        body: list[Any] | None = None,
    ) -> Message:
        """A method call of the transport's own (to the bus or a peer), under ``self.timeout``."""
        bus = self._bus
        if bus is None:
            raise NotConnected(f"{self.name}: not connected to the D-Bus bus ({self.bus_description})")
        msg = Message(
            destination=destination,
            path=path,
            interface=interface,
            member=member,
            signature=signature,
            body=body or [],
            flags=MessageFlag.NO_AUTOSTART,
        )
        try:
            async with asyncio.timeout(self.timeout):
                reply = await bus.call(msg)
        except TimeoutError:
            raise TimeoutError(f"{destination} did not answer {interface}.{member} within {self.timeout} s") from None
        except Exception as exc:
            raise RemoteError(f"{interface}.{member} to {destination} failed: {exc}") from None
        assert reply is not None
        return reply

    async def _bus_request(self, member: str, signature: str = "", body: list[Any] | None = None) -> list[Any]:
        reply = await self._request(DBUS_NAME, DBUS_PATH, DBUS_NAME, member, signature, body)
        if reply.message_type is _ERROR:
            text = reply.body[0] if reply.body else ""
            raise RemoteError(f"the bus refused {member}: {reply.error_name}: {text}")
        return list(reply.body)

    if TYPE_CHECKING:  # provided by the other parts of DbusTransport

        def _on_message(self, msg: Message) -> Message | bool | None: ...

        async def _request_name(self) -> None: ...

        async def _discover(self) -> None: ...

        def _report(self, peer: str, body: list[Any]) -> None: ...

        def _event_rule(self, name: str) -> str: ...

        async def _update_event_rules(self, receives: set[str]) -> None: ...

        def _state_rule(self, peer: str, iface: str) -> str: ...

        def _on_properties(self, msg: Message) -> Message: ...

        async def _resend_unwritten(self) -> None: ...
