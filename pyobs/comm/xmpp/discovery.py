"""XEP-0030 disco#info: what we answer about ourselves (wire spec §4.2) and what we read from
peers, and :class:`Peer`, the record of a peer the parts share (the peer table owns it)."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any
from xml.etree.ElementTree import Element

from pyobs.events.event import event_by_name
from pyobs.interfaces.interface import Interface

from ..transport import Announcement
from . import control
from .rpc import COMPACT_NS
from .values import decode_fields, encode_fields, escape_attr

NS = "http://jabber.org/protocol/disco#info"
Q_QUERY = f"{{{NS}}}query"
Q_FEATURE = f"{{{NS}}}feature"

#: our own feature: send me the events I handle as messages (see transport), not through pubsub
DIRECT_EVENTS = "urn:pyobs:comm:direct-events:1"
IFACE_PREFIX = "urn:pyobs:interface:"
STATE_PREFIX = "urn:pyobs:state:"
EVENT_PREFIX = "urn:pyobs:event:"
CAPS_PREFIX = "urn:pyobs:capabilities:"
_EVENT_NS = re.compile(r"^\{urn:pyobs:event:([^:{}]+):(\d+)\}event$")
_CAPS_NS = re.compile(r"^\{urn:pyobs:capabilities:([^:{}]+):(\d+)\}capabilities$")


def info_body(info: Announcement, capabilities: dict[str, Any]) -> str:
    """The children of our ``<query xmlns='http://jabber.org/protocol/disco#info'>``.

    ``capabilities``: dataclass per interface name (IModule's included).
    """
    out = [
        '<identity category="automation" type="rpc"/>',
        '<feature var="jabber:iq:rpc"/>',
        f'<feature var="{DIRECT_EVENTS}"/>',
        f'<feature var="{COMPACT_NS}"/>',
        f'<feature var="{control.NS}"/>',
    ]
    ifaces: list[type[Interface]] = sorted(info.interfaces, key=lambda i: (i.__name__ != "IModule", i.__name__))
    for iface in ifaces:
        name = escape_attr(iface.__name__)
        out.append(f'<feature var="{IFACE_PREFIX}{name}:{iface.version}"/>')
        if iface.own_state_class() is not None:
            out.append(f'<feature var="{STATE_PREFIX}{name}:{iface.version}"/>')
    events = sorted(info.sends | info.receives)
    for ev in events:
        out.append(f'<feature var="{EVENT_PREFIX}{escape_attr(ev)}:{event_version(ev)}"/>')
    versions = {i.__name__: i.version for i in info.interfaces}
    caps_elements = []
    for iname in sorted(capabilities):
        value = capabilities[iname]
        if value is None or not dataclasses.is_dataclass(value):
            continue
        ns = f"{CAPS_PREFIX}{escape_attr(iname)}:{versions.get(iname, 1)}"
        out.append(f'<feature var="{ns}"/>')
        caps_elements.append(f'<capabilities xmlns="{ns}">{encode_fields(value)}</capabilities>')
    out.extend(caps_elements)
    for ev in events:
        roles = " ".join(r for r, on in (("send", ev in info.sends), ("subscribe", ev in info.receives)) if on)
        name = escape_attr(ev)
        out.append(f'<event xmlns="{EVENT_PREFIX}{name}:{event_version(ev)}" name="{name}" role="{roles}"/>')
    return "".join(out)


def event_version(name: str) -> int:
    """The version of the event type ``name`` (1 if unknown here)."""
    etype = event_by_name(name)
    return etype.version if etype is not None else 1


def info_result(to: str, iq_id: str, body: str, node: str | None = None) -> str:
    node_attr = f' node="{escape_attr(node)}"' if node else ""
    return f'<iq type="result" to="{to}" id="{iq_id}"><query xmlns="{NS}"{node_attr}>{body}</query></iq>'


@dataclass
class PeerInfo:
    """What a peer's disco#info says."""

    interfaces: list[tuple[str, int]] = field(default_factory=list)
    #: (event name, version) the peer publishes
    sends: set[tuple[str, int]] = field(default_factory=set)
    #: (event name, version) the peer handles (role "subscribe")
    receives: set[tuple[str, int]] = field(default_factory=set)
    #: plain capabilities (dict of fields) per interface name
    capabilities: dict[str, Any] = field(default_factory=dict)
    #: takes events as direct messages (a pyobs-comm peer)
    direct: bool = False
    #: takes calls in the compact envelope (a pyobs-comm peer; see rpc)
    compact_calls: bool = False
    #: takes cancels of calls and sends their progress (a pyobs-comm peer; see control)
    call_control: bool = False

    @property
    def label(self) -> str:
        caps = self.capabilities.get("IModule")
        label = caps.get("label") if isinstance(caps, dict) else None
        return label if isinstance(label, str) else ""


#: stands for the module's own name in a fingerprint (a label equal to the name)
_OWN_NAME = "\x00name"


def fingerprint(info: PeerInfo, name: str) -> str:
    """The caps ``ver`` of a pyobs-comm module: a hash of what its disco#info says, with its own
    name left out (the IModule label, when it is the name), so that modules that differ only in
    name share it (docs/xmpp.md, "Fleets"). A receiver computes it again from the reply it got and
    caches only what matches: a ``ver`` of another scheme (pyobs-core's, computed by slixmpp over
    the features alone) is never taken for more than one peer.
    """
    caps = _relabel(info.capabilities, name, _OWN_NAME)
    data = [
        sorted(info.interfaces), sorted(info.sends), sorted(info.receives), info.direct, info.compact_calls,
        json.dumps(caps, sort_keys=True, default=repr),
    ]  # fmt: skip
    digest = hashlib.sha1(json.dumps(data, default=repr).encode()).digest()
    return base64.b64encode(digest).decode()


def _relabel(capabilities: dict[str, Any], label: str, new: str) -> dict[str, Any]:
    """``capabilities`` with the IModule label ``label`` replaced by ``new`` (a copy), if it is there."""
    module = capabilities.get("IModule")
    if isinstance(module, dict) and module.get("label") == label:
        return {**capabilities, "IModule": {**module, "label": new}}
    return capabilities


def template(info: PeerInfo, name: str) -> PeerInfo:
    """``info`` of module ``name`` with its own name left out (see :func:`fingerprint`)."""
    return dataclasses.replace(info, capabilities=_relabel(info.capabilities, name, _OWN_NAME))


def instantiate(tmpl: PeerInfo, name: str) -> PeerInfo:
    """The info of module ``name`` whose ``ver`` matched ``tmpl`` (fresh containers: never shared)."""
    caps = dict(_relabel(tmpl.capabilities, _OWN_NAME, name))
    return dataclasses.replace(
        tmpl, interfaces=list(tmpl.interfaces), sends=set(tmpl.sends), receives=set(tmpl.receives), capabilities=caps
    )


def own_fingerprint(body: str, name: str) -> str:
    """The ``ver`` of our own disco#info body: parsed as a peer parses it, so both compute the same."""
    iq = ET.fromstring(f'<iq><query xmlns="{NS}">{body}</query></iq>')
    return fingerprint(parse_info(iq), name)


def parse_info(iq: Element) -> PeerInfo:
    """Read a disco#info result (tolerant: unknown things are skipped)."""
    info = PeerInfo()
    query = iq.find(Q_QUERY)
    if query is None:
        return info
    for child in query:
        tag = child.tag
        if tag == Q_FEATURE:
            var = child.get("var", "")
            if var == DIRECT_EVENTS:
                info.direct = True
            elif var == COMPACT_NS:
                info.compact_calls = True
            elif var == control.NS:
                info.call_control = True
            elif var.startswith(IFACE_PREFIX):
                name, _, version = var[len(IFACE_PREFIX) :].rpartition(":")
                if name and version.isdigit():
                    info.interfaces.append((name, int(version)))
            continue
        m = _EVENT_NS.match(tag)
        if m is not None:
            roles = child.get("role", "").split()
            if child.get("name"):
                if "send" in roles:
                    info.sends.add((m.group(1), int(m.group(2))))
                if "subscribe" in roles:
                    info.receives.add((m.group(1), int(m.group(2))))
            continue
        m = _CAPS_NS.match(tag)
        if m is not None:
            try:
                info.capabilities[m.group(1)] = decode_fields(child)
            except (ValueError, RecursionError):
                continue  # unreadable capabilities count as unknown
    return info


@dataclass(eq=False)
class Peer:
    """A peer of the :class:`~.peers.PeerTable`: its session, what it offers, how far it is known."""

    name: str
    jid: str
    caps: str | None = None
    info: PeerInfo | None = None
    discovered: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    reported: bool = False
    stale: bool = False
    #: out of the table (a newer record may stand for the same name): its tasks stop
    gone: bool = False
    #: event names we subscribed to at this peer (kept by :class:`~.events.EventSubscriptions`)
    events: set[str] = field(default_factory=set)
    #: a retry of a direct-event subscription that timed out
    retry: asyncio.Task[None] | None = None
    #: lifecycle state it shows in presence (``ready``, ``error``, ``local``) and the error text
    module_state: tuple[str, str] = ("ready", "")
    #: since when (monotonic) it has answered no peer check, if it has not answered the last one
    silent_since: float | None = None
