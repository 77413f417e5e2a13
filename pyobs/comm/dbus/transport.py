"""DbusTransport: modules as D-Bus services on one bus (the wire format: docs/dbus.md).

Composed of parts that each own their state (each file says what): the :class:`~.link.Link`, the
:class:`~.peers.PeerTable`, the :class:`~.exports.Exports`, :class:`~.calls.CallServer` and
:class:`~.calls.CallClient`, :class:`~.events.EventSignals` and :class:`~.state.StateProperties`.
This module wires them together, runs the (re)connection sequence and routes incoming messages.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable
from typing import Any

from dbus_fast import Message

from pyobs.events.event import Event
from pyobs.interfaces.interface import MethodSpec

from ..calls import Call, CancelOutcome
from ..transport import Announcement, Extend, Transport, TransportHandler
from . import wire
from .calls import CallClient, CallServer
from .events import EventSignals
from .exports import Exports
from .link import Link
from .peers import PeerTable
from .state import StateProperties
from .wire import Names

log = logging.getLogger(__name__)


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
        self.names = names = Names.of(name, prefix)
        self.name = name
        self.bus_name = names.bus_name
        self.timeout = float(timeout)
        self._handler: TransportHandler | None = None
        self.link = Link(name, bus, self.timeout, self._on_message, self._setup, on_lost=self._lost, on_back=self._back)
        self.peers = PeerTable(names, self.link)
        self.exports = Exports(name, names.path)
        self.server = CallServer(names, self.link, self.peers, self.exports)
        self.client = CallClient(names, self.link, self.peers)
        self.events = EventSignals(names, self.link, self.peers)
        self.state = StateProperties(names, self.link, self.peers, self.exports)

    # ------------------------------------------------------------------ connection

    async def open(self, handler: TransportHandler) -> None:
        self._handler = handler
        for part in (self.peers, self.server, self.events, self.state):
            part.handler = handler
        await self.link.open()

    async def _setup(self) -> None:
        """Every (re)connection: match rules for discovery and our events, our name, who is online."""
        link, path = self.link, self.names.path
        await link.add_match(
            f"type='signal',sender='{wire.DBUS_NAME}',interface='{wire.DBUS_NAME}',member='NameOwnerChanged',"
            f"arg0namespace='{self.names.prefix}'",
            self.timeout,
        )
        for member in ("Described", "ModuleState"):
            rule = f"type='signal',path='{path}',interface='{wire.MODULE_IFACE}',member='{member}'"
            await link.add_match(rule, self.timeout)
        await self.events.install()
        if self.exports.online:
            await self._request_name()
        await self.peers.discover()

    async def _request_name(self) -> None:
        (reply,) = await self.link.bus_request("RequestName", "su", [self.bus_name, 4], self.timeout)  # DO_NOT_QUEUE
        if reply not in (1, 4):  # primary owner / already owner
            raise ValueError(
                f"a module named '{self.name}' is already online on this bus ({self.bus_name} has another owner)"
            )

    def _lost(self, reason: str) -> None:
        self.peers.forget()
        self.client.forget()
        self.state.forget()
        if self._handler is not None:
            self._handler.connection_changed(False, reason)

    async def _back(self) -> None:
        if self._handler is not None:
            self._handler.connection_changed(True)

    async def close(self) -> None:
        await self.events.drain()
        self.peers.close()
        self.server.close()
        self.exports.clear()
        await self.link.close()

    # ------------------------------------------------------------------ what we offer

    async def announce(self, info: Announcement) -> None:
        first = not self.exports.online
        self.exports.build(info)
        self.state.announce(info.state)
        await self.events.receive(info.receives)
        if first:
            try:
                await self._request_name()
            except BaseException:
                self.exports.clear()
                raise
        else:
            self._send_described()

    async def update_events(self, sends: set[str], receives: set[str]) -> None:
        if not self.exports.online:
            return
        self.exports.set_events(sends, receives)
        await self.events.receive(receives)
        self._send_described()

    async def set_module_state(self, state: str, message: str = "") -> None:
        """Shown to peers: the ``ModuleState`` signal now, ``GetModuleState()`` for who looks later."""
        new = (str(state), message if str(state) == "error" else "")
        if new == self.exports.module_state:
            return
        self.exports.module_state = new
        if self.exports.online:
            self.link.send(Message.new_signal(self.names.path, wire.MODULE_IFACE, "ModuleState", "ss", list(new)))

    def _send_described(self) -> None:
        self.link.send(
            Message.new_signal(
                self.names.path, wire.MODULE_IFACE, "Described", wire.DESCRIBE_SIGNATURE, self.exports.describe_body
            )
        )

    # ------------------------------------------------------------------ the Transport contract, by part

    async def call(
        self, peer: str, method: MethodSpec, args: list[Any], extend: Extend, control: Call | None = None
    ) -> Any:
        return await self.client.call(peer, method, args, extend, control)

    async def cancel(self, peer: str, wire_id: Hashable, wait: float) -> CancelOutcome:
        return await self.client.cancel(peer, wire_id, wait)

    async def publish_event(self, event: Event) -> None:
        await self.events.publish(event)

    async def publish_state(self, interface: str, state: Any) -> None:
        await self.state.publish(interface, state)

    async def subscribe_state(self, peer: str, interface: str) -> Any:
        return await self.state.subscribe(peer, interface)

    async def unsubscribe_state(self, peer: str, interface: str) -> None:
        await self.state.unsubscribe(peer, interface)

    async def fetch_capabilities(self, peer: str, interface: str) -> Any:
        return await self.state.capabilities(peer, interface)

    async def resolve(self, peer: str) -> bool:
        return await self.peers.resolve(peer)

    async def resend_unconfirmed(self) -> None:
        await self.events.resend_unwritten()

    # ------------------------------------------------------------------ incoming messages

    def _on_message(self, msg: Message) -> Message | bool | None:
        try:
            mtype = msg.message_type
            if mtype is wire.CALL:
                reply = self._on_call(msg)
                if isinstance(reply, Message):  # sent here, not by dbus-fast, which drops a failed send's future
                    self.link.send(reply)
                    return True
                return reply
            if mtype is wire.SIGNAL:
                self._on_signal(msg)
        except Exception:
            log.exception(
                "%s: failed to handle a D-Bus message %s.%s from %s", self.name, msg.interface, msg.member, msg.sender
            )
            if msg.message_type is wire.CALL:
                return Message.new_error(msg, wire.E_FAILED, f"internal error in module '{self.name}'")
        return None

    def _on_call(self, msg: Message) -> Message | bool | None:
        iface = msg.interface
        if msg.path != self.names.path:
            xml = self.exports.parent_xml(msg.path or "/")
            if xml is not None and iface in (None, wire.INTROSPECTABLE) and msg.member == "Introspect":
                return Message.new_method_return(msg, "s", [xml])
            return None
        if iface is not None and iface.startswith("org.freedesktop.DBus."):
            if iface == wire.INTROSPECTABLE and msg.member == "Introspect":
                return Message.new_method_return(msg, "s", [self.exports.xml])
            if iface == wire.PROPS_IFACE:
                return self.state.on_properties(msg)
            return None  # Peer: dbus-fast answers Ping and GetMachineId
        return self.server.on_call(msg)

    def _on_signal(self, msg: Message) -> None:
        iface = msg.interface
        if iface == wire.EVENT_IFACE:
            self.events.on_event(msg)
        elif iface == wire.PROPS_IFACE:
            if msg.member == "PropertiesChanged" and msg.path == self.names.path:
                self.state.on_properties_changed(msg)
        elif iface == wire.DBUS_NAME:
            if msg.member == "NameOwnerChanged" and msg.sender == wire.DBUS_NAME and msg.signature == "sss":
                self.peers.on_owner_changed(*msg.body)
        elif iface == wire.MODULE_IFACE:
            if msg.member == "CallTimeout":
                self.client.on_call_timeout(msg)
            elif msg.member == "CallProgress":
                self.client.on_call_progress(msg)
            elif msg.member == "Described" and msg.path == self.names.path:
                self.peers.on_described(msg.sender or "", msg.signature, msg.body)
            elif msg.member == "ModuleState" and msg.path == self.names.path:
                self.peers.on_module_state(msg.sender or "", msg.signature, msg.body)
