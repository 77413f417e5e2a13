"""Discovery by caps ver (XEP-0115): modules that differ only in name are asked once; a ver of
another scheme (pyobs-core's, over the features alone) is never shared between peers."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any
from xml.etree.ElementTree import Element

from backends.base import eventually
from xmpp_helpers import IProbe, Probe, ProbeEvent, RawClient, transport_of

from pyobs.comm import Comm
from pyobs.comm.xmpp import discovery, pubsub

DISCO = "http://jabber.org/protocol/disco#info"


class CoreLike(RawClient):
    """Answers disco#info like a pyobs-core module with its own label, and announces a caps ver
    that other modules share (slixmpp hashes only the features)."""

    def __init__(self, *args: Any, label: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.label = label

    def _spawn_event(self, xml: Element) -> None:
        if self._session_started and xml.get("type") == "get" and xml.find(f"{{{DISCO}}}query") is not None:
            self.send_raw(
                f'<iq type="result" to="{xml.get("from")}" id="{xml.get("id")}"><query xmlns="{DISCO}">'
                '<feature var="urn:pyobs:interface:IModule:1"/>'
                '<capabilities xmlns="urn:pyobs:capabilities:IModule:1">'
                f'<label xmlns=""><string>{self.label}</string></label></capabilities></query></iq>'
            )
            return
        super()._spawn_event(xml)

    async def login_with_ver(self, ver: str) -> CoreLike:
        await self.login()
        self.send_raw(
            f'<presence><c xmlns="http://jabber.org/protocol/caps" hash="sha-1" node="x" ver="{ver}"/></presence>'
        )
        return self


async def test_modules_alike_share_a_ver_and_are_asked_once(xmpp_backend: Any) -> None:
    a, b = Probe(comm=xmpp_backend.comm("a")), Probe(comm=xmpp_backend.comm("b"))
    asked: list[str] = []
    await a.open()
    await b.open()
    for module in (a, b):
        t = transport_of(module)
        answer = t.exports.on_disco
        assert t.requests[("get", discovery.Q_QUERY)] == answer  # disco#info queries go there

        def counting(xml: Element, query: Element, name: str = module.comm.name, answer: Any = answer) -> None:
            if xml.get("from", "").startswith("watcher@"):
                asked.append(name)
            answer(xml, query)

        t.requests[("get", discovery.Q_QUERY)] = counting
    watcher = xmpp_backend.comm("watcher")
    try:
        assert transport_of(a).exports.caps_ver == transport_of(b).exports.caps_ver  # only their names differ
        await watcher.open()
        await eventually(lambda: {"a", "b"} <= set(watcher.clients), what="both seen")
        assert len(asked) == 1, asked
        # each has its own label (the name), though one answer did for both
        assert watcher._peers["a"].label == "a" and watcher._peers["b"].label == "b"
        proxy = await watcher.proxy("b", IProbe)  # what the cached answer says is what b offers
        assert await proxy.add(1, 2.0) == 3.0
    finally:
        await watcher.close()
        await a.close()
        await b.close()


async def test_a_ver_of_another_scheme_is_not_shared(xmpp_backend: Any) -> None:
    watcher = xmpp_backend.comm("watcher")
    await watcher.open()
    server, resource = xmpp_backend.server, xmpp_backend.resource
    x = await CoreLike(server, "x", resource, label="Camera X").login_with_ver("c2FtZS12ZXI=")
    y = await CoreLike(server, "y", resource, label="Camera Y").login_with_ver("c2FtZS12ZXI=")
    try:
        await eventually(lambda: {"x", "y"} <= set(watcher.clients), timeout=10, what="both seen")
        assert watcher._peers["x"].label == "Camera X"
        assert watcher._peers["y"].label == "Camera Y"
        assert "c2FtZS12ZXI=" not in watcher.transport.peers.discovery.cache
    finally:
        await x.close()
        await y.close()
        await watcher.close()


def test_fingerprint_leaves_out_only_the_own_name() -> None:
    info = discovery.PeerInfo(
        interfaces=[("IModule", 1)], capabilities={"IModule": {"label": "cam1", "version": "1"}}, direct=True
    )
    other = discovery.PeerInfo(
        interfaces=[("IModule", 1)], capabilities={"IModule": {"label": "cam2", "version": "1"}}, direct=True
    )
    assert discovery.fingerprint(info, "cam1") == discovery.fingerprint(other, "cam2")
    # an explicit label that is not the name is part of what the ver stands for
    assert discovery.fingerprint(info, "cam1") != discovery.fingerprint(other, "cam1")
    made = discovery.instantiate(discovery.template(info, "cam1"), "cam7")
    assert made.label == "cam7" and info.label == "cam1"


def test_a_module_known_from_the_cache_keeps_every_feature() -> None:
    """A peer known from the caps cache (never asked) offers what the one asked offered: also the
    call control (cancel, progress), which the record made from the cache had lost."""
    info = discovery.PeerInfo(
        interfaces=[("IModule", 1)], sends={("ProbeEvent", 1)}, direct=True, compact_calls=True, call_control=True
    )
    made = discovery.instantiate(discovery.template(info, "cam1"), "cam7")
    assert (made.direct, made.compact_calls, made.call_control) == (True, True, True)
    made.sends.add(("Other", 1))
    assert info.sends == {("ProbeEvent", 1)}  # fresh containers: never shared between peers


class DirectSender(RawClient):
    """A pyobs-comm-like sender of ProbeEvent (it offers direct events); what it does with a
    direct-event subscription is :meth:`on_subscribe`'s."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.subscribes: list[str] = []

    def _spawn_event(self, xml: Element) -> None:
        if self._session_started and xml.get("type") == "get" and xml.find(f"{{{DISCO}}}query") is not None:
            self.send_raw(
                f'<iq type="result" to="{xml.get("from")}" id="{xml.get("id")}"><query xmlns="{DISCO}">'
                f'<feature var="urn:pyobs:interface:IModule:1"/><feature var="{discovery.DIRECT_EVENTS}"/>'
                '<event xmlns="urn:pyobs:event:ProbeEvent:1" name="ProbeEvent" role="send"/></query></iq>'
            )
            return
        sub = xml.find(f"{{{discovery.DIRECT_EVENTS}}}subscribe")
        if self._session_started and sub is not None:
            self.subscribes.append(sub.get("events", ""))
            self.on_subscribe(xml)
            return
        super()._spawn_event(xml)

    def on_subscribe(self, xml: Element) -> None:
        self.send_raw(f'<iq type="result" to="{xml.get("from")}" id="{xml.get("id")}"/>')


