"""A small in-memory transport for the Comm core's policy tests (no server, no sockets).

Unlike LocalTransport it behaves like a wire: a call is served in a task of its own on the callee
side (so the caller really waits), values travel as they are, exceptions travel by name, and the
test controls the link: :meth:`FakeNetwork.cut` makes every member report its connection lost
and refuse to send with NotConnected, :meth:`FakeNetwork.restore` brings it back and reports the
members it names again, :meth:`FakeNetwork.rejoin` brings back one that reconnects later. It
records what the core asked of it, so tests can count.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pyobs.comm.calls import Call
from pyobs.comm.errors import describe, rebuild
from pyobs.comm.transport import Announcement, Extend, NotConnected, Transport, TransportHandler
from pyobs.events.event import Event
from pyobs.interfaces.interface import MethodSpec
from pyobs.utils.exceptions import RemoteError


class FakeNetwork:
    """Who is online; the link of every member goes down and comes back together."""

    def __init__(self) -> None:
        self.members: dict[str, FakeTransport] = {}
        self.up = True

    def online(self) -> list[FakeTransport]:
        return [m for m in self.members.values() if m.info is not None and not m.away]

    def cut(self, reason: str = "fake link cut") -> None:
        """Every member loses its link (as when a server goes away)."""
        self.up = False
        for member in self.members.values():
            if member.handler is not None:
                member.handler.connection_changed(False, reason)

    def restore(self, back: list[str] | None = None, later: list[str] | None = None) -> None:
        """The link is back; members in ``back`` (default: all but ``later``) are reported again.

        Members in ``later`` stay away (not connected, not seen) until :meth:`rejoin`; the others
        not in ``back`` are treated as gone while the link was down: they leave.
        """
        self.up = True
        away = set(later or ())
        names = (set(self.members) if back is None else set(back)) | away
        for name in [n for n in self.members if n not in names]:
            self.members.pop(name).info = None
        for name in away:
            self.members[name].away = True
        for member in self.members.values():
            if member.away:
                continue
            for other in self.online():
                if other is not member:
                    member.see(other)
            if member.handler is not None:
                member.handler.connection_changed(True)

    def rejoin(self, name: str) -> None:
        """A member that stayed away after :meth:`restore` reconnects: it and the others see each other."""
        member = self.members[name]
        member.away = False
        for other in self.online():
            if other is not member:
                other.see(member)
                member.see(other)
        if member.handler is not None:
            member.handler.connection_changed(True)


class FakeTransport(Transport):
    def __init__(self, name: str, network: FakeNetwork) -> None:
        self.name = name
        self.network = network
        self.handler: TransportHandler | None = None
        self.info: Announcement | None = None
        self.state: dict[str, Any] = {}
        #: what the core asked of us
        self.calls_started = 0
        self.calls_cancelled = 0
        self.subscribes: list[tuple[str, str]] = []
        self.published: list[Event] = []
        #: (peer, interface) whose state reaches us
        self.state_subs: set[tuple[str, str]] = set()
        #: a call to one of these methods is sent but never answered
        self.unanswered: set[str] = set()
        #: not back yet after the network's restore (see FakeNetwork.rejoin)
        self.away = False
        #: events "written to the old connection but never confirmed": sent again on resend_unconfirmed
        self.unconfirmed: list[Event] = []
        self.resends = 0
        #: peers the core gave up (forget_peer)
        self.forgotten: list[str] = []

    def _check_link(self, what: str) -> None:
        if not self.network.up or self.away:
            raise NotConnected(f"{self.name}: cannot {what}: fake link is down")

    async def open(self, handler: TransportHandler) -> None:
        self.handler = handler

    async def announce(self, info: Announcement) -> None:
        self.info = info
        self.state.update(info.state)
        self.network.members[self.name] = self
        for other in self.network.online():
            if other is not self:
                other.see(self)
                self.see(other)

    async def update_events(self, sends: set[str], receives: set[str]) -> None:
        if self.info is not None:
            self.info.sends, self.info.receives = set(sends), set(receives)

    def see(self, other: FakeTransport) -> None:
        if self.handler is not None and other.info is not None:
            info = other.info
            self.handler.peer_online(other.name, [(i.__name__, i.version) for i in info.interfaces], set(info.sends))

    async def close(self) -> None:
        self.info = None
        if self.network.members.get(self.name) is self:
            del self.network.members[self.name]
            for other in self.network.members.values():
                if other.handler is not None:
                    other.handler.peer_offline(self.name)

    async def call(
        self, peer: str, method: MethodSpec, args: list[Any], extend: Extend, control: Call | None = None
    ) -> Any:
        self._check_link(f"call {peer}.{method.name}()")
        callee = self.network.members.get(peer)
        if callee is None or callee.handler is None:
            raise RemoteError(f"module '{peer}' is offline")
        self.calls_started += 1
        try:
            if method.name in self.unanswered:
                await asyncio.Event().wait()  # the answer never comes: only the core's deadline ends this
            # served in the callee's own task, as over a wire
            served = asyncio.ensure_future(callee.handler.handle_call(self.name, method.name, list(args), extend))
            try:
                return await asyncio.shield(served)
            except asyncio.CancelledError:
                served.cancel()
                raise
            except Exception as exc:
                raise rebuild(describe(exc), f"{peer}.{method.name}()") from None
        except asyncio.CancelledError:
            self.calls_cancelled += 1
            raise

    async def publish_event(self, event: Event) -> None:
        self._check_link(f"send {event.type}")
        self.published.append(event)
        for member in self.network.online():
            if member is not self and member.handler is not None and member.info is not None:
                if event.type in member.info.receives:
                    member.handler.event_received(self.name, event)

    async def resend_unconfirmed(self) -> None:
        self.resends += 1
        while self.unconfirmed:
            await self.publish_event(self.unconfirmed[0])
            self.unconfirmed.pop(0)

    def forget_peer(self, peer: str) -> None:
        self.forgotten.append(peer)

    async def publish_state(self, interface: str, state: Any) -> None:
        self.state[interface] = state
        if not self.network.up:
            return  # peers read it when they subscribe again
        for member in self.network.online():
            if member.handler is not None and (self.name, interface) in member.state_subs:
                member.handler.state_received(self.name, interface, state)

    async def subscribe_state(self, peer: str, interface: str) -> Any:
        self._check_link(f"subscribe to {peer}")
        self.subscribes.append((peer, interface))
        member = self.network.members.get(peer)
        if member is None:
            raise RemoteError(f"module '{peer}' is offline")
        self.state_subs.add((peer, interface))
        return member.state.get(interface)

    async def unsubscribe_state(self, peer: str, interface: str) -> None:
        self.state_subs.discard((peer, interface))
