"""Events over D-Bus: broadcast signals ``org.pyobs.Event.<EventType>(s uuid, d timestamp, a{sv} data)``,
received through one match rule per event type we receive.
"""

from __future__ import annotations

import asyncio
from typing import Any

from dbus_fast import Message
from dbus_fast.validators import is_member_name_valid

from pyobs.events.event import Event
from pyobs.utils.exceptions import RemoteError

from ..transport import NotConnected
from .base import (
    BURST,
    BURST_WINDOW,
    EVENT_IFACE,
    EVENT_SIGNATURE,
    DbusBase,
    _ignore_result,
    log,
)
from .codec import (
    plain,
    to_variant,
)


class EventsMixin(DbusBase):
    """Publishes events as signals and keeps the match rules for the events we receive."""

    def _event_rule(self, name: str) -> str:
        return f"type='signal',path='{self.path}',interface='{EVENT_IFACE}',member='{name}'"

    async def _update_event_rules(self, receives: set[str]) -> None:
        wanted = {n for n in receives if is_member_name_valid(n)}
        self._receives = wanted
        if self._bus is None:
            return
        for name in sorted(wanted - self._event_rules):
            await self._bus_request("AddMatch", "s", [self._event_rule(name)])
            self._event_rules.add(name)
        for name in sorted(self._event_rules - wanted):
            self._event_rules.discard(name)
            try:
                await self._bus_request("RemoveMatch", "s", [self._event_rule(name)])
            except RemoteError as exc:
                log.debug("%s: %s", self.name, exc)

    async def publish_event(self, event: Event) -> None:
        bus = self._bus
        if bus is None:  # the core keeps it in its outbox and sends it when we report the bus back
            raise NotConnected(f"cannot send {event.type}: '{self.name}' is not connected to the D-Bus bus")
        if not is_member_name_valid(event.type):
            raise ValueError(f"cannot send {event.type}: its name is no valid D-Bus member name (use ASCII)")
        unwritten = self._unwritten
        if unwritten is not None:
            # dbus-fast takes the socket's EAGAIN for a broken connection when asked to write while a
            # message is still partly written (a burst larger than the socket buffer): wait for it
            await self._wait_written(unwritten[0], event)
        try:
            data = {k: to_variant(v) for k, v in event.data.items()}
            msg = Message.new_signal(
                self.path, EVENT_IFACE, event.type, EVENT_SIGNATURE, [event.uuid, event.timestamp, data]
            )
        except Exception as exc:
            raise ValueError(f"cannot send {event.type} over D-Bus: {exc}") from None
        try:
            fut = bus.send(msg)  # marshals now: a value D-Bus cannot carry fails here
        except OSError as exc:  # the connection broke under us: the core keeps the event
            raise NotConnected(f"cannot send {event.type}: the D-Bus connection failed: {exc}") from None
        except Exception as exc:
            raise ValueError(f"cannot send {event.type} over D-Bus: {exc}") from None
        fut.add_done_callback(_ignore_result)
        if not fut.done():  # queued in dbus-fast's writer: kept until written (sent again if it never is)
            self._unwritten = (fut, event)
        elif not fut.cancelled() and fut.exception() is not None:  # the write killed the connection
            raise NotConnected(f"cannot send {event.type}: the D-Bus connection failed: {fut.exception()}")
        await self._pace()

    async def _pace(self) -> None:
        """Flow control for bursts: dbus-fast takes a full socket for a broken connection, so after
        :data:`BURST` event signals in quick succession one round trip to the bus daemon (which
        answers once it has read everything before) lets the socket drain."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if now - self._burst_start > BURST_WINDOW:
            self._burst_start, self._burst = now, 0
        self._burst += 1
        if self._burst >= BURST:
            self._burst_start, self._burst = now, 0
            try:
                await self._bus_request("GetId")
            except (RemoteError, TimeoutError) as exc:
                raise NotConnected(f"the D-Bus bus does not answer: {exc}") from None

    async def _wait_written(self, fut: asyncio.Future[Any], event: Event) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                await asyncio.wait({fut})
        except TimeoutError:
            raise NotConnected(f"cannot send {event.type}: the D-Bus socket takes nothing") from None
        if self._unwritten is not None and self._unwritten[0] is fut:
            failed = fut.cancelled() or fut.exception() is not None
            if not failed:
                self._unwritten = None
            else:  # written never: resent after the reconnect (see _resend_unwritten)
                raise NotConnected(f"cannot send {event.type}: the D-Bus connection failed")

    async def _resend_unwritten(self) -> None:
        """After a reconnect, before the core flushes its outbox: the event signal that never made
        it into the socket goes out first (receivers drop duplicates by uuid)."""
        unwritten, self._unwritten = self._unwritten, None
        if unwritten is not None:
            fut, event = unwritten
            if fut.cancelled() or (fut.done() and fut.exception() is not None) or not fut.done():
                await self.publish_event(event)

    def _on_event(self, msg: Message) -> None:
        bus = self._bus
        name = msg.member or ""
        if msg.path != self.path or name not in self._receives or bus is None or msg.sender == bus.unique_name:
            return
        sender = self._owners.get(msg.sender or "")
        if sender is None:
            # only modules (owners of a name with our prefix) send events: nobody else on the bus
            self._limited.warning(
                "foreign-event", "%s: dropped event %s from %s: not a module", self.name, name, msg.sender
            )
            return
        if msg.signature != EVENT_SIGNATURE:
            self._limited.warning(
                "bad-event",
                "%s: dropped event %s from %s: signature '%s', expected '%s'",
                self.name, name, sender, msg.signature, EVENT_SIGNATURE,
            )  # fmt: skip
            return
        uuid, timestamp, data = msg.body
        try:
            event = Event.from_dict({"type": name, "uuid": uuid, "timestamp": timestamp, "data": plain(data)})
        except Exception as exc:  # ValueError naming the problem; anything else from an odd event class
            self._limited.warning(
                "bad-event", "%s: dropped malformed event %s from %s: %s", self.name, name, sender, exc
            )
            return
        if self._handler is not None:
            self._handler.event_received(sender, event)
