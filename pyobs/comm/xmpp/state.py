"""Module state on pubsub: our own state, and the peers' states we follow.

Owns: our state per interface (what we publish, kept while disconnected and published when the
session is back) and what the server has of it in this session, and the peers' state nodes we
are subscribed to (subscribed again after a reconnect, dropped when the peer goes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from pyobs.interfaces.interface import interface_by_name

from ..transport import TransportHandler
from . import pubsub
from .link import IqError, Link, XmppConnectionError, too_large
from .nodes import Nodes, XmppNodeOwnershipError
from .values import DecodeError, EncodeError, decode_fields

log = logging.getLogger("pyobs.comm.xmpp.transport")


def _node(peer: str, interface: str) -> str:
    iface = interface_by_name(interface)
    return pubsub.state_node(peer, interface, iface.version if iface is not None else 1)


class StateSync:
    def __init__(self, link: Link, nodes: Nodes, max_stanza_size: int) -> None:
        self.link = link
        self.nodes = nodes
        self.max_stanza_size = max_stanza_size
        self.handler: TransportHandler | None = None
        self._own: dict[str, Any] = {}
        self._published: dict[str, Any] = {}
        self._subs: set[tuple[str, str]] = set()

    def forget_published(self) -> None:
        """The session ended: publish everything again on the next one."""
        self._published.clear()

    def peer_gone(self, name: str) -> None:
        self._subs = {k for k in self._subs if k[0] != name}

    def clear(self) -> None:
        self._subs.clear()

    def on_state(self, note: pubsub.Notification) -> None:
        try:
            value = decode_fields(note.payload)
        except (DecodeError, RecursionError) as exc:
            log.warning("%s: dropped undecodable state %s of %s: %s", self.link.bare, note.name, note.module, exc)
            return
        assert self.handler is not None
        self.handler.state_received(note.module, note.name, value)

    # ------------------------------------------------------------------ our state

    def keep(self, states: dict[str, Any]) -> None:
        self._own.update(states)

    async def publish(self, interface: str, state: Any) -> None:
        self._own[interface] = state
        if not self.link.session:
            return  # published when the connection is back
        await self._publish(interface, state)  # the core bounds it

    async def publish_unpublished(self) -> None:
        """Going online: publish what the server does not have yet; connection and ownership
        errors end going online, others are logged."""
        states = [(i, s) for i, s in self._own.items() if self._published.get(i) is not s]
        results = await asyncio.gather(
            *(self._publish(i, s) for i, s in states), return_exceptions=True
        )
        for (iface, _), res in zip(states, results, strict=True):
            if isinstance(res, XmppConnectionError | XmppNodeOwnershipError):
                raise res
            if isinstance(res, BaseException):
                log.warning("%s: publishing the initial state of %s failed: %s", self.link.bare, iface, res)

    async def _publish(self, interface: str, state: Any) -> None:
        iface = interface_by_name(interface)
        version = iface.version if iface is not None else 1
        node = pubsub.state_node(self.link.name, interface, version)
        try:
            body = pubsub.publish_state_body(node, interface, version, state)
        except EncodeError as exc:
            raise TypeError(f"state of {interface} cannot be sent: {exc}") from None
        size = too_large(body, self.max_stanza_size - 200) if self.max_stanza_size else 0  # iq head < 200 B
        if size:
            raise ValueError(
                f"state of {interface} is {size} bytes, more than max_stanza_size ({self.max_stanza_size}) of the "
                f"XMPP server"
            )
        # created first (not by the publish): an existing node is checked to be ours. Concurrent
        # publishes wait for the same creation and then write in the order they were made
        await self.nodes.ensure(node, transient=False)
        try:
            await self.link.pubsub_set(body, node)
        except IqError as exc:
            if exc.condition != "forbidden":
                raise
            await self.nodes.claim(node)  # not ours: raises naming the owner, or takes it back
            await self.link.pubsub_set(body, node)
        self._published[interface] = state

    # ------------------------------------------------------------------ peers' states

    async def subscribe(self, peer: str, interface: str) -> Any:
        self._subs.add((peer, interface))
        return await self._subscribe(peer, interface, None)  # the core bounds it

    async def _subscribe(self, peer: str, interface: str, timeout: float | None) -> Any:
        link = self.link
        node = _node(peer, interface)
        if not await self.nodes.subscribe(node, timeout, lambda: (peer, interface) in self._subs, lambda: None):
            return None  # it has not published yet: subscribed when it does
        get = pubsub.iq_head(link.pubsub, "get")
        reply = await link.iq(get, pubsub.items_body(node, 1), link.pubsub, timeout, node)
        found = pubsub.newest_item_and_publisher(reply)
        if found is None:
            return None
        payload, publisher = found
        if not link.published_by_owner(peer, f"state {interface}", publisher):
            return None
        try:
            return decode_fields(payload)
        except (DecodeError, RecursionError) as exc:
            log.warning("%s: undecodable state %s of %s: %s", link.bare, interface, peer, exc)
            return None

    async def unsubscribe(self, peer: str, interface: str) -> None:
        if (peer, interface) not in self._subs:
            return
        self._subs.discard((peer, interface))
        link = self.link
        node = _node(peer, interface)
        with contextlib.suppress(IqError, XmppConnectionError):
            await link.iq(link.pubsub_head, pubsub.unsubscribe_body(node, link.bare), link.pubsub, link.timeout, node)

    async def restore(self) -> None:
        """After a reconnect: subscribe to the state we followed again and fetch its latest value."""
        subs = list(self._subs)

        async def one(peer: str, interface: str) -> None:
            value = await self._subscribe(peer, interface, self.link.timeout)
            if value is not None and self.handler is not None:
                self.handler.state_received(peer, interface, value)

        results = await asyncio.gather(*(one(p, i) for p, i in subs), return_exceptions=True)
        for (peer, iface), res in zip(subs, results, strict=True):
            if isinstance(res, XmppConnectionError):
                raise res
            if isinstance(res, BaseException):
                log.warning("%s: cannot subscribe again to state %s of %s: %s", self.link.bare, iface, peer, res)
