"""Bus connection of the D-Bus transport: connect, match rules for discovery, owning our name,
watching the connection and reconnecting, and closing.
"""

from __future__ import annotations

import asyncio

from dbus_fast.aio import MessageBus

from ..transport import TransportHandler
from .base import (
    DBUS_NAME,
    MODULE_IFACE,
    RESTORE_GRACE,
    DbusBase,
    log,
)


class ConnectionMixin(DbusBase):
    """Connects to the bus, owns the module's well-known name and reconnects when the bus goes."""

    async def open(self, handler: TransportHandler) -> None:
        self._handler = handler
        self._loop = asyncio.get_running_loop()
        self._closing = False
        await self._connect()
        self._watch = self._loop.create_task(self._watch_connection())

    async def _connect(self) -> None:
        try:
            bus = MessageBus(bus_address=self._address, bus_type=self._bus_type)  # finds the address
            async with asyncio.timeout(self.timeout):
                await bus.connect()
        except TimeoutError:
            raise ConnectionError(
                f"{self.name}: connecting to the D-Bus bus ({self.bus_description}) timed out"
            ) from None
        except Exception as exc:
            raise ConnectionError(
                f"{self.name}: cannot connect to the D-Bus bus ({self.bus_description}): {exc}"
            ) from None
        bus.add_message_handler(self._on_message)
        self._bus = bus
        try:
            await self._bus_request(
                "AddMatch",
                "s",
                [
                    f"type='signal',sender='{DBUS_NAME}',interface='{DBUS_NAME}',member='NameOwnerChanged',"
                    f"arg0namespace='{self.prefix}'"
                ],
            )
            await self._bus_request(
                "AddMatch", "s", [f"type='signal',path='{self.path}',interface='{MODULE_IFACE}',member='Described'"]
            )
            await self._bus_request(
                "AddMatch", "s", [f"type='signal',path='{self.path}',interface='{MODULE_IFACE}',member='ModuleState'"]
            )
            self._event_rules = set()  # a new connection has no match rules: add what we want now
            for name in sorted(self._receives):
                await self._bus_request("AddMatch", "s", [self._event_rule(name)])
                self._event_rules.add(name)
            for peer, iface in self._state_rules:
                await self._bus_request("AddMatch", "s", [self._state_rule(peer, iface)])
            if self._info is not None:
                await self._request_name()
            await self._discover()
        except BaseException:
            self._bus = None
            bus.disconnect()
            raise

    async def _request_name(self) -> None:
        (reply,) = await self._bus_request("RequestName", "su", [self.bus_name, 4])  # DO_NOT_QUEUE
        if reply not in (1, 4):  # primary owner / already owner
            raise ValueError(
                f"a module named '{self.name}' is already online on this bus ({self.bus_name} has another owner)"
            )

    async def _watch_connection(self) -> None:
        """Reconnect when the bus goes away, until closed."""
        while not self._closing:
            bus = self._bus
            if bus is None:
                return
            # a task of its own: cancelling this watcher must not cancel the bus's disconnect future
            disconnected = asyncio.ensure_future(bus.wait_for_disconnect())  # type: ignore[no-untyped-call]
            await asyncio.wait({disconnected})
            exc = None if disconnected.cancelled() else disconnected.exception()
            if exc is None:
                reason = "the bus closed the connection"
            else:
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if self._closing:
                return
            self._lost(reason)
            delay = 0.05
            while not self._closing:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                try:
                    await self._connect()
                except ValueError as exc:  # our name was taken meanwhile
                    log.warning("%s: reconnected, but cannot go online again: %s", self.name, exc)
                    continue
                except Exception as exc:
                    log.debug("%s: reconnecting to the D-Bus bus failed: %s", self.name, exc)
                    continue
                await self._wait_for_returning_peers()
                try:
                    await self._resend_unwritten()  # older than anything in the core's outbox
                except Exception as exc:
                    log.warning("%s: an event lost with the old connection could not be sent again: %s", self.name, exc)
                if self._handler is not None:
                    self._handler.connection_changed(True)
                break

    async def _wait_for_returning_peers(self) -> None:
        """After a reconnect: give the peers that were online a moment to come back too (they
        reconnect to a restarted bus as we do), so the events we kept meanwhile reach them."""
        loop = asyncio.get_running_loop()
        end = loop.time() + RESTORE_GRACE
        while not self._returning <= self._online and loop.time() < end and not self._closing:
            await asyncio.sleep(0.02)
        self._returning = set()

    def _lost(self, reason: str) -> None:
        self._bus = None
        for task in self._describing.values():
            task.cancel()
        self._describing.clear()
        self._owners.clear()
        self._owners_settled.clear()  # callers are named again once discovery has run
        self._names.clear()
        self._pending.clear()
        handler = self._handler
        online, self._online = self._online, set()
        self._returning = set(online)
        if handler is not None:
            handler.connection_changed(False, f"D-Bus bus ({self.bus_description}) lost: {reason}; reconnecting")
            for peer in online:
                handler.peer_offline(peer)

    async def close(self) -> None:
        self._closing = True
        if self._watch is not None:
            self._watch.cancel()
        for task in list(self._describing.values()) + list(self._tasks):
            task.cancel()
        bus, self._bus = self._bus, None
        self._info = None
        self._online.clear()
        unwritten, self._unwritten = self._unwritten, None
        if bus is not None and unwritten is not None:
            # disconnect() drops what dbus-fast has not written yet: let the last event out first
            await asyncio.wait({unwritten[0]}, timeout=2.0)
        if bus is not None:
            bus.disconnect()
            disconnected = asyncio.ensure_future(bus.wait_for_disconnect())  # type: ignore[no-untyped-call]
            await asyncio.wait({disconnected}, timeout=2.0)
            if not disconnected.done():
                disconnected.cancel()
            elif not disconnected.cancelled():
                disconnected.exception()
