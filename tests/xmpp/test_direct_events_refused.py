"""A peer that announces direct events but refuses our direct-event subscription is asked once and
then subscribed to over pubsub, also when its event node appears only later (EventSubscriptions,
Nodes): the fallback path, on both servers."""

from __future__ import annotations

import logging
from typing import Any
from xml.etree.ElementTree import Element

from backends.base import eventually
from xmpp_helpers import ProbeEvent, RawClient

from pyobs.comm.xmpp import discovery, pubsub

DISCO = "http://jabber.org/protocol/disco#info"


class RefusingSender(RawClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.subscribes = 0

    def _spawn_event(self, xml: Element) -> None:
        if self._session_started and xml.get("type") == "get" and xml.find(f"{{{DISCO}}}query") is not None:
            self.send_raw(
                f'<iq type="result" to="{xml.get("from")}" id="{xml.get("id")}"><query xmlns="{DISCO}">'
                f'<feature var="urn:pyobs:interface:IModule:1"/><feature var="{discovery.DIRECT_EVENTS}"/>'
                '<event xmlns="urn:pyobs:event:ProbeEvent:1" name="ProbeEvent" role="send"/></query></iq>'
            )
            return
        if self._session_started and xml.find(f"{{{discovery.DIRECT_EVENTS}}}subscribe") is not None:
            self.subscribes += 1
            self.send_raw(
                f'<iq type="error" to="{xml.get("from")}" id="{xml.get("id")}"><error type="cancel">'
                '<not-allowed xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></iq>'
            )
            return
        super()._spawn_event(xml)


async def test_a_refusing_peer_is_subscribed_over_pubsub_once_its_node_exists(xmpp_backend: Any, caplog: Any) -> None:
    sender = RefusingSender(xmpp_backend.server, "x", xmpp_backend.resource)
    await sender.login()

    async def handler(event: Any, name: str) -> bool:
        return True

    receiver = xmpp_backend.comm("receiver", timeout=2.0)
    await receiver.register_event(ProbeEvent, handler)
    try:
        with caplog.at_level(logging.WARNING, logger="pyobs.comm.xmpp.transport"):
            await receiver.open()
            await eventually(lambda: "x" in receiver.clients, timeout=10, what="the sender seen")
            await eventually(
                lambda: any("refused direct events" in r.getMessage() for r in caplog.records), what="refusal logged"
            )
        peers = receiver.transport.peers
        assert getattr(peers.get("x"), "events", None) == set()  # its node does not exist yet
        node = pubsub.event_node("x", "ProbeEvent", 1)
        service = receiver.transport.link.pubsub
        reply = await sender.request(
            f'<iq type="set" to="{service}" id="{{id}}"><pubsub xmlns="http://jabber.org/protocol/pubsub">'
            f'<create node="{node}"/></pubsub></iq>'
        )
        assert reply.get("type") == "result", reply
        subscribed = {"ProbeEvent"}
        await eventually(lambda: getattr(peers.get("x"), "events", None) == subscribed, timeout=15, what="subscribed")
        assert sender.subscribes == 1
    finally:
        await receiver.close()
        await sender.close()
