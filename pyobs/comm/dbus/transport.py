"""DbusTransport: modules as D-Bus services on one bus (see docs/dbus.md for the design).

* every module owns the well-known name ``<prefix>.<name>`` and exports one object at
  ``/<prefix as path>`` (``/org/pyobs/module``) with one D-Bus interface per pyobs interface
  (``org.pyobs.ICamera``); introspection shows their methods and ``State``/``Capabilities``
  properties;
* a call is a D-Bus method call; a ``@timeout`` announcement is a unicast signal
  ``org.pyobs.Module.CallTimeout(u serial, d seconds)`` to the caller;
* remote exceptions are D-Bus errors ``org.pyobs.Error.<qualified class>`` with body
  ``(s message, s type, as bases)``;
* events are broadcast signals ``org.pyobs.Event.<EventType>(s uuid, d timestamp, a{sv} data)``
  that reach only modules with a match rule for that type;
* discovery is ``ListNames`` once, then ``NameOwnerChanged`` (``arg0namespace=<prefix>``) and
  ``org.pyobs.Module.Describe()``; no polling;
* state is the read-only property ``State`` with ``PropertiesChanged`` signals.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import quoteattr

from dbus_fast import BusType, Message, MessageFlag, MessageType, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.validators import is_bus_name_valid, is_interface_name_valid, is_member_name_valid

from pyobs.events.event import Event
from pyobs.interfaces.interface import MethodSpec, Param, own_methods
from pyobs.utils.exceptions import RemoteError, UnknownMethodError

from ..errors import RemoteException, describe, rebuild
from ..transport import Announcement, Extend, Transport, TransportHandler
from .codec import (
    EncodeError,
    Encoder,
    compile_type,
    error_name,
    escape_name,
    needs_decoding,
    plain,
    to_variant,
    unescape_name,
)

log = logging.getLogger(__name__)

MODULE_IFACE = "org.pyobs.Module"
EVENT_IFACE = "org.pyobs.Event"
IFACE_PREFIX = "org.pyobs."
ERROR_PREFIX = "org.pyobs.Error."
PROPS_IFACE = "org.freedesktop.DBus.Properties"
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

_HEADER = (
    '<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"\n'
    ' "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">\n'
)
_STANDARD_XML = """  <interface name="org.freedesktop.DBus.Introspectable">
    <method name="Introspect"><arg name="xml_data" type="s" direction="out"/></method>
  </interface>
  <interface name="org.freedesktop.DBus.Peer">
    <method name="Ping"/>
    <method name="GetMachineId"><arg name="machine_uuid" type="s" direction="out"/></method>
  </interface>
  <interface name="org.freedesktop.DBus.Properties">
    <method name="Get">
      <arg name="interface_name" type="s" direction="in"/><arg name="property_name" type="s" direction="in"/>
      <arg name="value" type="v" direction="out"/>
    </method>
    <method name="GetAll">
      <arg name="interface_name" type="s" direction="in"/><arg name="props" type="a{sv}" direction="out"/>
    </method>
    <method name="Set">
      <arg name="interface_name" type="s" direction="in"/><arg name="property_name" type="s" direction="in"/>
      <arg name="value" type="v" direction="in"/>
    </method>
    <signal name="PropertiesChanged">
      <arg name="interface_name" type="s"/><arg name="changed_properties" type="a{sv}"/>
      <arg name="invalidated_properties" type="as"/>
    </signal>
  </interface>
  <interface name="org.pyobs.Module">
    <method name="Describe">
      <arg name="interfaces" type="a(su)" direction="out"/><arg name="sends" type="as" direction="out"/>
      <arg name="label" type="s" direction="out"/>
    </method>
    <signal name="Described">
      <arg name="interfaces" type="a(su)"/><arg name="sends" type="as"/><arg name="label" type="s"/>
    </signal>
    <signal name="CallTimeout"><arg name="serial" type="u"/><arg name="seconds" type="d"/></signal>
  </interface>
"""


@dataclass
class _Incoming:
    """One of our methods as D-Bus sees it (callee side)."""

    spec: MethodSpec
    interface: str
    accepted: frozenset[str]  # full signature, or shorter ones when trailing args have defaults
    in_sig: str
    decode: bool
    check: bool  # arguments need a cast to be validated (beyond what the signature says)
    out_sig: str
    out_enc: Encoder | None


@dataclass
class _Outgoing:
    """A peer's method as we call it (caller side)."""

    spec: MethodSpec
    interface: str
    in_sig: str
    encoders: list[Encoder | None] | None
    out_sig: str
    decode: bool