class SlowSender(DirectSender):
    """Leaves the first direct-event subscription unanswered (as a peer drowning in a restart storm
    would) and answers the next."""

    def on_subscribe(self, xml: Element) -> None:
        if len(self.subscribes) > 1:
            super().on_subscribe(xml)


class RefusingSender(DirectSender):
    """Refuses direct events (``not-allowed``)."""

    def on_subscribe(self, xml: Element) -> None:
        self.send_raw(
            f'<iq type="error" to="{xml.get("from")}" id="{xml.get("id")}"><error type="cancel">'
            '<not-allowed xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></iq>'
        )


@contextlib.asynccontextmanager
async def receiver_of(xmpp_backend: Any, sender: DirectSender, timeout: float) -> AsyncIterator[Comm]:
    """A module handling ProbeEvent, opened while ``sender`` is online and closed (with the
    sender) afterwards; its comm's deadline is ``timeout``."""
    await sender.login()

    async def handler(event: Any, name: str) -> bool:
        return True

    receiver = xmpp_backend.comm("receiver", timeout=timeout)
    await receiver.register_event(ProbeEvent, handler)
    try:
        yield receiver
    finally:
        await receiver.close()
        await sender.close()


async def test_a_timed_out_direct_subscription_is_retried_and_called_a_timeout(
    xmpp_backend: Any, caplog: Any
) -> None:
    sender = SlowSender(xmpp_backend.server, "x", xmpp_backend.resource)
    async with receiver_of(xmpp_backend, sender, timeout=1.0) as receiver:
        with caplog.at_level(logging.WARNING, logger="pyobs.comm.xmpp.transport"):
            await receiver.open()
            await eventually(lambda: "x" in receiver.clients, timeout=10, what="the sender seen")
            await eventually(lambda: len(sender.subscribes) >= 2, timeout=10, what="the subscription asked again")
        assert sender.subscribes[:2] == ["ProbeEvent", "ProbeEvent"]
        warnings = [r.getMessage() for r in caplog.records if "direct-event subscription" in r.getMessage()]
        assert warnings and "timeout" in warnings[0] and "retrying" in warnings[0], warnings
        peers = receiver.transport.peers
        await eventually(lambda: getattr(peers.get("x"), "events", None) == {"ProbeEvent"}, what="subscribed")


async def test_a_refusing_peer_is_subscribed_over_pubsub_once_its_node_exists(xmpp_backend: Any, caplog: Any) -> None:
    """A peer that refuses direct events is asked once, then subscribed to over pubsub, also when
    its event node appears only later (the fallback of EventSubscriptions and Nodes)."""
    sender = RefusingSender(xmpp_backend.server, "x", xmpp_backend.resource)
    async with receiver_of(xmpp_backend, sender, timeout=2.0) as receiver:
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
        assert sender.subscribes == ["ProbeEvent"]  # asked once, not again
