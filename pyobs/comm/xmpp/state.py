"""Module state on pubsub: our own state, and the peers' states we follow.

Owns: our state per interface (what we publish, kept while disconnected and published when the
session is back) and what the server has of it in this session, and the peers' state nodes we
wait for (the core subscribes again after a reconnect, when it sees a peer again).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from pyobs.interfaces.interface import interface_by_name

from ..transport import TransportHandler
from . import pubsub
from .link import IqError, Link, XmppConnectionError, log
from .nodes import Nodes, XmppNodeOwnershipError
from .values import DecodeError, EncodeError, decode_fields


def _version(interface: str) -> int:
    """The version of the interface ``interface`` (1 if unknown here)."""
    iface = interface_by_name(interface)
    return iface.version if iface is not None else 1


class StateSync:
    def __init__(self, link: Link, nodes: Nodes) -> None:
        self.link = link
        self.nodes = nodes
        self.handler: TransportHandler | None = None
        self._own: dict[str, Any] = {}
        self._published: dict[str, Any] = {}
        #: (peer, node) of the peers' state nodes that do not exist yet (asked for again): bounded
        #: by peers and interfaces, emptied for a peer that goes
        self._waiting: set[tuple[str, str]] = set()

    def forget_published(self) -> None:
        """The session ended: publish everything again on the next one."""
        self._published.clear()

    def peer_gone(self, name: str) -> None:
        self._waiting = {k for k in self._waiting if k[0] != name}

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
        version = _version(interface)
        node = pubsub.state_node(self.link.name, interface, version)
        try:
            body = pubsub.publish_state_body(node, interface, version, state)
        except EncodeError as exc:
            raise TypeError(f"state of {interface} cannot be sent: {exc}") from None
        self.link.check_size(body, f"state of {interface}", 200)  # the iq head: < 200 bytes
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
        """Subscribe (again: the core does after a reconnect) and read the latest value; the core
        bounds it. A node the peer has not created yet is subscribed once it exists."""
        link = self.link
        node = pubsub.state_node(peer, interface, _version(interface))
        key = (peer, node)
        if not await self.nodes.subscribe(node, None, lambda: key in self._waiting, lambda: self._waiting.discard(key)):
            self._waiting.add(key)  # before the retry looks (after a pause)
            return None
        reply = await link.pubsub_iq(pubsub.items_body(node, 1), node, None, "get")
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
        link = self.link
        node = pubsub.state_node(peer, interface, _version(interface))
        self._waiting.discard((peer, node))
        with contextlib.suppress(IqError, XmppConnectionError):
            await link.pubsub_iq(pubsub.unsubscribe_body(node, link.bare), node, link.timeout)
