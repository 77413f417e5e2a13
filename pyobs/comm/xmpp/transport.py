"""XmppTransport: the Transport contract on an XMPP server, speaking pyobs-core 2.19's wire format
(what goes where: docs/xmpp.md). Everything on the hot path (calls, answers, events, notifications)
is written as prebuilt strings and read from raw ElementTree elements.

The transport is composed of parts that each own their state; each file says what (the map:
docs/architecture.md, "Inside the XMPP transport"). This module wires them together, runs the
reconnection sequence (:meth:`XmppTransport._reconnect`; what the core does after it: the map)
and routes incoming stanzas.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Hashable
from typing import Any
from xml.etree.ElementTree import Element

from pyobs.events.event import Event
from pyobs.interfaces.interface import MethodSpec
from pyobs.utils.exceptions import RemoteError

from ..backoff import RECONNECT_FIRST, backoff
from ..calls import Call, CancelOutcome
from ..transport import Announcement, Extend, Transport, TransportHandler
from . import control, discovery, pubsub, rpc
from .calls import CallClient, CallServer
from .events import EventSubscriptions
from .exports import Exports
from .link import IqError, Link, XmppAuthError, XmppConnectionError, XmppOptions, log
from .nodes import Nodes, XmppNodeOwnershipError
from .peers import PeerTable
from .publish import Q_DIRECT_SUBSCRIBE, EventPublisher
from .state import StateSync

# the errors are found here by the qualified name they travel by (``__module__``)
__all__ = ["IqError", "XmppAuthError", "XmppConnectionError", "XmppNodeOwnershipError", "XmppTransport"]

#: longest pause between two reconnection attempts (s)
RECONNECT_MAX_DELAY = 0.25
#: the first reconnection attempt waits a random part of this (s): a fleet that lost its server
#: together does not log in at once (each login costs the server a SCRAM derivation, and the
#: presences of all of them cross)
RECONNECT_JITTER = 0.3


class XmppTransport(Transport):
    """See :class:`pyobs.comm.xmpp.XmppComm` for the options."""

    def __init__(self, options: XmppOptions) -> None:
        self._handler: TransportHandler | None = None
        self._reconnect_task: asyncio.Task[None] | None = None
        self.link = link = Link(
            options, on_iq=self._on_iq, on_message=self._on_message,
            on_presence=lambda xml: self.peers.on_presence(xml), on_session=lambda: self.peers.session_started(),
            on_lost=self._on_lost,
        )  # fmt: skip
        self.name = link.name
        self.exports = Exports(link)
        self.nodes = Nodes(link)
        self.state = StateSync(link, self.nodes)
        self.publisher = EventPublisher(link, self.exports, self.nodes)
        self.events = EventSubscriptions(link, self.exports, self.nodes)
        self.peers = PeerTable(link, self.exports, self.events, self.publisher, self.state)
        self.server = CallServer(link)
        self.client = CallClient(link, self.peers)
        #: (IQ type, tag of its payload) → the part's method that answers such a request
        self.requests: dict[tuple[str | None, str], Callable[[Element, Element], None]] = {
            ("set", rpc.Q_COMPACT_CALL): self.server.on_call,
            ("set", rpc.Q_QUERY): self.server.on_call,
            ("set", control.Q_CANCEL): self.server.on_cancel,
            ("set", Q_DIRECT_SUBSCRIBE): self.publisher.on_direct_subscribe,
            ("get", discovery.Q_QUERY): self.exports.on_disco,
        }

    @property
    def connected(self) -> bool:
        return self.link.session

    @property
    def address(self) -> str:
        return self.link.address

    # ------------------------------------------------------------------ connection

    async def open(self, handler: TransportHandler) -> None:
        self._handler = handler
        for part in (self.peers, self.server, self.events, self.state):
            part.handler = handler
        self.peers.discovery.reset()
        await self.link.open()

    def _on_lost(self, link_was_up: bool, why: str) -> None:
        """The link's session ended: each part forgets what the server forgot."""
        self.exports.online = False
        self.state.forget_published()
        self.nodes.forget()  # the server may have lost them: create them again (idempotent)
        self.publisher.session_lost()  # what the server never confirmed stays: written again
        self.peers.session_lost(link_was_up)
        if not link_was_up:
            return
        if self._handler is not None:
            self._handler.connection_changed(False, why)
        if self.link.conflict:
            return
        # a running reconnect loop notices the drop itself (its current step fails) and starts over
        if self._reconnect_task is None or self._reconnect_task.done():
            self._reconnect_task = self.link.spawn(self._reconnect())

    async def _reconnect(self) -> None:
        """Reconnect until connected again (or closing): one loop whose every round starts from
        "no session" — connect, log in, read the roster, go online, restore the subscriptions —
        and which starts over from the top whenever any of that fails or the connection drops
        meanwhile. Only a round that ended with the session still up reports the connection back
        (``comm.connected``), so that a drop at any stage cannot leave it waiting or lying."""
        link = self.link
        pause = random.uniform(0.0, RECONNECT_JITTER)
        pauses = backoff(RECONNECT_FIRST, RECONNECT_MAX_DELAY)
        while not link.closing:
            await asyncio.sleep(pause)
            pause = next(pauses)
            if link.session:  # a half-restored session from the round before: start clean
                link.abort_session()
                continue
            try:
                await link.attempt_session(link.options.connect_timeout)
            except XmppAuthError as exc:
                log.error("%s: %s", link.bare, exc)
                pause = 5.0  # credentials do not fix themselves quickly
                continue
            except XmppConnectionError:
                continue
            if link.closing:
                return
            try:
                async with asyncio.timeout(max(link.options.connect_timeout, 3 * link.timeout)):
                    if self.exports.info is not None:
                        await self._go_online()
            except XmppNodeOwnershipError as exc:
                log.error("%s: not online again after reconnecting: %s", link.bare, exc)
                return  # an administrator must act: retrying would fail alike
            except (XmppConnectionError, TimeoutError, RemoteError) as exc:
                log.info("%s: restoring the session failed (%s); starting over", link.bare, exc or "timed out")
                continue
            if not link.session or link.closing:
                continue  # lost while restoring (a step that does not raise on it)
            log.info("%s: reconnected to %s", link.bare, link.address)
            if self._handler is not None:
                self._handler.connection_changed(True)
            return

    async def close(self) -> None:
        self.link.closing = True
        if self._reconnect_task is not None:
            self._reconnect_task.cancel()
        self.peers.close()
        await self.publisher.close()
        await self.link.close()
        self.exports.info = None

    # ------------------------------------------------------------------ announcing

    async def announce(self, info: Announcement) -> None:
        self.state.keep(info.state)
        self.exports.announce(info)
        if not self.link.session:
            return  # done when the connection is back
        if self.exports.online:
            await self.publisher.create_nodes()
            self.exports.send_presence()
            peers = self.peers.known()
            await asyncio.gather(self.events.sync_all(peers), self.publisher.push_subscriptions(peers))
            return
        await self._go_online()

    async def _go_online(self) -> None:
        """Event nodes and initial state first, then presence; returns when the peers already
        online are discovered (bounded)."""
        # peers see our presence only when we are about to be ready (calls before open() returns
        # are refused as "starting"); the server's answers to it say who is online
        await self.publisher.create_nodes()
        await self.state.publish_unpublished()
        self.peers.expect_answers()
        self.exports.send_presence()
        self.exports.online = True
        await self.peers.wait_for(await self.peers.find_online())

    async def update_events(self, sends: set[str], receives: set[str]) -> None:
        info = self.exports.info
        if info is None:
            return
        info.sends = set(sends)
        info.receives = set(receives)
        await self.announce(info)

    async def set_module_state(self, state: str, message: str = "") -> None:
        self.exports.set_module_state(state, message)

    # ------------------------------------------------------------------ the contract, by part

    async def call(
        self, peer: str, method: MethodSpec, args: list[Any], extend: Extend, handle: Call | None = None
    ) -> Any:
        return await self.client.call(peer, method, args, extend, handle)

    async def cancel(self, peer: str, wire_id: Hashable, wait: float) -> CancelOutcome:
        return await self.client.cancel(peer, wire_id, wait)

    async def publish_event(self, event: Event) -> None:
        self.publisher.publish(event)

    async def publish_state(self, interface: str, state: Any) -> None:
        await self.state.publish(interface, state)

    async def subscribe_state(self, peer: str, interface: str) -> Any:
        return await self.state.subscribe(peer, interface)

    async def unsubscribe_state(self, peer: str, interface: str) -> None:
        await self.state.unsubscribe(peer, interface)

    async def resolve(self, peer: str) -> bool:
        return await self.peers.resolve(peer)

    async def fetch_capabilities(self, peer: str, interface: str) -> Any:
        return await self.peers.capabilities(peer, interface)

    async def resend_unconfirmed(self) -> None:
        self.publisher.resend_unacked()

    def forget_peer(self, peer: str) -> None:
        self.peers.forget(peer)

    # ------------------------------------------------------------------ routing what arrives

    def _on_iq(self, xml: Element) -> bool:
        """Requests to us (answers to our IQs, roster pushes and pings the link took already)."""
        # a request has exactly one child, its payload (RFC 6120 8.2.3), which says what it asks
        handle = self.requests.get((xml.get("type"), xml[0].tag)) if len(xml) else None
        if handle is None:
            return False
        handle(xml, xml[0])
        return True

    def _on_message(self, xml: Element) -> bool:
        link = self.link
        if xml.get("from") != link.pubsub:
            for child in xml:
                if child.tag == control.Q_PROGRESS:
                    self.client.on_progress(xml, child)
                    return True
            if xml.find(pubsub.Q_EVENT) is None or self._handler is None:
                return False
            if xml.get("type") == "error":  # our event bounced: that peer is gone
                self.publisher.bounced(xml.get("from", ""))
            else:
                self.events.on_direct_event(xml)
            return True
        if self._handler is None:
            return True
        try:
            for note in pubsub.notifications(xml):
                if not link.published_by_owner(note.module, note.name, note.publisher):
                    continue
                if note.kind == "event":
                    self.events.on_event(note)
                else:
                    self.state.on_state(note)
        except Exception:
            log.exception("%s: failed to handle a pubsub notification", link.bare)
        return True
