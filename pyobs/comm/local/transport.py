"""LocalTransport: calls are direct awaits of the callee's core, events and state are handed over."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Hashable
from typing import Any

from pyobs.events.event import Event
from pyobs.interfaces.interface import MethodSpec
from pyobs.utils.exceptions import RemoteError

from ..calls import Call, CancelOutcome, Waiting
from ..errors import describe, rebuild
from ..transport import Announcement, Extend, NotConnected, Transport, TransportHandler
from .inprocess import answer_of, continue_in_task
from .network import LocalNetwork

#: ids of in-process calls: unique in the process, so the callee's core can key calls by id alone
_CALL_IDS = itertools.count(1)


class LocalTransport(Transport):
    typed_values = True  # caller and callee share MethodSpecs: values are cast once, by the callee

    def __init__(self, name: str, network: LocalNetwork | None = None) -> None:
        if not name or ":" in name:
            raise ValueError(f"invalid module name {name!r}")
        self.name = name
        self.network = network or LocalNetwork.default()
        self.handler: TransportHandler | None = None
        self.info: Announcement | None = None
        self.state: dict[str, Any] = {}
        #: the lifecycle state we show and its error message
        self.module_state: tuple[str, str] = ("ready", "")
        #: (peer, interface) state we subscribed to
        self._state_subs: set[tuple[str, str]] = set()
        #: members that receive our events, per event type name
        self._event_subscribers: dict[str, list[LocalTransport]] = {}

    async def open(self, handler: TransportHandler) -> None:
        self.handler = handler

    async def announce(self, info: Announcement) -> None:
        first = self.info is None
        self.info = info
        self.state.update(info.state)
        if first:
            self.network.join(self)
        else:
            self._refresh()

    async def update_events(self, sends: set[str], receives: set[str]) -> None:
        if self.info is not None:
            self.info.sends = set(sends)
            self.info.receives = set(receives)
            self._refresh()

    def _refresh(self) -> None:
        """Our announced events changed: peers re-read us, we re-read who receives what."""
        for other in self.network.members.values():
            if other is not self:
                other.see(self)
                self.see(other)

    async def close(self) -> None:
        self.network.leave(self)
        self.info = None

    # -- discovery
    def see(self, other: LocalTransport) -> None:
        """``other`` is online: record it, and subscribe it to the events it handles that we send."""
        if self.handler is None or other.info is None:
            return
        for name in list(self._event_subscribers):
            self._event_subscribers[name] = [m for m in self._event_subscribers[name] if m is not other]
        if self.info is not None:
            for name in self.info.sends & other.info.receives:
                self._event_subscribers.setdefault(name, []).append(other)
        info = other.info
        self.handler.peer_online(
            other.name, [(i.__name__, i.version) for i in info.interfaces], set(info.sends), info.label
        )
        if other.module_state != ("ready", ""):
            self.handler.peer_module_state(other.name, *other.module_state)

    async def set_module_state(self, state: str, message: str = "") -> None:
        self.module_state = (state, message if state == "error" else "")
        if self.info is None:
            return  # shown to the others when we join
        for member in self.network.members.values():
            if member is not self and member.handler is not None:
                member.handler.peer_module_state(self.name, *self.module_state)

    def forget(self, name: str, report: bool = True) -> None:
        for subs in self._event_subscribers.values():
            subs[:] = [m for m in subs if m.name != name]
        self._state_subs = {k for k in self._state_subs if k[0] != name}
        if report and self.handler is not None:
            self.handler.peer_offline(name)

    def link_changed(self, up: bool, reason: str = "") -> None:
        """Our (simulated) link went or came back (see :meth:`LocalNetwork.simulate_outage`)."""
        if self.handler is not None:
            self.handler.connection_changed(up, reason)

    def _down(self, what: str) -> NotConnected:
        return NotConnected(f"cannot {what}: '{self.name}' is not connected ({self.network.outage})")

    def _member(self, peer: str) -> LocalTransport:
        if self.network.outage is not None:
            raise self._down(f"reach '{peer}'")
        member = self.network.members.get(peer)
        if member is None or member.handler is None:
            raise RemoteError(f"module '{peer}' is offline")
        return member

    # -- calls
    inline_calls = True  # the callee's first step runs at once, in our task (see inprocess.py)

    def call_inline(
        self, peer: str, method: MethodSpec, args: list[Any], extend: Extend, control: Call | None = None
    ) -> Any:
        network = self.network  # what _member() does, without its call (hot path)
        if network.outage is not None:
            raise self._down(f"reach '{peer}'")
        member = network.members.get(peer)
        handler = member.handler if member is not None else None
        if handler is None:
            raise RemoteError(f"module '{peer}' is offline")
        call_id = next(_CALL_IDS)
        # the callee runs in a context and a task of its own, as it would in another process: a
        # method that does not wait finishes in this first step, without a task (the fast path);
        # a cancel of ours reaches it only through cancel(), never by accident of sharing our task
        ctx = handler.owner_context.copy()
        progress = control.progress_received if control is not None else None
        try:
            # the arguments were cast against ``method``: the callee does not cast them again if it is its own
            coro = handler.handle_call(self.name, method.name, args, extend, method, call_id, progress, True)
            first = ctx.run(coro.send, None)
        except StopIteration as stop:
            return stop.value
        except Exception as exc:
            # exceptions cross as they would over a wire: by name, rebuilt where importable
            raise rebuild(describe(exc), f"{peer}.{method.name}()") from None
        if control is not None:
            control.wire_id = call_id  # only a call that waits can be cancelled
        task = continue_in_task(coro, first, ctx)
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        where = f"{peer}.{method.name}()"
        task.add_done_callback(lambda task: answer_of(answer, task, where))
        return Waiting(answer)

    async def call(
        self, peer: str, method: MethodSpec, args: list[Any], extend: Extend, control: Call | None = None
    ) -> Any:
        # the core uses call_inline; this is the same call for code that drives a transport itself
        result = self.call_inline(peer, method, args, extend, control)
        return await result.answer if type(result) is Waiting else result

    async def cancel(self, peer: str, wire_id: Hashable, wait: float) -> CancelOutcome:
        member = self.network.members.get(peer)
        if member is None or member.handler is None:
            return CancelOutcome.UNKNOWN
        return await member.handler.cancel_call(self.name, wire_id, wait)

    # -- events
    async def publish_event(self, event: Event) -> None:
        if self.network.outage is not None:
            raise self._down(f"send {event.type}")
        for member in self._event_subscribers.get(type(event).__name__, ()):
            if member.handler is not None:
                member.handler.event_received(self.name, event)

    # -- state
    async def publish_state(self, interface: str, state: Any) -> None:
        self.state[interface] = state
        if self.network.outage is not None:
            return  # read by subscribers when they subscribe again
        for member in self.network.members.values():
            if member.handler is not None and (self.name, interface) in member._state_subs:
                member.handler.state_received(self.name, interface, state)

    async def subscribe_state(self, peer: str, interface: str) -> Any:
        member = self._member(peer)
        self._state_subs.add((peer, interface))
        return member.state.get(interface)

    async def unsubscribe_state(self, peer: str, interface: str) -> None:
        self._state_subs.discard((peer, interface))

    async def fetch_capabilities(self, peer: str, interface: str) -> Any:
        info = self._member(peer).info
        return info.capabilities.get(interface) if info is not None else None

