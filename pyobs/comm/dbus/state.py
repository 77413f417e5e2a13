"""State and capabilities over D-Bus: the read-only properties ``State`` and ``Capabilities`` of each
interface (served via ``org.freedesktop.DBus.Properties``), ``PropertiesChanged`` signals when our
state changes, and match rules for the peers' states we subscribed to.

Owns: our current state per interface (as property values) and the peers' states we follow (their
match rules). A new connection has no match rules: the set is emptied when the link goes, and the
core subscribes again when it sees a peer again.
"""

from __future__ import annotations

import logging
from typing import Any

from dbus_fast import Message, Variant

from pyobs.utils.exceptions import RemoteError
from pyobs.utils.ratelimit import RateLimitedLog

from ..transport import TransportHandler
from . import wire
from .codec import plain, to_variant
from .exports import Exports
from .link import Link
from .peers import PeerTable
from .wire import Names

log = logging.getLogger(__name__)


def props(value: Any) -> dict[str, Variant]:
    """A state or capabilities value as an ``a{sv}`` property value (empty: none)."""
    if value is None:
        return {}
    variant = to_variant(value)
    if variant.signature == "a{sv}":
        return dict(variant.value)
    return {"value": variant}


class StateProperties:
    def __init__(self, names: Names, link: Link, peers: PeerTable, exports: Exports) -> None:
        self.names = names
        self.link = link
        self.peers = peers
        self.exports = exports
        self.handler: TransportHandler | None = None
        self._state: dict[str, dict[str, Variant]] = {}  # interface name -> our State property
        self._following: set[tuple[str, str]] = set()  # (peer, interface) with a match rule
        self._limited = RateLimitedLog(logging.getLogger("pyobs.comm.dbus"))

    # ------------------------------------------------------------------ ours

    def announce(self, state: dict[str, Any]) -> None:
        for iface, value in state.items():
            self._state[iface] = props(value)

    async def publish(self, interface: str, state: Any) -> None:
        value = props(state)
        if self.exports.online and self.link.up:
            signal = Message.new_signal(
                self.names.path,
                wire.PROPS_IFACE,
                "PropertiesChanged",
                "sa{sv}as",
                [wire.IFACE_PREFIX + interface, {"State": Variant("a{sv}", value, False)}, []],
            )
            try:
                self.link.send(signal)  # marshals now: a value D-Bus cannot carry fails here
            except Exception as exc:
                raise ValueError(f"cannot publish the state of {interface} over D-Bus: {exc}") from None
        self._state[interface] = value  # peers read it when they subscribe (again)

    def on_properties(self, msg: Message) -> Message:
        """A call of ``org.freedesktop.DBus.Properties`` on our object."""
        member, sig, body = msg.member, msg.signature, msg.body
        if (member, sig) in (("Get", "ss"), ("GetAll", "s")):
            values = self._properties(body[0])
            if values is None:
                text = f"module '{self.names.name}' has no interface {body[0]}"
                return Message.new_error(msg, wire.E_UNKNOWN_INTERFACE, text)
            if member == "GetAll":
                return Message.new_method_return(msg, "a{sv}", [values])
            if body[1] not in values:
                return Message.new_error(msg, wire.E_UNKNOWN_PROPERTY, f"{body[0]} has no property {body[1]!r}")
            return Message.new_method_return(msg, "v", [values[body[1]]])
        if member == "Set" and sig == "ssv":
            return Message.new_error(msg, wire.E_READ_ONLY, f"{body[0]}.{body[1]} is read-only")
        text = f"{wire.PROPS_IFACE} has no method {member}({sig})"
        self._limited.warning("rejected-props", "%s: rejected call from %s: %s", self.names.name, msg.sender, text)
        return Message.new_error(
            msg, wire.E_UNKNOWN_METHOD if member not in ("Get", "GetAll", "Set") else wire.E_INVALID_ARGS, text
        )

    def _properties(self, dbus_iface: str) -> dict[str, Variant] | None:
        has = self.exports.properties(dbus_iface)
        if has is None:
            return None
        has_state, has_caps = has
        name = dbus_iface[len(wire.IFACE_PREFIX) :]
        out: dict[str, Variant] = {}
        if has_state:
            out["State"] = Variant("a{sv}", self._state.get(name, {}), False)
        if has_caps:
            info = self.exports.info
            assert info is not None
            out["Capabilities"] = Variant("a{sv}", props(info.capabilities.get(name)), False)
        return out

    # ------------------------------------------------------------------ peers'

    def _rule(self, peer: str, iface: str) -> str:
        return (
            f"type='signal',sender='{self.peers.bus_name(peer)}',path='{self.names.path}',interface='{wire.PROPS_IFACE}',"
            f"member='PropertiesChanged',arg0='{wire.IFACE_PREFIX}{iface}'"
        )

    async def _get_property(self, peer: str, interface: str, prop: str) -> Any:
        # no deadline of our own: the core bounds subscribing and fetching capabilities
        reply = await self.link.request(
            self.peers.bus_name(peer),
            self.names.path,
            wire.PROPS_IFACE,
            "Get",
            "ss",
            [wire.IFACE_PREFIX + interface, prop],
        )
        if reply.message_type is wire.ERROR:
            if reply.error_name in wire.E_GONE:
                raise RemoteError(f"module '{peer}' is offline")
            return None
        return plain(reply.body[0]) or None

    async def subscribe(self, peer: str, interface: str) -> Any:
        key = (peer, interface)
        if key not in self._following:
            await self.link.add_match(self._rule(peer, interface))  # no deadline of our own: the core's
            self._following.add(key)
        return await self._get_property(peer, interface, "State")

    async def unsubscribe(self, peer: str, interface: str) -> None:
        key = (peer, interface)
        if key in self._following:
            self._following.discard(key)
            await self.link.remove_match(self._rule(peer, interface))

    async def capabilities(self, peer: str, interface: str) -> Any:
        return await self._get_property(peer, interface, "Capabilities")

    def on_properties_changed(self, msg: Message) -> None:
        peer = self.peers.module_of(msg.sender or "")
        if peer is None or msg.signature != "sa{sv}as":
            return
        dbus_iface, changed, _ = msg.body
        if not dbus_iface.startswith(wire.IFACE_PREFIX) or "State" not in changed:
            return
        iface = dbus_iface[len(wire.IFACE_PREFIX) :]
        if (peer, iface) in self._following and self.handler is not None:
            self.handler.state_received(peer, iface, plain(changed["State"]) or None)

    def forget(self) -> None:
        """Our link went: the new connection has no match rules."""
        self._following.clear()
