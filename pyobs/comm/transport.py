"""The narrow contract between the :class:`~pyobs.comm.Comm` core and a transport.

A transport moves plain primitives and nothing else: it connects, announces what its module
offers, sends a call and reports what comes back, publishes events and state, and delivers what
arrives to a :class:`TransportHandler` (the core). It owns no semantics: casting, deadlines,
server-extended timeouts, event registry and dispatch, discovery bookkeeping and the local
ModuleOpened/Closed events all live in the core, once, for every transport.

Values crossing this contract:

* outgoing (call arguments, return values, state, capabilities) are *typed* Python values
  (dataclasses, enums, :class:`~pyobs.utils.time.Time`, lists, tuples, dicts, scalars) together
  with the :class:`~pyobs.interfaces.interface.MethodSpec` that declares them, so a transport
  can encode either by runtime type or by declaration;
* incoming values may be *plain* (None, bool, int, float, str, list, tuple, dict; a dataclass as
  a dict of its fields; enums and times as strings) — the core casts them by declaration.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Hashable
from contextvars import Context
from dataclasses import dataclass, field
from typing import Any, Protocol

from pyobs.events.event import Event
from pyobs.interfaces.interface import Interface, MethodSpec
from pyobs.utils.exceptions import RemoteError

from .calls import Call, CancelOutcome, ProgressSink


class NotConnected(RemoteError, ConnectionError):
    """A transport cannot send right now because it has no connection (it reconnects by itself).

    Raised by ``publish_event``; the core then keeps the event in its outbox
    (:mod:`pyobs.comm.outbox`) and sends it when the connection is back.
    """


#: callee side: the core calls this to announce a long call's duration (seconds) to the caller;
#: it may return an awaitable (a transport that has to send something), which the core awaits
Announce = Callable[[float], Awaitable[None] | None]
#: caller side: the transport calls this when the callee announced a duration (seconds from now)
Extend = Callable[[float], None]


@dataclass
class Announcement:
    """Everything a module makes known about itself when it goes online."""

    #: implemented interfaces including all bases; empty for a module-less tool
    interfaces: list[type[Interface]] = field(default_factory=list)
    #: event type names this module sends / handles
    sends: set[str] = field(default_factory=set)
    receives: set[str] = field(default_factory=set)
    #: constant capabilities per interface name (a dataclass each)
    capabilities: dict[str, Any] = field(default_factory=dict)
    #: current state per interface name (a dataclass each), published before going online
    state: dict[str, Any] = field(default_factory=dict)
    #: human-readable label of the module
    label: str = ""

    @property
    def is_module(self) -> bool:
        return any(i.__name__ == "IModule" for i in self.interfaces)


class TransportHandler(Protocol):
    """What the core offers a transport (implemented by :class:`~pyobs.comm.Comm`)."""

    @property
    def name(self) -> str: ...

    #: the context the module's own code runs in: an in-process transport runs each incoming call
    #: in a copy of it (``scoped`` in :meth:`handle_call`), so the callee's code runs as its module,
    #: sees none of the caller's context variables and leaves none behind
    owner_context: Context

    def method(self, name: str) -> MethodSpec | None:
        """The spec of one of our own methods, to decode an incoming call; None if unknown."""

    async def handle_call(
        self,
        sender: str,
        method: str,
        args: list[Any],
        announce: Announce,
        cast: bool | MethodSpec = True,
        call_id: Hashable | None = None,
        progress: ProgressSink | None = None,
        scoped: bool = False,
    ) -> Any:
        """Run an incoming call; returns the typed result or raises (the transport encodes either).

        ``cast=False`` only for arguments already cast against the method's own MethodSpec; an
        in-process transport passes the MethodSpec the caller cast them against (they are cast
        again unless it is the method's own).
        The transport runs each call in a task of its own: a cancel cancels that task.
        ``call_id``: the transport's key of the call, what a cancel names (unique among the calls
        the module serves: include the sender);
        None: the call cannot be cancelled. ``progress``: sends a progress notice to the caller;
        None: the caller cannot receive them (e.g. a pyobs-core module).
        ``scoped``: the call runs in a context of its own, a copy of :attr:`owner_context`, that
        ends with it (in-process), so the core need not undo the context variables it sets for the call.

        Raises :class:`~pyobs.utils.exceptions.UnknownMethodError` for unknown methods and
        TypeError for arguments that do not fit the declaration.
        """

    async def cancel_call(self, sender: str, call_id: Hashable, wait: float) -> CancelOutcome:
        """``sender`` cancels its call ``call_id``: cancels the method (unless it is not cancellable)
        and returns once it ended, or after at most ``wait`` seconds."""

    def peer_online(
        self, name: str, interfaces: list[tuple[str, int]], sends: set[str] | None = None, label: str = ""
    ) -> None:
        """A peer was discovered: its interface (name, version) pairs and the events it sends.

        Report a peer only once the events of it that we handle can reach us (subscriptions to
        its event nodes done): tests and users rely on "seen online" meaning "events arrive".
        Calling it again for a known peer updates what it offers (no second ModuleOpenedEvent).
        """

    def peer_module_state(self, name: str, state: str, message: str = "") -> None:
        """A peer shows a new lifecycle state (``ready``, ``error`` with a message, ``local``)."""

    def peer_offline(self, name: str) -> None:
        """A peer went away (pending calls to it fail at once)."""

    def event_received(self, sender: str, event: Event) -> None:
        """An event arrived (already decoded, see :meth:`Event.from_dict`)."""

    def state_received(self, sender: str, interface: str, value: Any) -> None:
        """A new state value of a peer's interface arrived (plain or typed)."""

    def connection_changed(self, connected: bool, reason: str = "") -> None:
        """The transport lost or regained its connection (it reconnects by itself).

        That is all a transport reports about its link: the core decides what follows, the same
        for every transport (peers kept for a grace period, calls failing at once with
        :class:`NotConnected`, state subscribed again when a peer is seen again, the events kept
        meanwhile sent once the peers it knew are back or their grace ended). Report the link back
        as soon as it can carry calls; peers seen again are reported through ``peer_online`` as
        usual, whenever they come back; a transport neither reports its peers offline because its
        own link went nor waits for them to come back.
        """


