"""Events over D-Bus: broadcast signals ``org.pyobs.Event.<EventType>(s uuid, d timestamp, a{sv} data)``,
received through one match rule per event type we receive.

Owns: the event types we receive and the match rules the bus has for them on this connection
(none on a new one: :meth:`EventSignals.install` adds them on every (re)connection), and the flow
control of outgoing bursts: the last event signal dbus-fast has not written into the socket yet.
Outgoing events are not queued here: one we cannot send raises NotConnected and the core's outbox
(:mod:`pyobs.comm.outbox`) keeps it until the link is back; the one the old connection never wrote
goes out again after a reconnect, before the outbox's (:meth:`EventSignals.resend_unwritten`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from dbus_fast import Message
from dbus_fast.validators import is_member_name_valid

from pyobs.events.event import Event
from pyobs.utils.exceptions import RemoteError
from pyobs.utils.ratelimit import RateLimitedLog

from ..transport import NotConnected, TransportHandler
from .codec import plain, to_variant
from .link import Link
from .peers import PeerTable
from .wire import EVENT_IFACE, EVENT_SIGNATURE, Names

log = logging.getLogger(__name__)

#: events from connections not named yet, held while our discovery learns who owns which name
HELD_MAX = 1024


class EventSignals:
    def __init__(self, names: Names, link: Link, peers: PeerTable) -> None:
        self.names = names
        self.link = link
        self.peers = peers
        self.handler: TransportHandler | None = None
        self._receives: set[str] = set()  # event types we handle
        self._rules: set[str] = set()  # event types the bus has a match rule of ours for
        #: the last event signal dbus-fast has not written yet, and its event
        self._unwritten: tuple[asyncio.Future[Any], Event] | None = None
        #: lines another process can trigger per message (one per kind every 10 s, with counts)
        self._limited = RateLimitedLog(logging.getLogger("pyobs.comm.dbus"))
        #: event signals from senders not known yet, while the peer table is not settled (after a
        #: reconnect a peer's events can arrive before our GetNameOwner answer names it); in order
        self._held: list[Message] = []
        self._held_waiter: asyncio.Task[None] | None = None

    def _rule(self, name: str) -> str:
        return f"type='signal',path='{self.names.path}',interface='{EVENT_IFACE}',member='{name}'"

    async def install(self) -> None:
        """A new connection: ask the bus for the events we receive."""
        self._rules = set()
        await self.receive(self._receives)

    async def receive(self, receives: set[str]) -> None:
        """The event types we handle changed."""
        wanted = {n for n in receives if is_member_name_valid(n)}
        self._receives = wanted
        if not self.link.up:
            return  # installed on the next connection
        for name in sorted(wanted - self._rules):
            await self.link.add_match(self._rule(name), self.link.timeout)
            self._rules.add(name)
        for name in sorted(self._rules - wanted):
            self._rules.discard(name)
            await self.link.remove_match(self._rule(name))

    async def publish(self, event: Event) -> None:
        if not self.link.up:  # the core keeps it in its outbox and sends it when we report the bus back
            raise NotConnected(f"cannot send {event.type}: '{self.names.name}' is not connected to the D-Bus bus")
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
                self.names.path, EVENT_IFACE, event.type, EVENT_SIGNATURE, [event.uuid, event.timestamp, data]
            )
            fut = self.link.write(msg)  # marshals now: a value D-Bus cannot carry fails here
        except NotConnected as exc:
            raise NotConnected(f"cannot send {event.type}: {exc}") from None
        except Exception as exc:
            raise ValueError(f"cannot send {event.type} over D-Bus: {exc}") from None
        if not fut.done():  # queued in dbus-fast's writer: kept until written (sent again if it never is)
            self._unwritten = (fut, event)
        elif not fut.cancelled() and fut.exception() is not None:  # the write killed the connection
            raise NotConnected(f"cannot send {event.type}: the D-Bus connection failed: {fut.exception()}")
        if self.link.burst_full():
            try:
                await self.link.bus_request("GetId", timeout=self.link.timeout)
            except (RemoteError, TimeoutError) as exc:
                raise NotConnected(f"the D-Bus bus does not answer: {exc}") from None

    async def _wait_written(self, fut: asyncio.Future[Any], event: Event) -> None:
        try:
            async with asyncio.timeout(self.link.timeout):
                await asyncio.wait({fut})
        except TimeoutError:
            raise NotConnected(f"cannot send {event.type}: the D-Bus socket takes nothing") from None
        if self._unwritten is not None and self._unwritten[0] is fut:
            if not (fut.cancelled() or fut.exception() is not None):
                self._unwritten = None
            else:  # written never: sent again after the reconnect (see resend_unwritten)
                raise NotConnected(f"cannot send {event.type}: the D-Bus connection failed")

    async def resend_unwritten(self) -> None:
        """After a reconnect, before the core flushes its outbox: the event signal that never made
        it into the socket goes out first (receivers drop duplicates by uuid)."""
        unwritten, self._unwritten = self._unwritten, None
        if unwritten is not None:
            fut, event = unwritten
            if not fut.done() or fut.cancelled() or fut.exception() is not None:
                try:
                    await self.publish(event)
                except NotConnected:
                    if self._unwritten is None:  # lost again: still the oldest, for the next connection
                        self._unwritten = unwritten
                    raise

    async def drain(self, timeout: float = 2.0) -> None:
        """Before closing: disconnecting drops what dbus-fast has not written yet; let the last out."""
        if self._held_waiter is not None:
            self._held_waiter.cancel()
        unwritten, self._unwritten = self._unwritten, None
        if unwritten is not None and self.link.up:
            await asyncio.wait({unwritten[0]}, timeout=timeout)

    def on_event(self, msg: Message) -> None:
        name = msg.member or ""
        if msg.path != self.names.path or name not in self._receives or msg.sender == self.link.unique_name:
            return
        if self._held:
            if not self.peers.settled:
                self._hold(msg)  # behind the ones held already: the order stays
                return
            self._release()
        sender = self.peers.module_of(msg.sender or "")
        if sender is None and not self.peers.settled:
            self._hold(msg)
            return
        self._deliver(msg, name, sender)

    def _hold(self, msg: Message) -> None:
        if len(self._held) >= HELD_MAX:
            dropped = self._held.pop(0)
            self._limited.warning(
                "held-full", "%s: dropped event %s from %s: too many events from connections not named yet",
                self.names.name, dropped.member, dropped.sender,
            )  # fmt: skip
        self._held.append(msg)
        if self._held_waiter is None or self._held_waiter.done():
            self._held_waiter = asyncio.ensure_future(self._release_when_settled())

    async def _release_when_settled(self) -> None:
        # bounded: what is held then goes through the same check as any other event
        await self.peers.wait_settled()
        self._release()

    def _release(self) -> None:
        held, self._held = self._held, []
        for msg in held:
            self._deliver(msg, msg.member or "", self.peers.module_of(msg.sender or ""))

    def _deliver(self, msg: Message, name: str, sender: str | None) -> None:
        if sender is None:
            # only modules (owners of a name with our prefix) send events: nobody else on the bus
            self._limited.warning(
                "foreign-event", "%s: dropped event %s from %s: not a module", self.names.name, name, msg.sender
            )
            return
        if msg.signature != EVENT_SIGNATURE:
            self._limited.warning(
                "bad-event", "%s: dropped event %s from %s: signature '%s', expected '%s'",
                self.names.name, name, sender, msg.signature, EVENT_SIGNATURE,
            )  # fmt: skip
            return
        uuid, timestamp, data = msg.body
        try:
            event = Event.from_dict({"type": name, "uuid": uuid, "timestamp": timestamp, "data": plain(data)})
        except Exception as exc:  # ValueError naming the problem; anything else from an odd event class
            self._limited.warning(
                "bad-event", "%s: dropped malformed event %s from %s: %s", self.names.name, name, sender, exc
            )
            return
        if self.handler is not None:
            self.handler.event_received(sender, event)
