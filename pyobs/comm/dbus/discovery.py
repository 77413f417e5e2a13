"""Discovery of other modules on the bus: ``ListNames`` once, then ``NameOwnerChanged`` signals for our
prefix, and ``org.pyobs.Module.Describe()`` for each module that appears; no polling.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .base import (
    _ERROR,
    DBUS_NAME,
    DBUS_PATH,
    DESCRIBE_SIGNATURE,
    MAX_STATUS,
    MODULE_IFACE,
    DbusBase,
    log,
)


class DiscoveryMixin(DbusBase):
    """Tracks which modules of our prefix are online and what they offer."""

    async def _discover(self) -> None:
        self._owners_settled.clear()
        try:
            (names,) = await self._bus_request("ListNames")
            for bus_name in names:
                peer = self._peer_of(bus_name)
                if peer is None or bus_name == self.bus_name:
                    continue
                self._describe_later(peer, None)
            tasks = list(self._describing.values())
            if tasks:
                await asyncio.wait(tasks, timeout=self.timeout)
        finally:
            # later owners arrive as NameOwnerChanged, in order with their calls
            self._owners_settled.set()

    def _on_owner_changed(self, bus_name: str, old: str, new: str) -> None:
        peer = self._peer_of(bus_name)
        if peer is None or bus_name == self.bus_name:
            return
        if old:
            self._owners.pop(old, None)
            if self._names.get(peer) == old:
                del self._names[peer]
            task = self._describing.pop(peer, None)
            if task is not None:
                task.cancel()
            if peer in self._online:
                self._online.discard(peer)
                if self._handler is not None:
                    self._handler.peer_offline(peer)
        if new:
            self._describe_later(peer, new)

    def _describe_later(self, peer: str, owner: str | None) -> asyncio.Task[None]:
        if owner is not None:
            self._owners[owner] = peer
            self._names[peer] = owner
        old = self._describing.pop(peer, None)
        if old is not None:
            old.cancel()
        task = self._spawn(self._describe(peer, owner))
        self._describing[peer] = task

        def done(t: asyncio.Task[None]) -> None:
            if self._describing.get(peer) is t:
                del self._describing[peer]

        task.add_done_callback(done)
        return task

    async def _describe(self, peer: str, owner: str | None) -> None:
        try:
            if owner is None:
                reply = await self._request(
                    DBUS_NAME, DBUS_PATH, DBUS_NAME, "GetNameOwner", "s", [self.peer_bus_name(peer)]
                )
                if reply.message_type is _ERROR:
                    return  # gone again
                owner = str(reply.body[0])
                self._owners[owner] = peer
                self._names[peer] = owner
            reply = await self._request(owner, self.path, MODULE_IFACE, "Describe")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("%s: cannot describe module '%s': %s", self.name, peer, exc)
            return
        if self._names.get(peer) != owner:
            return  # it went away meanwhile
        if reply.message_type is _ERROR or reply.signature != DESCRIBE_SIGNATURE:
            text = reply.body[0] if reply.body and isinstance(reply.body[0], str) else reply.signature
            log.warning("%s: module '%s' gave no valid description: %s %s", self.name, peer, reply.error_name, text)
            return
        self._report(peer, reply.body)

    def _report(self, peer: str, body: list[Any]) -> None:
        interfaces, sends, label = body
        first = peer not in self._online
        self._online.add(peer)
        if self._handler is not None:
            self._handler.peer_online(peer, [(str(n), int(v)) for n, v in interfaces], set(sends), str(label))
            if first:
                self._spawn(self._fetch_module_state(peer))

    async def _fetch_module_state(self, peer: str) -> None:
        """A peer seen for the first time may be in error already: ask (later changes are signals)."""
        owner = self._names.get(peer)
        if owner is None:
            return
        try:
            reply = await self._request(owner, self.path, MODULE_IFACE, "GetModuleState")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.debug("%s: no lifecycle state from '%s': %s", self.name, peer, exc)
            return
        if reply.message_type is _ERROR or reply.signature != "ss" or self._names.get(peer) != owner:
            return  # an older peer without the method, or gone meanwhile
        if self._handler is not None and peer in self._online:
            self._handler.peer_module_state(peer, str(reply.body[0]), str(reply.body[1])[:MAX_STATUS])

    async def resolve(self, peer: str) -> bool:
        if self._bus is None or peer == self.name:
            return False
        task = self._describing.get(peer)
        if task is None:
            task = self._describe_later(peer, self._names.get(peer))
        try:
            async with asyncio.timeout(self.timeout):
                await asyncio.wait({task})
        except TimeoutError:
            return False
        return peer in self._online
