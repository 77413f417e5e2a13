"""What a module offers over D-Bus: its method table, the introspection XML and the ``Describe`` reply.

Built from the :class:`~pyobs.comm.transport.Announcement` in ``announce``/``update_events``; changes
are broadcast as the ``org.pyobs.Module.Described`` signal.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

from dbus_fast import Message
from dbus_fast.validators import is_interface_name_valid, is_member_name_valid

from pyobs.interfaces.interface import MethodSpec, Param, own_methods

from ..transport import Announcement
from .base import (
    _PURE,
    DESCRIBE_SIGNATURE,
    EVENT_IFACE,
    IFACE_PREFIX,
    MODULE_IFACE,
    DbusBase,
    log,
)
from .codec import (
    Encoder,
    compile_type,
    needs_decoding,
)
from .state import _props

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
    <method name="GetModuleState">
      <arg name="state" type="s" direction="out"/><arg name="message" type="s" direction="out"/>
    </method>
    <signal name="ModuleState"><arg name="state" type="s"/><arg name="message" type="s"/></signal>
    <signal name="CallTimeout"><arg name="serial" type="u"/><arg name="seconds" type="d"/></signal>
    <signal name="CallProgress">
      <arg name="serial" type="u"/><arg name="seq" type="u"/><arg name="fraction" type="d"/>
      <arg name="message" type="s"/>
    </signal>
    <method name="Cancel">
      <arg name="serial" type="u" direction="in"/><arg name="wait" type="d" direction="in"/>
      <arg name="outcome" type="s" direction="out"/>
    </method>
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


def _pure(p: Param) -> bool:
    ann = p.annotation
    return ann in _PURE


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


class IntrospectionMixin(DbusBase):
    """Turns the announcement into method tables, introspection XML and the Describe reply."""

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

    async def set_module_state(self, state: str, message: str = "") -> None:
        """Shown to peers: the ``ModuleState`` signal now, ``GetModuleState()`` for who looks later."""
        new = (str(state), message if str(state) == "error" else "")
        if new == self._module_state:
            return
        self._module_state = new
        if self._info is not None and self._bus is not None:
            self._send(Message.new_signal(self.path, MODULE_IFACE, "ModuleState", "ss", list(new)))

    def _send_described(self) -> None:
        self._send(Message.new_signal(self.path, MODULE_IFACE, "Described", DESCRIBE_SIGNATURE, self._describe_body))

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
