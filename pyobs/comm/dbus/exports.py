"""What a module offers over D-Bus: its method table, the introspection XML and the ``Describe`` reply.

Owns: the :class:`~pyobs.comm.transport.Announcement` we went online with and what is derived from
it — the method table incoming calls are looked up in, the introspection XML, the ``Describe``
reply and which interfaces have ``State``/``Capabilities`` properties — and the lifecycle state we
show (``GetModuleState()``, ``ModuleState`` signals). Rebuilt by ``announce`` and
``update_events``; a change is broadcast as the ``org.pyobs.Module.Described`` signal.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import quoteattr

from dbus_fast.validators import is_interface_name_valid, is_member_name_valid

from pyobs.interfaces.interface import MethodSpec, own_methods

from ..transport import Announcement
from .codec import Encoder, compile_type, needs_decoding
from .wire import EVENT_IFACE, IFACE_PREFIX, MODULE_IFACE

log = logging.getLogger(__name__)

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

_PROPERTY = """    <property name="{name}" type="a{{sv}}" access="read">
      <annotation name="org.freedesktop.DBus.Property.EmitsChangedSignal" value="{emits}"/>
    </property>
"""


@dataclass
class MethodWire:
    """A pyobs method as D-Bus carries it, compiled once: what the caller sends and the callee checks."""

    spec: MethodSpec
    interface: str
    arg_sigs: list[str]
    in_sig: str
    accepted: frozenset[str]  # callee: in_sig, or shorter when trailing args have defaults (busctl users)
    encoders: list[Encoder | None] | None  # caller: per argument (None: no argument needs one)
    decode_in: bool  # callee: arguments hold variants to unwrap (the core casts them)
    out_sig: str
    out_enc: Encoder | None  # callee
    decode_out: bool  # caller


def method_wire(spec: MethodSpec) -> MethodWire:
    compiled = [compile_type(p.annotation) for p in spec.params]
    sigs = [sig for sig, _ in compiled]
    encoders = [enc for _, enc in compiled]
    required = sum(1 for p in spec.params if p.required)
    out_sig, out_enc = ("", None) if spec.void else compile_type(spec.returns)
    return MethodWire(
        spec=spec,
        interface=IFACE_PREFIX + spec.interface.__name__,
        arg_sigs=sigs,
        in_sig="".join(sigs),
        accepted=frozenset("".join(sigs[:k]) for k in range(required, len(sigs) + 1)),
        encoders=encoders if any(e is not None for e in encoders) else None,
        decode_in=any(needs_decoding(s) for s in sigs),
        out_sig=out_sig,
        out_enc=out_enc,
        decode_out=needs_decoding(out_sig),
    )


class Exports:
    """Turns the announcement into method tables, introspection XML and the Describe reply."""

    def __init__(self, owner: str, path: str) -> None:
        self.owner = owner
        self.info: Announcement | None = None
        self.xml = f"{_HEADER}<node/>\n"
        self.describe_body: list[Any] = [[], [], ""]
        #: the lifecycle state we show (``ready``, ``error`` + message, ``local``)
        self.module_state: tuple[str, str] = ("ready", "")
        self._incoming: dict[tuple[str, str], MethodWire] = {}
        self._members: dict[str, MethodWire] = {}
        self._state_ifaces: set[str] = set()
        self._caps_ifaces: set[str] = set()
        # the nodes above our object path, each naming its child (for tools that walk the tree)
        parts = path.strip("/").split("/")
        self._parents = {"/" + "/".join(parts[:i]): parts[i] for i in range(len(parts))}

    @property
    def online(self) -> bool:
        return self.info is not None

    def entry(self, interface: str | None, member: str) -> MethodWire | None:
        """One of our methods, by D-Bus interface and member (interface None: by member only)."""
        return self._incoming.get((interface, member)) if interface is not None else self._members.get(member)

    def parent_xml(self, path: str) -> str | None:
        """Introspection XML of a node above our object path; None for other paths."""
        child = self._parents.get(path)
        return None if child is None else f'{_HEADER}<node>\n  <node name="{child}"/>\n</node>\n'

    def properties(self, dbus_iface: str) -> tuple[bool, bool] | None:
        """Whether interface ``dbus_iface`` has (State, Capabilities); None if we do not offer it."""
        info = self.info
        if info is None or not dbus_iface.startswith(IFACE_PREFIX):
            return None
        name = dbus_iface[len(IFACE_PREFIX) :]
        if not any(i.__name__ == name for i in info.interfaces):
            return (False, False) if dbus_iface == MODULE_IFACE else None
        return name in self._state_ifaces, name in self._caps_ifaces

    def clear(self) -> None:
        """We went offline."""
        self.info = None
        self.xml = f"{_HEADER}<node/>\n"

    def set_events(self, sends: set[str], receives: set[str]) -> None:
        assert self.info is not None
        self.info.sends, self.info.receives = set(sends), set(receives)
        self.build(self.info)

    def build(self, info: Announcement) -> None:
        """Method tables, introspection XML and Describe reply for what we announce."""
        self.info = info
        incoming: dict[tuple[str, str], MethodWire] = {}
        members: dict[str, MethodWire] = {}
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
                log.warning("%s: interface %s has no valid D-Bus name and is not exported", self.owner, iface.__name__)
                continue
            xml.append(f"  <interface name={quoteattr(dbus_iface)}>\n")
            for name, spec in own_methods(iface).items():
                if not is_member_name_valid(name):
                    log.warning("%s: method %s has no valid D-Bus name and is not exported", self.owner, name)
                    continue
                entry = method_wire(spec)
                incoming[(dbus_iface, name)] = entry
                members[name] = entry
                xml.append(f"    <method name={quoteattr(name)}>\n")
                for p, sig in zip(spec.params, entry.arg_sigs, strict=True):
                    xml.append(f'      <arg name={quoteattr(p.name)} type="{sig}" direction="in"/>\n')
                if entry.out_sig:
                    xml.append(f'      <arg name="result" type="{entry.out_sig}" direction="out"/>\n')
                xml.append("    </method>\n")
            if iface.own_state_class() is not None:
                self._state_ifaces.add(iface.__name__)
                xml.append(_PROPERTY.format(name="State", emits="true"))
            if iface.own_capabilities_class() is not None or iface.__name__ in info.capabilities:
                self._caps_ifaces.add(iface.__name__)
                xml.append(_PROPERTY.format(name="Capabilities", emits="const"))
            xml.append("  </interface>\n")
        xml.append("</node>\n")
        self._incoming, self._members = incoming, members
        self.xml = "".join(xml)
        self.describe_body = [
            [[i.__name__, int(i.version)] for i in info.interfaces],
            sorted(info.sends),
            info.label or "",
        ]
