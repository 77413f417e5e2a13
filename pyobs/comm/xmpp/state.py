"""Module state on pubsub: publishing our own, and subscribing to / fetching peers' state and capabilities."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from pyobs.interfaces.interface import interface_by_name

from ..backoff import RETRY_CAP, RETRY_FIRST, backoff
from . import discovery, pubsub
from .base import (
    IqError,
    XmppBase,
    XmppConnectionError,
    XmppNodeOwnershipError,
    log,
    too_large,
)
from .values import DecodeError, EncodeError, decode_fields, escape_attr


class StateMixin(XmppBase):
    def _on_state(self, note: pubsub.Notification) -> None:
        try:
            value = decode_fields(note.payload)
        except (DecodeError, RecursionError) as exc:
            log.warning("%s: dropped undecodable state %s of %s: %s", self.bare, note.name, note.module, exc)
            return
        assert self._handler is not None
        self._handler.state_received(note.module, note.name, value)

    # ================================================================== state

    async def publish_state(self, interface: str, state: Any) -> None:
        self._own_state[interface] = state
        if not self._session:
            return  # published when the connection is back
        await self._publish_state(interface, state, None)  # the core bounds it

    async def _publish_state(self, interface: str, state: Any, timeout: float | None) -> None:
        iface = interface_by_name(interface)
        version = iface.version if iface is not None else 1
        node = pubsub.state_node(self.name, interface, version)
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
        if node not in self._created_nodes:
            # created first (not by the publish): an existing node is checked to be ours. Concurrent
            # publishes wait for the same creation and then write in the order they were made
            creating = self._creating.get(node)
            if creating is None:
                creating = self._creating[node] = asyncio.ensure_future(self._create_node(node, transient=False))
                creating.add_done_callback(lambda _, n=node: self._creating.pop(n, None))  # type: ignore[misc]
            await asyncio.shield(creating)
        try:
            await self._pubsub_set(body, node)
        except IqError as exc:
            if exc.condition != "forbidden":
                raise
            await self._claim_node(node)  # not ours: raises naming the owner, or takes it back
            await self._pubsub_set(body, node)
        self._published_state[interface] = state

    async def _claim_node(self, node: str) -> None:
        """An existing node must be ours. Where the server lets us read its affiliations without
        owning it (prosody: every pyobs account is a pubsub admin) and it is not ours, take it back;
        otherwise raise :class:`XmppNodeOwnershipError` naming the owner."""
        get = pubsub.iq_head(self.pubsub, "get")
        try:
            reply = await self._iq(get, pubsub.affiliations_body(node), self.pubsub, self.timeout, node)
        except IqError as exc:
            if exc.condition == "item-not-found":
                return  # gone meanwhile: our next publish creates it
            raise XmppNodeOwnershipError(node, await self._node_owners(node), self.bare) from None
        affiliations = pubsub.parse_affiliations(reply)
        if affiliations.get(self.bare) == "owner":
            return
        others = {j: "none" for j, aff in affiliations.items() if aff in ("owner", "publisher") and j != self.bare}
        try:
            await self._iq(
                self._pubsub_head, pubsub.set_affiliations_body(node, {self.bare: "owner"}), self.pubsub, self.timeout,
                node,
            )  # fmt: skip
            if others:
                await self._iq(
                    self._pubsub_head, pubsub.set_affiliations_body(node, others), self.pubsub, self.timeout, node
                )
        except IqError:
            owners = list(others) or await self._node_owners(node)
            raise XmppNodeOwnershipError(node, owners, self.bare) from None
        log.warning("%s: took back the pubsub node %s from %s", self.bare, node, ", ".join(others) or "nobody")

    async def _node_owners(self, node: str) -> list[str]:
        """The owners a node's meta-data names (empty if the server does not say)."""
        try:
            reply = await self._iq(
                f'<iq type="get" to="{escape_attr(self.pubsub)}" id="',
                f'"><query xmlns="{discovery.NS}" node="{escape_attr(node)}"/></iq>',
                self.pubsub, self.timeout, node,
            )  # fmt: skip
        except (IqError, TimeoutError):
            return []
        return pubsub.metadata_owners(reply)

    async def subscribe_state(self, peer: str, interface: str) -> Any:
        self._state_subs.add((peer, interface))
        return await self._subscribe_state(peer, interface, None)  # the core bounds it

    async def _subscribe_state(self, peer: str, interface: str, timeout: float | None) -> Any:
        iface = interface_by_name(interface)
        node = pubsub.state_node(peer, interface, iface.version if iface is not None else 1)
        try:
            await self._iq(self._pubsub_head, pubsub.subscribe_body(node, self.bare), self.pubsub, timeout, node)
        except IqError as exc:
            if exc.condition == "item-not-found":
                self._spawn(self._subscribe_state_later(peer, interface, node))
                return None
            raise
        reply = await self._iq(
            pubsub.iq_head(self.pubsub, "get"), pubsub.items_body(node, 1), self.pubsub, timeout, node
        )
        found = pubsub.newest_item_and_publisher(reply)
        if found is None:
            return None
        payload, publisher = found
        if not self._published_by_owner(peer, f"state {interface}", publisher):
            return None
        try:
            return decode_fields(payload)
        except (DecodeError, RecursionError) as exc:
            log.warning("%s: undecodable state %s of %s: %s", self.bare, interface, peer, exc)
            return None

    async def _subscribe_state_later(self, peer: str, interface: str, node: str) -> None:
        pauses = backoff(RETRY_FIRST, RETRY_CAP)
        while (peer, interface) in self._state_subs and self._session and peer in self._peers:
            await asyncio.sleep(next(pauses))
            try:
                await self._iq(
                    self._pubsub_head, pubsub.subscribe_body(node, self.bare), self.pubsub, self.timeout, node
                )
            except (IqError, TimeoutError):
                continue
            return

    async def unsubscribe_state(self, peer: str, interface: str) -> None:
        if (peer, interface) not in self._state_subs:
            return
        self._state_subs.discard((peer, interface))
        iface = interface_by_name(interface)
        node = pubsub.state_node(peer, interface, iface.version if iface is not None else 1)
        with contextlib.suppress(IqError, XmppConnectionError):
            await self._iq(self._pubsub_head, pubsub.unsubscribe_body(node, self.bare), self.pubsub, self.timeout, node)

    async def _restore_subscriptions(self) -> None:
        """After a reconnect: subscribe to the state we followed again and fetch its latest value."""
        subs = list(self._state_subs)

        async def one(peer: str, interface: str) -> None:
            value = await self._subscribe_state(peer, interface, self.timeout)
            if value is not None and self._handler is not None:
                self._handler.state_received(peer, interface, value)

        results = await asyncio.gather(*(one(p, i) for p, i in subs), return_exceptions=True)
        for (peer, iface), res in zip(subs, results, strict=True):
            if isinstance(res, XmppConnectionError):
                raise res
            if isinstance(res, BaseException):
                log.warning("%s: cannot subscribe again to state %s of %s: %s", self.bare, iface, peer, res)

    async def fetch_capabilities(self, peer: str, interface: str) -> Any:
        state = self._peers.get(peer)
        if state is None:
            return None
        if not state.discovered.is_set():
            await state.discovered.wait()  # the core bounds it
        return state.info.capabilities.get(interface) if state.info is not None else None
