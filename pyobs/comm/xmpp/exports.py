"""What we show the fleet: our announcement, our disco#info, and our presence.

Owns: the :class:`~pyobs.comm.transport.Announcement` (interfaces, events sent and handled,
capabilities), the disco#info body built from it and its caps ``ver`` (see
:func:`.discovery.fingerprint`), the lifecycle state shown in presence (``<show>``/``<status>``),
and whether our presence is out in this session (``online``). Answers disco#info queries.
"""

from __future__ import annotations

from typing import Any
from xml.etree.ElementTree import Element

from pyobs.interfaces.types import ModuleCapabilities

from ..transport import Announcement
from . import discovery, rpc
from .link import Link, reply_address
from .values import INVALID_XML, EncodeError, escape

CAPS_NS = "http://jabber.org/protocol/caps"


class Exports:
    def __init__(self, link: Link) -> None:
        self.link = link
        self.info: Announcement | None = None
        #: our presence was sent in this session
        self.online = False
        self._show: tuple[str, str] = ("", "")  # presence <show> and <status>
        self.disco_body = ""
        self.caps_ver = ""

    def announce(self, info: Announcement) -> None:
        """Take (again) what we offer: the disco#info and the caps ver are built from it."""
        self.info = info
        caps: dict[str, Any] = dict(info.capabilities)
        if info.is_module and not isinstance(caps.get("IModule"), ModuleCapabilities):
            caps["IModule"] = ModuleCapabilities(label=info.label or self.link.name, version=self.link.options.version)
        try:
            self.disco_body = discovery.info_body(info, caps)
        except EncodeError as exc:
            raise ValueError(f"{self.link.name}: cannot announce capabilities: {exc}") from None
        # peers that know a module like us (same ver) need not ask us: see discovery.fingerprint
        self.caps_ver = discovery.own_fingerprint(self.disco_body, self.link.name)

    def set_module_state(self, state: str, message: str) -> None:
        """The module's lifecycle state, shown in presence (spec §3.2): ``ready`` available,
        ``error`` ``<show>dnd</show>`` with the message as status, ``local`` ``<show>away</show>``;
        kept for every later presence (re-announces, reconnects)."""
        show = {"error": "dnd", "local": "away"}.get(str(state), "")
        status = message if show == "dnd" else ""
        if (show, status) == self._show:
            return
        self._show = (show, status)
        if self.online:
            self.send_presence()

    def send_presence(self) -> None:
        show, status = self._show
        extra = f"<show>{show}</show>" if show else ""
        if status:
            extra += f"<status>{escape(INVALID_XML.sub('', status))}</status>"
        caps = f'<c xmlns="{CAPS_NS}" hash="sha-1" node="urn:pyobs" ver="{self.caps_ver}"/>'
        self.link.write(f"<presence>{extra}{caps}</presence>")

    def on_disco(self, xml: Element, query: Element) -> None:
        to, iq_id = reply_address(xml)
        bare = xml.get("from", "").partition("/")[0]
        if "@" in bare and not self.link.trusted(bare):  # (the server itself may ask: no '@')
            self.link.write_or_drop(rpc.iq_error(to, iq_id, "forbidden", "auth", 403, "not a member of this fleet"))
            return
        self.link.write_or_drop(discovery.info_result(to, iq_id, self.disco_body, query.get("node")))
