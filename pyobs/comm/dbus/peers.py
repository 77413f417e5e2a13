"""The peer table of a D-Bus module: which modules of our prefix are online, under which connection.

Owns: the unique name ↔ module name maps, the set of peers reported online, the ``Describe``
requests under way and whether the owners listed at (re)connection are known yet. Discovery is
``ListNames`` once per connection, then ``NameOwnerChanged`` signals for our prefix and
``org.pyobs.Module.Describe()`` for each module that appears; no polling. When our link goes the
table is emptied without reporting anybody offline: the core keeps peers for its grace period
and, after the reconnect, waits for discovery to report them again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..transport import TransportHandler
from .link import Link
from .wire import DBUS_NAME, DBUS_PATH, DESCRIBE_SIGNATURE, ERROR, MAX_STATUS, MODULE_IFACE, Names, bus_name_of, spawn

log = logging.getLogger(__name__)


class PeerTable:
    def __init__(self, names: Names, link: Link) -> None:
        self.names = names
        self.link = link
        self.timeout = link.timeout
        self.handler: TransportHandler | None = None
        self._owners: dict[str, str] = {}  # unique name -> module name
        self._unique: dict[str, str] = {}  # module name -> unique name
        self._online: set[str] = set()
        self._describing: dict[str, asyncio.Task[None]] = {}
        self._bus_names: dict[str, str] = {}  # module name -> well-known name (cache)
        # set once the owners of the names listed at (re)connection are known: until then a caller
        # we cannot name yet may be a module of ours, whose name its call must be checked under
        self._owners_settled = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------------ names

    def bus_name(self, peer: str) -> str:
        """The well-known name of module ``peer``."""
        name = self._bus_names.get(peer)
        if name is None:
            name = self._bus_names[peer] = bus_name_of(self.names.prefix, peer)
        return name

    def module_of(self, unique_name: str) -> str | None:
        """The module owning connection ``unique_name``, if it is one of our prefix."""
        return self._owners.get(unique_name)

    @property
    def settled(self) -> bool:
        """Whether the owners of the names listed at the last (re)connection are known."""
        return self._owners_settled.is_set()

    async def wait_settled(self) -> None:
        """Until the owners are known, or our request timeout passed (a link that does not come back)."""
        try:
            async with asyncio.timeout(self.timeout):
                await self._owners_settled.wait()
        except TimeoutError:
            pass

    async def caller(self, unique_name: str) -> str:
        """The module name of the connection ``unique_name`` (stamped by the bus daemon, never taken
        from a message's body); a connection that owns no module name of ours is named by its unique name.
        """
        if unique_name not in self._owners and not self.settled:
            await self.wait_settled()
        return self._owners.get(unique_name, unique_name)

    # ------------------------------------------------------------------ discovery

    async def discover(self) -> None:
        """Who is online now (on every (re)connection); later changes arrive as signals."""
        self._owners_settled.clear()
        try:
            (listed,) = await self.link.bus_request("ListNames", timeout=self.timeout)
            for bus_name in listed:
                peer = self.names.peer_of(bus_name)
                if peer is not None:
                    self._describe_later(peer, None)
            tasks = list(self._describing.values())
            if tasks:
                await asyncio.wait(tasks, timeout=self.timeout)
        finally:
            # later owners arrive as NameOwnerChanged, in order with their calls
            self._owners_settled.set()

    def on_owner_changed(self, bus_name: str, old: str, new: str) -> None:
        peer = self.names.peer_of(bus_name)
        if peer is None:
            return
        if old:
            self._owners.pop(old, None)
            if self._unique.get(peer) == old:
                del self._unique[peer]
            task = self._describing.pop(peer, None)
            if task is not None:
                task.cancel()
            if peer in self._online:
                self._online.discard(peer)
                if self.handler is not None:
                    self.handler.peer_offline(peer)
        if new:
            self._describe_later(peer, new)

    def on_described(self, sender: str, signature: str, body: list[Any]) -> None:
        """A peer's ``Described`` signal: it changed what it offers."""
        peer = self._owners.get(sender)
        if peer is not None and peer in self._online and signature == DESCRIBE_SIGNATURE:
            self._report(peer, body)

    def _own(self, owner: str, peer: str) -> None:
        self._owners[owner] = peer
        self._unique[peer] = owner

    def _describe_later(self, peer: str, owner: str | None) -> asyncio.Task[None]:
        if owner is not None:
            self._own(owner, peer)
        old = self._describing.pop(peer, None)
        if old is not None:
            old.cancel()
        task = spawn(self._tasks, self._describe(peer, owner))
        self._describing[peer] = task

        def done(t: asyncio.Task[None]) -> None:
            if self._describing.get(peer) is t:
                del self._describing[peer]

        task.add_done_callback(done)
        return task

    async def _describe(self, peer: str, owner: str | None) -> None:
        link, timeout = self.link, self.timeout
        try:
            if owner is None:
                reply = await link.request(
                    DBUS_NAME, DBUS_PATH, DBUS_NAME, "GetNameOwner", "s", [self.bus_name(peer)], timeout
                )
                if reply.message_type is ERROR:
                    return  # gone again
                owner = str(reply.body[0])
                self._own(owner, peer)
            reply = await link.request(owner, self.names.path, MODULE_IFACE, "Describe", timeout=timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("%s: cannot describe module '%s': %s", self.names.name, peer, exc)
            return
        if self._unique.get(peer) != owner:
            return  # it went away meanwhile
        if reply.message_type is ERROR or reply.signature != DESCRIBE_SIGNATURE:
            text = reply.body[0] if reply.body and isinstance(reply.body[0], str) else reply.signature
            log.warning(
                "%s: module '%s' gave no valid description: %s %s", self.names.name, peer, reply.error_name, text
            )
            return
        self._report(peer, reply.body)

    def _report(self, peer: str, body: list[Any]) -> None:
        interfaces, sends, label = body
        first = peer not in self._online
        self._online.add(peer)
        if self.handler is not None:
            self.handler.peer_online(peer, [(str(n), int(v)) for n, v in interfaces], set(sends), str(label))
            if first:
                spawn(self._tasks, self._fetch_module_state(peer))

    async def _fetch_module_state(self, peer: str) -> None:
        """A peer seen for the first time may be in error already: ask (later changes are signals)."""
        owner = self._unique.get(peer)
        if owner is None:
            return
        try:
            reply = await self.link.request(
                owner, self.names.path, MODULE_IFACE, "GetModuleState", timeout=self.timeout
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.debug("%s: no lifecycle state from '%s': %s", self.names.name, peer, exc)
            return
        if reply.message_type is ERROR or reply.signature != "ss" or self._unique.get(peer) != owner:
            return  # an older peer without the method, or gone meanwhile
        self._module_state(peer, reply.body)

    def on_module_state(self, sender: str, signature: str, body: list[Any]) -> None:
        """A peer's ``ModuleState`` signal: its lifecycle state changed."""
        peer = self._owners.get(sender)
        if peer is not None and signature == "ss":
            self._module_state(peer, body)

    def _module_state(self, peer: str, body: list[Any]) -> None:
        if self.handler is not None and peer in self._online:
            self.handler.peer_module_state(peer, str(body[0]), str(body[1])[:MAX_STATUS])

    async def resolve(self, peer: str) -> bool:
        if not self.link.up or peer == self.names.name:
            return False
        task = self._describing.get(peer)
        if task is None:
            task = self._describe_later(peer, self._unique.get(peer))
        try:
            async with asyncio.timeout(self.timeout):
                await asyncio.wait({task})
        except TimeoutError:
            return False
        return peer in self._online

    # ------------------------------------------------------------------ the link went

    def forget(self) -> None:
        """Our link went: unique names mean nothing on the next connection. Nobody is reported
        offline here (the core keeps peers for its grace); discovery reports them again."""
        for task in self._describing.values():
            task.cancel()
        self._describing.clear()
        self._owners.clear()
        self._owners_settled.clear()  # callers are named again once discovery has run
        self._unique.clear()
        self._online.clear()

    def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        self.forget()
