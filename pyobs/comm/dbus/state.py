"""State and capabilities over D-Bus: the read-only properties ``State`` and ``Capabilities`` of each
interface (served via ``org.freedesktop.DBus.Properties``), ``PropertiesChanged`` signals when our
state changes, and match rules for the peers' states we subscribed to.
"""

from __future__ import annotations

from typing import Any

from dbus_fast import Message, Variant

from pyobs.utils.exceptions import RemoteError

from .base import (
    _ERROR,
    E_GONE,
    E_INVALID_ARGS,
    E_READ_ONLY,
    E_UNKNOWN_INTERFACE,
    E_UNKNOWN_METHOD,
    E_UNKNOWN_PROPERTY,
    IFACE_PREFIX,
    MODULE_IFACE,
    PROPS_IFACE,
    DbusBase,
    _ignore_result,
    log,
)
from .codec import (
    plain,
    to_variant,
)


def _props(value: Any) -> dict[str, Variant]:
    """A state or capabilities value as an ``a{sv}`` property value (empty: none)."""
    if value is None:
        return {}
    variant = to_variant(value)
    if variant.signature == "a{sv}":
        return dict(variant.value)
    return {"value": variant}


class StateMixin(DbusBase):
    """Serves our State/Capabilities properties and follows the states of peers."""

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
        self._limited.warning("rejected-props", "%s: rejected call from %s: %s", self.name, msg.sender, text)
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