class Transport(abc.ABC):
    """A backend: a thin adapter between the core and one way of moving bytes."""

    #: the module name on this transport
    name: str
    #: True when call results arrive already cast by the callee against the caller's own
    #: MethodSpec (in-process): the core then does not cast them again
    typed_values: bool = False

    @abc.abstractmethod
    async def open(self, handler: TransportHandler) -> None:
        """Connect. Peers already online are reported through ``handler.peer_online``."""

    @abc.abstractmethod
    async def announce(self, info: Announcement) -> None:
        """Become discoverable with what ``info`` says (publishes the initial state first).

        May be called again later with updated information (e.g. events registered after open).
        """

    @abc.abstractmethod
    async def close(self) -> None:
        """Go offline and disconnect; must not hang."""

    @abc.abstractmethod
    async def call(
        self, peer: str, method: MethodSpec, args: list[Any], extend: Extend, control: Call | None = None
    ) -> Any:
        """Call ``method`` on ``peer`` with a full positional argument list (already cast).

        Returns the (plain or typed) result or raises the remote exception (see
        :mod:`pyobs.comm.errors`). Needs no deadline of its own: the core cancels it when the
        call's deadline passes. Calls ``extend(seconds)`` when the callee announces a duration.
        With ``control``: sets ``control.wire_id`` to what :meth:`cancel` needs to name this call
        once it is sent, and hands progress notices to ``control.progress_received``.
        """

    #: True for a transport that runs a call's first step at once, in the caller's task (in-process,
    #: see pyobs/comm/local/inprocess.py): the core then calls :meth:`call_inline`, not :meth:`call`
    inline_calls: bool = False

    def call_inline(
        self, peer: str, method: MethodSpec, args: list[Any], extend: Extend, control: Call | None = None
    ) -> Any:
        """(``inline_calls`` transports) Like :meth:`call`, but a plain function: runs the callee's
        first step now and returns the result, or a :class:`~pyobs.comm.calls.Waiting` whose
        ``answer`` the core awaits when the callee has to wait; raises what the call raised.
        A call that does not wait then costs no coroutine of the transport."""
        raise NotImplementedError(f"{type(self).__name__} does not run calls inline")

    async def cancel(self, peer: str, wire_id: Hashable, wait: float) -> CancelOutcome:
        """Ask ``peer`` to cancel our call ``wire_id`` and to answer once the method ended, or
        after at most ``wait`` s; returns its answer. The core bounds the wait. Default: the
        transport cannot cancel remote calls."""
        return CancelOutcome.UNSUPPORTED

    @abc.abstractmethod
    async def publish_event(self, event: Event) -> None:
        """Send an event to everyone who subscribed to its type. Must not block for long.

        Raises :class:`NotConnected` when it cannot send for lack of a connection (and reports
        the connection lost and back through ``handler.connection_changed``); never queues:
        the core's outbox (:mod:`pyobs.comm.outbox`) keeps events until they can go out.
        """

    async def update_events(self, sends: set[str], receives: set[str]) -> None:
        """The set of event types this module sends or handles changed (after announce)."""
        return None

    @abc.abstractmethod
    async def publish_state(self, interface: str, state: Any) -> None:
        """Publish the current state (a dataclass) of one of our interfaces.

        Without a connection: keep it and publish it once the connection is back (raising
        :class:`NotConnected` is allowed, the core then carries on).
        """

    @abc.abstractmethod
    async def subscribe_state(self, peer: str, interface: str) -> Any:
        """Subscribe to a peer's state of one interface; return its current value (or None).

        Later changes arrive through ``handler.state_received``.
        """

    async def unsubscribe_state(self, peer: str, interface: str) -> None:
        return None

    async def set_module_state(self, state: str, message: str = "") -> None:
        """The module's lifecycle state changed (``ready``, ``error`` with a message, ``local``):
        show it to peers where the transport can (XMPP: presence ``<show>``/``<status>``)."""
        return None

    async def resolve(self, peer: str) -> bool:
        """Called when ``peer`` is not (yet) known to the core: if the transport knows it is
        online and its discovery is under way, wait for that (bounded) and return True."""
        return False

    async def fetch_capabilities(self, peer: str, interface: str) -> Any:
        """A peer's capabilities for one interface (plain or typed), None if unknown."""
        return None

    async def resend_unconfirmed(self) -> None:
        """After a reconnect, right before the core sends the events its outbox kept: write again
        what the old connection took but never confirmed (receivers drop duplicates by uuid), so it
        goes out before anything newer. Raise :class:`NotConnected` if the link went again (keep it
        for the next connection). Default: a transport that keeps nothing."""
        return None

    def forget_peer(self, peer: str) -> None:
        """The core gave ``peer`` up: kept while our link was down, it was not reported again within
        the grace (the core reported it offline). Forget what is kept for it; report it through
        ``peer_online`` as a new peer if it comes back. Default: a transport that kept nothing."""
        return None
