"""Events over D-Bus: broadcast signals ``org.pyobs.Event.<EventType>(s uuid, d timestamp, a{sv} data)``,
received through one match rule per event type we receive.

Owns: the event types we receive and the match rules the bus has for them on this connection
(none on a new one: :meth:`EventSignals.install` adds them on every (re)connection). Outgoing events
are not kept here: an event is a signal the moment it is sent, and one we cannot send raises
NotConnected (the core keeps it until the link is back).
"""

from __future__ import annotations

import logging

from dbus_fast import Message
from dbus_fast.validators import is_member_name_valid

from pyobs.events.event import Event
from pyobs.utils.exceptions import RemoteError

from ..transport import NotConnected, TransportHandler
from .codec import plain, to_variant
from .link import Link
from .peers import PeerTable
from .wire import EVENT_IFACE, EVENT_SIGNATURE, Names

log = logging.getLogger(__name__)


class EventSignals:
    def __init__(self, names: Names, link: Link, peers: PeerTable) -> None:
        self.names = names
        self.link = link
        self.peers = peers
        self.handler: TransportHandler | None = None
        self._receives: set[str] = set()  # event types we handle
        self._rules: set[str] = set()  # event types the bus has a match rule of ours for

    def _rule(self, name: str) -> str:
        return f"type='signal',path='{self.names.path}',interface='{EVENT_IFACE}',member='{name}'"

    async def install(self) -> None:
        """A new connection: ask the bus for the events we receive."""
        self._rules = set()
        for name in sorted(self._receives):
            await self.link.bus_request("AddMatch", "s", [self._rule(name)], self.link.timeout)
            self._rules.add(name)

    async def receive(self, receives: set[str]) -> None:
        """The event types we handle changed."""
        wanted = {n for n in receives if is_member_name_valid(n)}
        self._receives = wanted
        if not self.link.up:
            return  # installed on the next connection
        for name in sorted(wanted - self._rules):
            await self.link.bus_request("AddMatch", "s", [self._rule(name)], self.link.timeout)
            self._rules.add(name)
        for name in sorted(self._rules - wanted):
            self._rules.discard(name)
            try:
                await self.link.bus_request("RemoveMatch", "s", [self._rule(name)], self.link.timeout)
            except RemoteError as exc:
                log.debug("%s: %s", self.names.name, exc)

    async def publish(self, event: Event) -> None:
        if not self.link.up:
            raise NotConnected(f"cannot send {event.type}: '{self.names.name}' is not connected to the D-Bus bus")
        if not is_member_name_valid(event.type):
            raise ValueError(f"cannot send {event.type}: its name is no valid D-Bus member name (use ASCII)")
        try:
            data = {k: to_variant(v) for k, v in event.data.items()}
            msg = Message.new_signal(
                self.names.path, EVENT_IFACE, event.type, EVENT_SIGNATURE, [event.uuid, event.timestamp, data]
            )
            sent = self.link.send(msg)  # marshals now: a value D-Bus cannot carry fails here
        except Exception as exc:
            raise ValueError(f"cannot send {event.type} over D-Bus: {exc}") from None
        if not sent:
            raise NotConnected(f"cannot send {event.type}: the connection to the D-Bus bus just broke")

    def on_event(self, msg: Message) -> None:
        name = msg.member or ""
        if msg.path != self.names.path or name not in self._receives or msg.sender == self.link.unique_name:
            return
        sender = self.peers.module_of(msg.sender or "") or msg.sender or ""
        if msg.signature != EVENT_SIGNATURE:
            log.warning(
                "%s: dropped event %s from %s: signature '%s', expected '%s'",
                self.names.name,
                name,
                sender,
                msg.signature,
                EVENT_SIGNATURE,
            )
            return
        uuid, timestamp, data = msg.body
        try:
            event = Event.from_dict({"type": name, "uuid": uuid, "timestamp": timestamp, "data": plain(data)})
        except Exception as exc:  # ValueError naming the problem; anything else from an odd event class
            log.warning("%s: dropped malformed event %s from %s: %s", self.names.name, name, sender, exc)
            return
        if self.handler is not None:
            self.handler.event_received(sender, event)
