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

The parts live in their own modules, combined here as mixins: ``base`` (constants, shared state,
bus helpers), ``connection``, ``introspection``, ``calls``, ``events``, ``discovery`` and ``state``;
this module dispatches incoming messages to them.
"""

from __future__ import annotations

from dbus_fast import Message

from .base import (  # noqa: F401  (re-exported)
    _CALL,
    _ERROR,
    _NO_REPLY,
    _PREFIX_RE,
    _PURE,
    _RETURN,
    _SIGNAL,
    DBUS_NAME,
    DBUS_PATH,
    DESCRIBE_SIGNATURE,
    E_GONE,
    E_INVALID_ARGS,
    E_READ_ONLY,
    E_UNKNOWN_INTERFACE,
    E_UNKNOWN_METHOD,
    E_UNKNOWN_OBJECT,
    E_UNKNOWN_PROPERTY,
    ERROR_PREFIX,
    ERROR_SIGNATURE,
    EVENT_IFACE,
    EVENT_SIGNATURE,
    IFACE_PREFIX,
    MAX_STATUS,
    MODULE_IFACE,
    PROPS_IFACE,
    DbusBase,
    _ignore_result,
    log,
)
from .calls import CallsMixin, _Outgoing  # noqa: F401  (re-exported)
from .connection import ConnectionMixin
from .discovery import DiscoveryMixin
from .events import EventsMixin
from .introspection import _HEADER, _STANDARD_XML, IntrospectionMixin, _Incoming, _incoming, _pure  # noqa: F401
from .state import StateMixin, _props  # noqa: F401  (re-exported)


class DbusTransport(ConnectionMixin, IntrospectionMixin, CallsMixin, EventsMixin, DiscoveryMixin, StateMixin, DbusBase):
    """A module on a D-Bus bus.

    Args:
        name: the module name (any string; escaped into the bus name, see docs/dbus.md).
        bus: ``"session"``, ``"system"`` or an explicit address such as ``"unix:path=/tmp/bus"``.
        prefix: the well-known name prefix; modules with the same prefix see each other.
        timeout: deadline of the transport's own bus requests (connect, match rules, Describe).
    """

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
            elif msg.member == "CallProgress":
                self._on_call_progress(msg)
            elif msg.member == "Described" and msg.path == self.path:
                peer = self._owners.get(msg.sender or "")
                if peer is not None and peer in self._online and msg.signature == DESCRIBE_SIGNATURE:
                    self._report(peer, msg.body)
            elif msg.member == "ModuleState" and msg.path == self.path and msg.signature == "ss":
                peer = self._owners.get(msg.sender or "")
                if peer is not None and peer in self._online and self._handler is not None:
                    self._handler.peer_module_state(peer, str(msg.body[0]), str(msg.body[1])[:MAX_STATUS])