def _pure(p: Param) -> bool:
    ann = p.annotation
    return ann in _PURE


def _ignore_result(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


class DbusTransport(Transport):
    """A module on a D-Bus bus.

    Args:
        name: the module name (any string; escaped into the bus name, see docs/dbus.md).
        bus: ``"session"``, ``"system"`` or an explicit address such as ``"unix:path=/tmp/bus"``.
        prefix: the well-known name prefix; modules with the same prefix see each other.
        timeout: deadline of the transport's own bus requests (connect, match rules, Describe).
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
        self._incoming: dict[tuple[str, str], _Incoming] = {}
        self._members: dict[str, _Incoming] = {}
        self._state_ifaces: set[str] = set()
        self._caps_ifaces: set[str] = set()
        self._state: dict[str, dict[str, Variant]] = {}
        self._receives: set[str] = set()
        # discovery
        self._owners: dict[str, str] = {}  # unique name -> module name
        self._names: dict[str, str] = {}  # module name -> unique name
        self._online: set[str] = set()
        self._describing: dict[str, asyncio.Task[None]] = {}
        # calls out
        self._outgoing: dict[int, _Outgoing] = {}
        self._dest: dict[str, str] = {}
        self._pending: dict[int, tuple[str, Extend]] = {}
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
            raise RemoteError(f"{self.name}: not connected to the D-Bus bus ({self.bus_description})")
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

    # ------------------------------------------------------------------ lifecycle

    async def open(self, handler: TransportHandler) -> None:
        self._handler = handler
        self._loop = asyncio.get_running_loop()
        self._closing = False
        await self._connect()
        self._watch = self._loop.create_task(self._watch_connection())

    async def _connect(self) -> None:
        try:
            bus = MessageBus(bus_address=self._address, bus_type=self._bus_type)  # finds the address
            async with asyncio.timeout(self.timeout):
                await bus.connect()
        except TimeoutError:
            raise ConnectionError(
                f"{self.name}: connecting to the D-Bus bus ({self.bus_description}) timed out"
            ) from None
        except Exception as exc:
            raise ConnectionError(
                f"{self.name}: cannot connect to the D-Bus bus ({self.bus_description}): {exc}"
            ) from None
        bus.add_message_handler(self._on_message)
        self._bus = bus
        try:
            await self._bus_request(
                "AddMatch",
                "s",
                [
                    f"type='signal',sender='{DBUS_NAME}',interface='{DBUS_NAME}',member='NameOwnerChanged',"
                    f"arg0namespace='{self.prefix}'"
                ],
            )
            await self._bus_request(
                "AddMatch", "s", [f"type='signal',path='{self.path}',interface='{MODULE_IFACE}',member='Described'"]
            )
            self._event_rules = set()  # a new connection has no match rules: add what we want now
            for name in sorted(self._receives):
                await self._bus_request("AddMatch", "s", [self._event_rule(name)])
                self._event_rules.add(name)
            for peer, iface in self._state_rules:
                await self._bus_request("AddMatch", "s", [self._state_rule(peer, iface)])
            if self._info is not None:
                await self._request_name()
            await self._discover()
        except BaseException:
            self._bus = None
            bus.disconnect()
            raise

    async def _request_name(self) -> None:
        (reply,) = await self._bus_request("RequestName", "su", [self.bus_name, 4])  # DO_NOT_QUEUE
        if reply not in (1, 4):  # primary owner / already owner
            raise ValueError(
                f"a module named '{self.name}' is already online on this bus ({self.bus_name} has another owner)"
            )

    async def _discover(self) -> None:
        (names,) = await self._bus_request("ListNames")
        for bus_name in names:
            peer = self._peer_of(bus_name)
            if peer is None or bus_name == self.bus_name:
                continue
            self._describe_later(peer, None)
        tasks = list(self._describing.values())
        if tasks:
            await asyncio.wait(tasks, timeout=self.timeout)

    async def _watch_connection(self) -> None:
        """Reconnect when the bus goes away, until closed."""
        while not self._closing:
            bus = self._bus
            if bus is None:
                return
            # a task of its own: cancelling this watcher must not cancel the bus's disconnect future
            disconnected = asyncio.ensure_future(bus.wait_for_disconnect())  # type: ignore[no-untyped-call]
            await asyncio.wait({disconnected})
            exc = None if disconnected.cancelled() else disconnected.exception()
            if exc is None:
                reason = "the bus closed the connection"
            else:
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if self._closing:
                return
            self._lost(reason)
            delay = 0.05
            while not self._closing:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                try:
                    await self._connect()
                except ValueError as exc:  # our name was taken meanwhile
                    log.warning("%s: reconnected, but cannot go online again: %s", self.name, exc)
                    continue
                except Exception as exc:
                    log.debug("%s: reconnecting to the D-Bus bus failed: %s", self.name, exc)
                    continue
                if self._handler is not None:
                    self._handler.connection_changed(True)
                break

    def _lost(self, reason: str) -> None:
        self._bus = None
        for task in self._describing.values():
            task.cancel()
        self._describing.clear()
        self._owners.clear()
        self._names.clear()
        self._pending.clear()
        handler = self._handler
        online, self._online = self._online, set()
        if handler is not None:
            handler.connection_changed(False, f"D-Bus bus ({self.bus_description}) lost: {reason}; reconnecting")
            for peer in online:
                handler.peer_offline(peer)

    async def announce(self, info: Announcement) -> None:
        first = self._info is None
        self._info = info
        self._build(info)
        for iface, state in info.state.items():
            self._state[iface] = _props(state)
        await self._update_event_rules(info.receives)
        if first:
            try:
                await self._request_name()
            except BaseException:
                self._info = None
                raise
        else:
            self._send_described()

    async def update_events(self, sends: set[str], receives: set[str]) -> None:
        info = self._info
        if info is None:
            return
        info.sends, info.receives = set(sends), set(receives)
        self._build(info)
        await self._update_event_rules(receives)
        self._send_described()

    def _send_described(self) -> None:
        self._send(Message.new_signal(self.path, MODULE_IFACE, "Described", DESCRIBE_SIGNATURE, self._describe_body))

    async def close(self) -> None:
        self._closing = True
        if self._watch is not None:
            self._watch.cancel()
        for task in list(self._describing.values()) + list(self._tasks):
            task.cancel()
        bus, self._bus = self._bus, None
        self._info = None
        self._online.clear()
        if bus is not None:
            bus.disconnect()
            disconnected = asyncio.ensure_future(bus.wait_for_disconnect())  # type: ignore[no-untyped-call]
            await asyncio.wait({disconnected}, timeout=2.0)
            if not disconnected.done():
                disconnected.cancel()
            elif not disconnected.cancelled():
                disconnected.exception()

    # ------------------------------------------------------------------ what we offer

    def _build(self, info: Announcement) -> None:
        """Method tables, introspection XML and Describe reply for what we announce."""
        incoming: dict[tuple[str, str], _Incoming] = {}
        members: dict[str, _Incoming] = {}
        xml = [_HEADER, "<node>\n", _STANDARD_XML]
        sends = sorted(n for n in info.sends if is_member_name_valid(n))
        if sends:
            xml.append(f'  <interface name="{EVENT_IFACE}">\n')
            for n in sends:
                xml.append(
                    f'    <signal name="{n}"><arg name="uuid" type="s"/><arg name="timestamp" type="d"/>'
                    '<arg name="data" type="a{sv}"/></signal>\n'
                )
            xml.append("  </interface>\n")
        self._state_ifaces, self._caps_ifaces = set(), set()
        for iface in info.interfaces:
            dbus_iface = IFACE_PREFIX + iface.__name__
            if not is_interface_name_valid(dbus_iface):
                log.warning("%s: interface %s has no valid D-Bus name and is not exported", self.name, iface.__name__)
                continue
            xml.append(f"  <interface name={quoteattr(dbus_iface)}>\n")
            for name, spec in own_methods(iface).items():
                if not is_member_name_valid(name):
                    log.warning("%s: method %s has no valid D-Bus name and is not exported", self.name, name)
                    continue
                entry = _incoming(spec, dbus_iface)
                incoming[(dbus_iface, name)] = entry
                members[name] = entry
                xml.append(f"    <method name={quoteattr(name)}>\n")
                for p in spec.params:
                    sig = compile_type(p.annotation)[0]
                    xml.append(f'      <arg name={quoteattr(p.name)} type="{sig}" direction="in"/>\n')
                if entry.out_sig:
                    xml.append(f'      <arg name="result" type="{entry.out_sig}" direction="out"/>\n')
                xml.append("    </method>\n")
            if iface.own_state_class() is not None:
                self._state_ifaces.add(iface.__name__)
                xml.append('    <property name="State" type="a{sv}" access="read">\n')
                xml.append('      <annotation name="org.freedesktop.DBus.Property.EmitsChangedSignal" value="true"/>\n')
                xml.append("    </property>\n")
            if iface.own_capabilities_class() is not None or iface.__name__ in info.capabilities:
                self._caps_ifaces.add(iface.__name__)
                xml.append('    <property name="Capabilities" type="a{sv}" access="read">\n')
                xml.append(
                    '      <annotation name="org.freedesktop.DBus.Property.EmitsChangedSignal" value="const"/>\n'
                )
                xml.append("    </property>\n")
            xml.append("  </interface>\n")
        xml.append("</node>\n")
        self._incoming, self._members = incoming, members
        self._xml = "".join(xml)
        self._describe_body = [
            [[i.__name__, int(i.version)] for i in info.interfaces],
            sorted(info.sends),
            info.label or "",
        ]

    # ------------------------------------------------------------------ incoming messages

    def _on_message(self, msg: Message) -> Message | bool | None:
        try:
            mtype = msg.message_type
            if mtype is _CALL:
                if msg.path == self.path:
                    return self._on_call(msg)
                if msg.path in self._parents and msg.interface in (None, "org.freedesktop.DBus.Introspectable"):
                    if msg.member == "Introspect":
                        child = self._parents[msg.path or "/"]
                        return Message.new_method_return(
                            msg, "s", [f'{_HEADER}<node>\n  <node name="{child}"/>\n</node>\n']
                        )
                return None
            if mtype is _SIGNAL:
                self._on_signal(msg)
        except Exception:
            log.exception(
                "%s: failed to handle a D-Bus message %s.%s from %s", self.name, msg.interface, msg.member, msg.sender
            )
            if msg.message_type is _CALL:
                return Message.new_error(
                    msg, "org.freedesktop.DBus.Error.Failed", f"internal error in module '{self.name}'"
                )
        return None

    def _on_call(self, msg: Message) -> Message | bool | None:
        iface = msg.interface
        member = msg.member or ""
        if iface is not None and iface.startswith("org.freedesktop.DBus."):
            if iface == "org.freedesktop.DBus.Introspectable" and member == "Introspect":
                return Message.new_method_return(msg, "s", [self._xml or f"{_HEADER}<node/>\n"])
            if iface == PROPS_IFACE:
                return self._on_properties(msg)
            return None  # Peer: dbus-fast answers Ping and GetMachineId
        if self._info is None:
            return Message.new_error(msg, E_UNKNOWN_OBJECT, f"module '{self.name}' is not online yet")
        if iface == MODULE_IFACE:
            if member == "Describe" and not msg.signature:
                return Message.new_method_return(msg, DESCRIBE_SIGNATURE, self._describe_body)
            return self._reject(msg, E_UNKNOWN_METHOD, f"{MODULE_IFACE} has no method {member}({msg.signature})")
        entry = self._incoming.get((iface, member)) if iface is not None else self._members.get(member)
        if entry is None:
            where = f"{iface}.{member}" if iface else member
            return self._reject(msg, E_UNKNOWN_METHOD, f"module '{self.name}' has no method {where}")
        sig = msg.signature
        if sig != entry.in_sig and sig not in entry.accepted:
            params = ", ".join(f"{p.name}: {compile_type(p.annotation)[0]}" for p in entry.spec.params)
            return self._reject(
                msg,
                E_INVALID_ARGS,
                f"{entry.spec.name}() takes signature '{entry.in_sig}' ({params}), got '{sig}'",
            )
        args = msg.body
        if entry.decode:
            args = [plain(a) for a in args]
        if entry.check:
            try:
                entry.spec.cast_args(args)
            except Exception as exc:  # CastError/TypeError naming the argument, or a dataclass refusing values
                return self._reject(msg, E_INVALID_ARGS, str(exc), exc)
        self._spawn(self._serve(msg, entry, args))
        return True

    def _reject(self, msg: Message, name: str, text: str, exc: BaseException | None = None) -> Message | bool:
        log.warning("%s: rejected call %s.%s from %s: %s", self.name, msg.interface, msg.member, msg.sender, text)
        if msg.flags & _NO_REPLY:
            return True
        if exc is None:
            exc = UnknownMethodError(text) if name == E_UNKNOWN_METHOD else TypeError(text)
        remote = describe(exc)
        return Message(
            message_type=_ERROR,
            reply_serial=msg.serial,
            destination=msg.sender,
            error_name=name,
            signature=ERROR_SIGNATURE,
            body=[text, remote.type, list(remote.bases)],
        )

    async def _serve(self, msg: Message, entry: _Incoming, args: list[Any]) -> None:
        handler = self._handler
        assert handler is not None
        caller = msg.sender
        sender = self._owners.get(caller, caller) if caller else ""

        def announce(seconds: float) -> None:
            self._send(
                Message(
                    message_type=_SIGNAL,
                    destination=caller,
                    path=self.path,
                    interface=MODULE_IFACE,
                    member="CallTimeout",
                    signature="ud",
                    body=[msg.serial, float(seconds)],
                )
            )

        try:
            result = await handler.handle_call(sender, entry.spec.name, args, announce)
            if entry.out_sig:
                body = [result if entry.out_enc is None else entry.out_enc(result)]
                reply = Message(
                    message_type=_RETURN,
                    reply_serial=msg.serial,
                    destination=caller,
                    signature=entry.out_sig,
                    body=body,
                    validate=False,
                )
            else:
                reply = Message(message_type=_RETURN, reply_serial=msg.serial, destination=caller, validate=False)
        except Exception as exc:
            reply = self._error_reply(msg, exc)
        if msg.flags & _NO_REPLY:
            return
        bus = self._bus
        if bus is None:
            return
        try:
            bus.send(reply).add_done_callback(_ignore_result)
        except Exception as exc:  # the result does not fit the declared signature
            log.error("%s: cannot send the result of %s(): %s", self.name, entry.spec.name, exc)
            err = EncodeError(f"{entry.spec.name}() returned a value that cannot be sent over D-Bus: {exc}")
            bus.send(self._error_reply(msg, err)).add_done_callback(_ignore_result)

    def _error_reply(self, msg: Message, exc: BaseException) -> Message:
        remote = describe(exc)
        name = E_UNKNOWN_METHOD if isinstance(exc, UnknownMethodError) else error_name(remote.type)
        return Message(
            message_type=_ERROR,
            reply_serial=msg.serial,
            destination=msg.sender,
            error_name=name,
            signature=ERROR_SIGNATURE,
            body=[remote.message, remote.type, list(remote.bases)],
        )

    def _on_properties(self, msg: Message) -> Message:
        member, sig, body = msg.member, msg.signature, msg.body
        if member == "Get" and sig == "ss":
            iface, prop = body
            props = self._properties(iface)
            if props is None:
                return Message.new_error(msg, E_UNKNOWN_INTERFACE, f"module '{self.name}' has no interface {iface}")
            if prop not in props:
                return Message.new_error(msg, E_UNKNOWN_PROPERTY, f"{iface} has no property {prop!r}")
            return Message.new_method_return(msg, "v", [props[prop]])
        if member == "GetAll" and sig == "s":
            props = self._properties(body[0])
            if props is None:
                return Message.new_error(msg, E_UNKNOWN_INTERFACE, f"module '{self.name}' has no interface {body[0]}")
            return Message.new_method_return(msg, "a{sv}", [props])
        if member == "Set" and sig == "ssv":
            return Message.new_error(msg, E_READ_ONLY, f"{body[0]}.{body[1]} is read-only")
        text = f"{PROPS_IFACE} has no method {member}({sig})"
        log.warning("%s: rejected call from %s: %s", self.name, msg.sender, text)
        return Message.new_error(
            msg, E_UNKNOWN_METHOD if member not in ("Get", "GetAll", "Set") else E_INVALID_ARGS, text
        )

    def _properties(self, dbus_iface: str) -> dict[str, Variant] | None:
        info = self._info
        if info is None or not dbus_iface.startswith(IFACE_PREFIX):
            return None
        name = dbus_iface[len(IFACE_PREFIX) :]
        if not any(i.__name__ == name for i in info.interfaces):
            return {} if name == "Module" and dbus_iface == MODULE_IFACE else None
        out: dict[str, Variant] = {}
        if name in self._state_ifaces:
            out["State"] = Variant("a{sv}", self._state.get(name, {}), False)
        if name in self._caps_ifaces:
            out["Capabilities"] = Variant("a{sv}", _props(info.capabilities.get(name)), False)
        return out

    def _on_signal(self, msg: Message) -> None:
        iface = msg.interface
        if iface == EVENT_IFACE:
            self._on_event(msg)
        elif iface == PROPS_IFACE:
            if msg.member == "PropertiesChanged" and msg.path == self.path:
                self._on_properties_changed(msg)
        elif iface == DBUS_NAME:
            if msg.member == "NameOwnerChanged" and msg.sender == DBUS_NAME and msg.signature == "sss":
                self._on_owner_changed(*msg.body)
        elif iface == MODULE_IFACE:
            if msg.member == "CallTimeout":
                self._on_call_timeout(msg)
            elif msg.member == "Described" and msg.path == self.path:
                peer = self._owners.get(msg.sender or "")
                if peer is not None and peer in self._online and msg.signature == DESCRIBE_SIGNATURE:
                    self._report(peer, msg.body)

    def _on_event(self, msg: Message) -> None:
        bus = self._bus
        name = msg.member or ""
        if msg.path != self.path or name not in self._receives or bus is None or msg.sender == bus.unique_name:
            return
        sender = self._owners.get(msg.sender or "", msg.sender or "")
        if msg.signature != EVENT_SIGNATURE:
            log.warning(
                "%s: dropped event %s from %s: signature '%s', expected '%s'",
                self.name,
                name,
                sender,
                msg.signature,
                EVENT_SIGNATURE,
            )
            return
        uuid, timestamp, data = msg.body
        try:
            event = Event.from_dict({"type": name, "uuid": uuid, "timestamp": timestamp, "data": plain(data)})
        except Exception as exc:  # ValueError naming the problem; anything else from an odd event class
            log.warning("%s: dropped malformed event %s from %s: %s", self.name, name, sender, exc)
            return
        if self._handler is not None:
            self._handler.event_received(sender, event)

    def _on_properties_changed(self, msg: Message) -> None:
        peer = self._owners.get(msg.sender or "")
        if peer is None or msg.signature != "sa{sv}as":
            return
        dbus_iface, changed, _ = msg.body
        if not dbus_iface.startswith(IFACE_PREFIX) or "State" not in changed:
            return
        iface = dbus_iface[len(IFACE_PREFIX) :]
        if (peer, iface) in self._state_rules and self._handler is not None:
            value = plain(changed["State"])
            self._handler.state_received(peer, iface, value or None)

    def _on_owner_changed(self, bus_name: str, old: str, new: str) -> None:
        peer = self._peer_of(bus_name)
        if peer is None or bus_name == self.bus_name:
            return
        if old:
            self._owners.pop(old, None)
            if self._names.get(peer) == old:
                del self._names[peer]
            task = self._describing.pop(peer, None)
            if task is not None:
                task.cancel()
            if peer in self._online:
                self._online.discard(peer)
                if self._handler is not None:
                    self._handler.peer_offline(peer)
        if new:
            self._describe_later(peer, new)

    def _on_call_timeout(self, msg: Message) -> None:
        bus = self._bus
        if bus is None or msg.destination != bus.unique_name or msg.signature != "ud":
            return
        serial, seconds = msg.body
        pending = self._pending.get(serial)
        if pending is None:
            return
        peer, extend = pending
        if self._owners.get(msg.sender or "") != peer:
            log.warning("%s: ignored a call timeout for %s from %s", self.name, peer, msg.sender)
            return
        extend(float(seconds))

    # ------------------------------------------------------------------ discovery

    def _describe_later(self, peer: str, owner: str | None) -> asyncio.Task[None]:
        if owner is not None:
            self._owners[owner] = peer
            self._names[peer] = owner
        old = self._describing.pop(peer, None)
        if old is not None:
            old.cancel()
        task = self._spawn(self._describe(peer, owner))
        self._describing[peer] = task

        def done(t: asyncio.Task[None]) -> None:
            if self._describing.get(peer) is t:
                del self._describing[peer]

        task.add_done_callback(done)
        return task

    async def _describe(self, peer: str, owner: str | None) -> None:
        try:
            if owner is None:
                reply = await self._request(
                    DBUS_NAME, DBUS_PATH, DBUS_NAME, "GetNameOwner", "s", [self.peer_bus_name(peer)]
                )
                if reply.message_type is _ERROR:
                    return  # gone again
                owner = str(reply.body[0])
                self._owners[owner] = peer
                self._names[peer] = owner
            reply = await self._request(owner, self.path, MODULE_IFACE, "Describe")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("%s: cannot describe module '%s': %s", self.name, peer, exc)
            return
        if self._names.get(peer) != owner:
            return  # it went away meanwhile
        if reply.message_type is _ERROR or reply.signature != DESCRIBE_SIGNATURE:
            text = reply.body[0] if reply.body and isinstance(reply.body[0], str) else reply.signature
            log.warning("%s: module '%s' gave no valid description: %s %s", self.name, peer, reply.error_name, text)
            return
        self._report(peer, reply.body)

    def _report(self, peer: str, body: list[Any]) -> None:
        interfaces, sends, label = body
        self._online.add(peer)
        if self._handler is not None:
            self._handler.peer_online(peer, [(str(n), int(v)) for n, v in interfaces], set(sends), str(label))

    async def resolve(self, peer: str) -> bool:
        if self._bus is None or peer == self.name:
            return False
        task = self._describing.get(peer)
        if task is None:
            task = self._describe_later(peer, self._names.get(peer))
        try:
            async with asyncio.timeout(self.timeout):
                await asyncio.wait({task})
        except TimeoutError:
            return False
        return peer in self._online

    # ------------------------------------------------------------------ calls out

    def _compile_out(self, spec: MethodSpec) -> _Outgoing:
        iface = IFACE_PREFIX + spec.interface.__name__
        if not is_interface_name_valid(iface) or not is_member_name_valid(spec.name):
            raise TypeError(f"{iface}.{spec.name} is no valid D-Bus interface/method name (use ASCII identifiers)")
        compiled = [compile_type(p.annotation) for p in spec.params]
        encoders = [e for _, e in compiled]
        out_sig = "" if spec.void else compile_type(spec.returns)[0]
        out = _Outgoing(
            spec=spec,
            interface=iface,
            in_sig="".join(s for s, _ in compiled),
            encoders=encoders if any(e is not None for e in encoders) else None,
            out_sig=out_sig,
            decode=needs_decoding(out_sig),
        )
        self._outgoing[id(spec)] = out
        return out

    async def call(self, peer: str, method: MethodSpec, args: list[Any], extend: Extend) -> Any:
        bus = self._bus
        if bus is None:
            raise RemoteError(f"cannot call {peer}.{method.name}(): not connected to the D-Bus bus")
        out = self._outgoing.get(id(method))
        if out is None or out.spec is not method:
            out = self._compile_out(method)
        encoders = out.encoders
        if encoders is None:
            body = args
        else:
            try:
                body = [a if e is None else e(a) for e, a in zip(encoders, args, strict=True)]
            except EncodeError as exc:
                raise TypeError(f"{method.name}(): {exc}") from None
        serial = bus.next_serial()
        msg = Message(
            destination=self._dest.get(peer) or self.peer_bus_name(peer),
            path=self.path,
            interface=out.interface,
            member=method.name,
            signature=out.in_sig,
            body=body,
            serial=serial,
            validate=False,
        )
        assert self._loop is not None
        fut: asyncio.Future[Message] = self._loop.create_future()

        def on_reply(reply: Message | None, err: Exception | None) -> None:
            if fut.done():
                return
            if reply is not None:
                fut.set_result(reply)
            else:
                fut.set_exception(
                    RemoteError(f"call {peer}.{method.name}() failed: connection to the D-Bus bus lost ({err})")
                )

        self._pending[serial] = (peer, extend)
        try:
            bus._call(msg, on_reply)
        except Exception as exc:
            self._pending.pop(serial, None)
            bus._method_return_handlers.pop(serial, None)
            raise TypeError(f"cannot send {peer}.{method.name}(): arguments do not fit '{out.in_sig}': {exc}") from None
        try:
            reply = await fut
        finally:
            self._pending.pop(serial, None)
            if not fut.done():
                bus._method_return_handlers.pop(serial, None)
        if reply.message_type is _RETURN:
            if not out.out_sig or not reply.body:
                return None
            value = reply.body[0]
            return plain(value) if out.decode or reply.signature != out.out_sig else value
        raise self._error(reply, peer, method.name)

    def _error(self, reply: Message, peer: str, method: str) -> BaseException:
        name = reply.error_name or ""
        body = reply.body
        where = f"{peer}.{method}()"
        if reply.signature == ERROR_SIGNATURE:
            return rebuild(RemoteException(body[1], body[0], tuple(body[2])), where)
        text = body[0] if body and isinstance(body[0], str) else ""
        if name in E_GONE:
            return RemoteError(f"call {where} failed: module '{peer}' went offline ({text})")
        if name == E_UNKNOWN_METHOD:
            return UnknownMethodError(f"{where}: {text}")
        if name == E_INVALID_ARGS:
            return TypeError(f"{where}: {text}")
        if name.startswith(ERROR_PREFIX):
            return rebuild(RemoteException(name[len(ERROR_PREFIX) :], text), where)
        return RemoteError(f"call {where} failed: {name}: {text}", original_type=name)

    # ------------------------------------------------------------------ events

    def _event_rule(self, name: str) -> str:
        return f"type='signal',path='{self.path}',interface='{EVENT_IFACE}',member='{name}'"

    async def _update_event_rules(self, receives: set[str]) -> None:
        wanted = {n for n in receives if is_member_name_valid(n)}
        self._receives = wanted
        if self._bus is None:
            return
        for name in sorted(wanted - self._event_rules):
            await self._bus_request("AddMatch", "s", [self._event_rule(name)])
            self._event_rules.add(name)
        for name in sorted(self._event_rules - wanted):
            self._event_rules.discard(name)
            try:
                await self._bus_request("RemoveMatch", "s", [self._event_rule(name)])
            except RemoteError as exc:
                log.debug("%s: %s", self.name, exc)

    async def publish_event(self, event: Event) -> None:
        bus = self._bus
        if bus is None:
            raise RemoteError(f"cannot send {event.type}: '{self.name}' is not connected to the D-Bus bus")
        if not is_member_name_valid(event.type):
            raise ValueError(f"cannot send {event.type}: its name is no valid D-Bus member name (use ASCII)")
        try:
            data = {k: to_variant(v) for k, v in event.data.items()}
            msg = Message.new_signal(
                self.path, EVENT_IFACE, event.type, EVENT_SIGNATURE, [event.uuid, event.timestamp, data]
            )
            fut = bus.send(msg)  # marshals now: a value D-Bus cannot carry fails here
        except Exception as exc:
            raise ValueError(f"cannot send {event.type} over D-Bus: {exc}") from None
        fut.add_done_callback(_ignore_result)

    # ------------------------------------------------------------------ state

    def _state_rule(self, peer: str, iface: str) -> str:
        return (
            f"type='signal',sender='{self.peer_bus_name(peer)}',path='{self.path}',interface='{PROPS_IFACE}',"
            f"member='PropertiesChanged',arg0='{IFACE_PREFIX}{iface}'"
        )

    async def publish_state(self, interface: str, state: Any) -> None:
        props = _props(state)
        bus = self._bus
        if self._info is not None and bus is not None:
            signal = Message.new_signal(
                self.path,
                PROPS_IFACE,
                "PropertiesChanged",
                "sa{sv}as",
                [IFACE_PREFIX + interface, {"State": Variant("a{sv}", props, False)}, []],
            )
            try:
                fut = bus.send(signal)  # marshals now: a value D-Bus cannot carry fails here
            except Exception as exc:
                raise ValueError(f"cannot publish the state of {interface} over D-Bus: {exc}") from None
            fut.add_done_callback(_ignore_result)
        self._state[interface] = props

    async def _get_property(self, peer: str, interface: str, prop: str) -> Any:
        reply = await self._request(
            self.peer_bus_name(peer), self.path, PROPS_IFACE, "Get", "ss", [IFACE_PREFIX + interface, prop]
        )
        if reply.message_type is _ERROR:
            if reply.error_name in E_GONE:
                raise RemoteError(f"module '{peer}' is offline")
            return None
        return plain(reply.body[0]) or None

    async def subscribe_state(self, peer: str, interface: str) -> Any:
        key = (peer, interface)
        if key not in self._state_rules:
            await self._bus_request("AddMatch", "s", [self._state_rule(peer, interface)])
            self._state_rules.add(key)
        return await self._get_property(peer, interface, "State")

    async def unsubscribe_state(self, peer: str, interface: str) -> None:
        key = (peer, interface)
        if key in self._state_rules:
            self._state_rules.discard(key)
            try:
                await self._bus_request("RemoveMatch", "s", [self._state_rule(peer, interface)])
            except RemoteError as exc:
                log.debug("%s: %s", self.name, exc)

    async def fetch_capabilities(self, peer: str, interface: str) -> Any:
        return await self._get_property(peer, interface, "Capabilities")


def _incoming(spec: MethodSpec, dbus_iface: str) -> _Incoming:
    sigs = [compile_type(p.annotation)[0] for p in spec.params]
    required = sum(1 for p in spec.params if p.required)
    # trailing parameters with defaults may be left out (busctl users, older callers)
    accepted = frozenset("".join(sigs[:k]) for k in range(required, len(sigs) + 1))
    out_sig = "" if spec.void else compile_type(spec.returns)[0]
    return _Incoming(
        spec=spec,
        interface=dbus_iface,
        accepted=accepted,
        in_sig="".join(sigs),
        decode=any(needs_decoding(s) for s in sigs),
        check=not all(_pure(p) for p in spec.params),
        out_sig=out_sig,
        out_enc=None if not out_sig else compile_type(spec.returns)[1],
    )


def _props(value: Any) -> dict[str, Variant]:
    """A state or capabilities value as an ``a{sv}`` property value (empty: none)."""
    if value is None:
        return {}
    variant = to_variant(value)
    if variant.signature == "a{sv}":
        return dict(variant.value)
    return {"value": variant}
