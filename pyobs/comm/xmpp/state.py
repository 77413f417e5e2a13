"""Module state on pubsub: publishing our own, and subscribing to / fetching peers' state and capabilities."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from pyobs.interfaces.interface import interface_by_name

from ..backoff import RETRY_CAP, RETRY_FIRST, backoff
from . import pubsub
from .base import (
    IqError,
    XmppBase,
    XmppConnectionError,
    log,
)
from .values import DecodeError, EncodeError, decode_fields


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
        await self._iq(self._pubsub_head, body, self.pubsub, timeout, node)
        self._published_state[interface] = state

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
