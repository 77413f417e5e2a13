"""The Comm core: every semantic of module communication, once, for all transports."""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Generator, Hashable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

from pyobs.events import ModuleClosedEvent, ModuleOpenedEvent
from pyobs.events.event import EVENTS, Event
from pyobs.interfaces.interface import (
    Interface,
    MethodSpec,
    implemented_interfaces,
    interface_by_name,
    methods_of,
)
from pyobs.utils.casting import CastError, cast
from pyobs.utils.enums import ModuleState
from pyobs.utils.exceptions import (
    ForbiddenError,
    ModuleBusyError,
    ModuleError,
    ModuleStartingError,
    RemoteError,
    RemoteTimeoutError,
    UnknownMethodError,
)
from pyobs.utils.expression import evaluate_expression
from pyobs.utils.owner import Publishers, context_of, current_owner
from pyobs.utils.ratelimit import RateLimitedLog

from .acl import Acl
from .calls import (
    CURRENT_CALL,
    IN_CANCELLABLE,
    IN_CORO,
    IN_KEY,
    IN_METHOD,
    IN_SENDER,
    MAX_CANCEL_WAIT,
    Call,
    CallCancelledError,
    CancelOutcome,
    Incoming,
    NamedCall,
    ProgressSink,
    Serving,
    Waiting,
    report_progress,
    task_awaiting,
)
from .errors import mark_bad_arguments
from .outbox import CAPACITY, Outbox
from .proxy import Proxy, ProxyRequest, StateHandler, proxy_class
from .transport import Announce, Announcement, NotConnected, Transport

log = logging.getLogger(__name__)

EventHandler = Callable[[Any, str], Awaitable[Any]]
#: ``callback(state, error)``, sync or async (pyobs-core's are sync)
PresenceCallback = Callable[[ModuleState, str], Any]
T = TypeVar("T")

#: how many event uuids are remembered to drop duplicates (retried publishes, replays)
_DEDUP_WINDOW = 1024
#: lifecycle states a peer can show (ModuleState values); anything else counts as ready
_PRESENCE_STATES = frozenset({"ready", "error", "local", "starting"})
#: methods that may be called while a module is starting or in error (as pyobs-core)
_ALWAYS_ALLOWED = frozenset({"reset_error", "get_permitted_methods"})
#: how long peers are kept (marked stale) while our own link is down, and after it is back for
#: them to be seen again, before they are reported offline [s]; the one grace of every transport
PEER_GRACE = 10.0
#: peers that went offline this shortly before our own link went may have gone with the server:
#: the events kept while the link was down wait for them too (within the grace) [s]
RECENTLY_GONE = 2.0
#: how many of those times are remembered at most
_RECENTLY_GONE_MAX = 1024

#: set by a tool (pyobs-comm, the dashboard) around a call to learn its deadline: called with the
#: seconds from now to the deadline whenever the callee announces a duration (``@timeout``)
deadline_observer: ContextVar[Callable[[float], None] | None] = ContextVar("deadline_observer", default=None)


@dataclass(eq=False)
class Peer:
    """A module we know to be online. A new object each time it comes online."""

    name: str
    interfaces: tuple[type[Interface], ...]
    sends: frozenset[str]
    label: str = ""
    #: lifecycle state the module shows (``ready``, ``error``, ``local``) and its error message
    state: str = "ready"
    error: str = ""
    #: our own link went down since it was last seen: kept for the grace period, not yet offline
    stale: bool = False

    @property
    def is_module(self) -> bool:
        return any(i.__name__ == "IModule" for i in self.interfaces)


@dataclass
class _LocalMethod:
    spec: MethodSpec
    func: Callable[..., Awaitable[Any]]
    takes_kwargs: bool
    timeout: Any  # None, seconds, a method name or a callable (see pyobs.modules.timeout)
    cancellable: bool = True  # False: marked @not_cancellable
    #: a result None needs no cast (casting it gives None: a void or optional result), which
    #: spares the many methods that return nothing a caster call each
    none_ok: bool = False


def _none_ok(spec: MethodSpec) -> bool:
    try:
        return spec.cast_return(None) is None
    except Exception:  # None is not a valid result: the cast says so when it comes
        return False


class Comm:
    """A module's connection to all other modules.

    Args:
        transport: the backend that moves bytes (subclasses such as LocalComm create it).
        timeout: default deadline of a remote call in seconds (a ``@timeout`` method extends it).
        max_call_timeout: the longest a callee may extend a call's deadline to (seconds from its
            announcement); longer announcements are cut to this, non-finite ones ignored.
        max_calls: incoming calls served at once; more get a :class:`ModuleBusyError` at once.
        max_handler_tasks: events one handler works on at once; further events wait in its queue.
        handler_queue_size: events waiting per handler; when full, the oldest waiting is dropped
            (counted in :attr:`dropped_events`, with a rate-limited warning).
        event_queue_size: how many outgoing events may wait while they cannot be sent (see
            :mod:`pyobs.comm.outbox`); beyond that the oldest are dropped with a warning.
        peer_grace: seconds peers are kept while our own link is down, and after it is back for
            them to be seen again, before they are reported offline (also the attribute
            ``peer_grace``).
    """

    #: a caller whose call is cancelled waits at most this long (s) for the callee to confirm
    cancel_grace: float = 2.0
    #: progress notices of one served call leave at most once per this many seconds
    progress_interval: float = 0.1

    def __init__(
        self,
        transport: Transport,
        *,
        timeout: float = 10.0,
        max_call_timeout: float = 3600.0,
        max_calls: int = 1000,
        max_handler_tasks: int = 64,
        handler_queue_size: int = 1024,
        event_queue_size: int = CAPACITY,
        peer_grace: float = PEER_GRACE,
    ) -> None:
        if not math.isfinite(timeout) or timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        if not math.isfinite(max_call_timeout) or max_call_timeout <= 0:
            raise ValueError(f"max_call_timeout must be a positive number of seconds, not {max_call_timeout!r}")
        if not math.isfinite(peer_grace) or peer_grace < 0:
            raise ValueError(f"peer_grace must be a number of seconds >= 0, not {peer_grace!r}")
        for key, value in (
            ("max_calls", max_calls),
            ("max_handler_tasks", max_handler_tasks),
            ("handler_queue_size", handler_queue_size),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be a whole number >= 1, not {value!r}")
        self._transport = transport
        #: where outgoing events wait until they can be sent; its counters say what was sent
        self.outbox = Outbox(transport.name, transport.publish_event, event_queue_size)
        self.timeout = float(timeout)
        self.peer_grace = float(peer_grace)
        self.max_call_timeout = float(max_call_timeout)
        self.max_calls = max_calls
        self.max_handler_tasks = max_handler_tasks
        self.handler_queue_size = handler_queue_size
        #: incoming calls being served now
        self.serving = 0
        #: incoming calls refused because max_calls were being served
        self.busy_refusals = 0
        #: events dropped because a handler's queue was full
        self.dropped_events = 0
        #: lines a peer can trigger per call or event go through this (one per kind every 10 s, with counts)
        self._limited = RateLimitedLog(log)
        self._handler_running: dict[EventHandler, int] = {}
        self._handler_waiting: dict[EventHandler, deque[tuple[Event, str]]] = {}
        self._module: Any = None
        self._peers: dict[str, Peer] = {}
        self._proxies: dict[str, Proxy] = {}
        self._methods: dict[str, _LocalMethod] = {}
        self._acl: Acl | None = None
        self._sends: set[type[Event]] = set()
        self._handlers: dict[type[Event], list[EventHandler]] = {}
        self._dispatch_cache: dict[type[Event], list[EventHandler]] = {}
        self._own_state: dict[str, Any] = {}
        self._capabilities: dict[str, Any] = {}
        self._state_cache: dict[tuple[str, str], Any] = {}
        self._state_subscribed: set[tuple[str, str]] = set()
        self._state_handlers: dict[tuple[str, str], list[StateHandler]] = {}
        self._state_changed: dict[tuple[str, str], asyncio.Event] = {}
        self._caps_cache: dict[tuple[str, str], Any] = {}
        self._caps_changed: dict[tuple[str, str], asyncio.Event] = {}
        self._presence_handlers: dict[str, list[PresenceCallback]] = {}
        self._inflight: dict[str, set[Call]] = {}
        #: calls we serve, by the transport's call id (which includes the sender): what a cancel finds
        #: (calls without an id by their method's coroutine)
        self._serving: dict[Hashable, Incoming] = {}
        #: the records of those calls that needed one (progress, a cancel, a task of their own), by the same key
        self._records: dict[Hashable, Serving] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._handler_tasks: dict[asyncio.Task[Any], tuple[EventHandler, Event, str]] = {}
        #: the context the module's own code runs in (pyobs.utils.owner): event handlers run in it,
        #: each in-process call in a copy of it (``scoped``)
        self.owner_context = context_of(None)
        self._seen: set[str] = set()
        self._seen_order: deque[str] = deque()
        self._opened = False
        self._announced = False
        self._connected = False
        self._lost_reason = ""
        #: stale peers reported again before our link was reported back: their state is subscribed then
        self._returned: set[str] = set()
        #: ends the grace of stale peers (armed when our link goes down and again when it is back)
        self._grace_timer: asyncio.TimerHandle | None = None
        #: the outbox is held since our link went: after it is back, until the peers in ``_awaited``
        #: are reported again or their grace ended, so the events kept meanwhile reach them
        self._holding = False
        #: peers we knew when our link went (and those gone just before), not reported again yet
        self._awaited: set[str] = set()
        #: when peers went offline (the recent ones), oldest first
        self._offline_at: dict[str, float] = {}
        #: counts our link's losses: a release of the outbox started before the last one is void
        self._losses = 0

    # ------------------------------------------------------------------ lifecycle

    @property
    def name(self) -> str:
        """This module's name on the network."""
        return self._transport.name

    @property
    def transport(self) -> Transport:
        return self._transport

    @property
    def opened(self) -> bool:
        return self._opened

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def module(self) -> Any:
        """The module whose interfaces this comm exposes; None if none (pyobs-core raises instead)."""
        return self._module

    @module.setter
    def module(self, module: Any) -> None:
        self.attach(module)

    def attach(self, module: Any) -> None:
        """Attach the module whose interfaces this comm exposes (done by Object)."""
        self._module = module
        self.owner_context = context_of(module)
        self._methods = {}
        for name, spec in methods_of(implemented_interfaces(module)).items():
            func = getattr(module, name)
            try:
                params = inspect.signature(func).parameters.values()
                takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
            except (TypeError, ValueError):
                takes_kwargs = False
            tmo = getattr(func, "__pyobs_timeout__", None)
            cancellable = getattr(func, "__pyobs_cancellable__", True) is not False
            self._methods[name] = _LocalMethod(spec, func, takes_kwargs, tmo, cancellable, _none_ok(spec))

    async def open(self) -> None:
        """Connect. A comm without a module is announced at once; a module's comm is announced
        by the module when its ``open()`` has finished (so everything it registered is known)."""
        if self._opened:
            return
        self.outbox.open()
        await self._transport.open(self)
        self._opened = True
        self._connected = True
        self.outbox.set_connected(True)
        if self.module is None:
            await self.announce()

    async def announce(self) -> None:
        """Become discoverable (idempotent; called again after later registrations)."""
        # calls are taken from here on: a peer may discover us (and call) before the transport's
        # announce() returns, which also waits for the discovery of the peers already online
        was, self._announced = self._announced, True
        try:
            await self._transport.announce(self._announcement())
        except BaseException:
            self._announced = was
            raise
        self.outbox.set_announced(True)  # events sent before (e.g. logged in open()) go out now

    def _announcement(self) -> Announcement:
        module = self.module
        return Announcement(
            interfaces=implemented_interfaces(module) if module is not None else [],
            sends={e.__name__ for e in self._sends},
            receives=self._receive_names(),
            capabilities=dict(self._capabilities),
            state=dict(self._own_state),
            label=str(getattr(module, "label", "") or self.name) if module is not None else "",
        )

    async def close(self) -> None:
        """Go offline; pending calls of ours end, handlers are cancelled."""
        if not self._opened:
            return
        if self._holding and self._connected:  # closing within the grace: the peers back get what waits
            self._holding = False
            self._awaited.clear()
            await self._release_outbox(self._losses)
        # what waits goes out first (bounded), while we are still online
        await self.outbox.close()
        box = self.outbox
        if box.sent or box.unsent or box.dropped or box.refused:
            log.info("%s: %s", self.name, self.outbox.summary())  # what was sent, for operators and tests
        self._opened = False
        self._announced = False
        self._connected = False
        self._cancel_grace()
        self._returned.clear()
        self._holding = False
        self._awaited.clear()
        try:
            await asyncio.wait_for(self._transport.close(), timeout=max(self.timeout, 5.0))
        except TimeoutError:
            log.warning("%s: closing the transport timed out", self.name)
        for calls in self._inflight.values():
            for c in list(calls):
                c._abort()
        self._handler_waiting.clear()
        for task in [*self._tasks, *self._handler_tasks]:
            task.cancel()
        for serving in list(self._records.values()):  # calls we serve end too (those that may)
            if serving.task is not None and serving.entry[IN_CANCELLABLE]:
                serving.task.cancel()
        self._peers.clear()
        self._proxies.clear()
        self._state_cache.clear()
        self._state_subscribed.clear()
        self._caps_cache.clear()

    async def set_presence(self, state: ModuleState | str, error_string: str = "") -> None:
        """pyobs-core's name for :meth:`set_module_state` (Module.set_state calls it)."""
        await self.set_module_state(str(state), error_string)

    async def set_module_state(self, state: str, message: str = "") -> None:
        """Tell peers the module's lifecycle state (``ready``, ``error``, ``local``)."""
        if self._opened:
            await self._transport.set_module_state(str(state), message)

    # ------------------------------------------------------------------ discovery

    @property
    def clients(self) -> list[str]:
        """Names of all modules online."""
        return [n for n, p in self._peers.items() if p.is_module]

    @property
    def stale(self) -> list[str]:
        """Peers kept since our link went down that have not been seen again yet (see ``peer_grace``)."""
        return [n for n, p in self._peers.items() if p.stale]

    def is_online(self, name: str) -> bool:
        """Whether ``name`` (a module or a module-less tool) is online; its events reach us then."""
        return name in self._peers

    async def clients_with_interface(self, interface: type[Interface]) -> list[str]:
        """Names of all modules online that implement ``interface``."""
        return [n for n, p in self._peers.items() if interface in p.interfaces]

    async def get_interfaces(self, client: str) -> list[type[Interface]]:
        """The interfaces module ``client`` implements; ValueError if it is not online."""
        return list((await self._peer(client)).interfaces)

    async def _peer(self, name: str) -> Peer:
        peer = self._peers.get(name)
        if peer is None and self._opened and await self._transport.resolve(name):
            peer = self._peers.get(name)
        if peer is None:
            online = ", ".join(sorted(self.clients)) or "none"
            raise ValueError(f"module '{name}' is not online (online: {online})")
        return peer

    def proxy(self, name_or_object: Any, obj_type: type[T] | None = None) -> ProxyRequest[Any]:
        """A proxy to a module (awaitable, or ``async with``).

        Returns the object itself if it is not a name and implements ``obj_type``.
        Raises ValueError if the module is not online or does not implement ``obj_type``.
        The proxy's state cache is filled before it is returned (see :meth:`Proxy.get_state`).
        """
        return ProxyRequest(lambda: self._proxy(name_or_object, obj_type))

    async def _proxy(self, name_or_object: Any, interface: type[Any] | None) -> Any:
        if not isinstance(name_or_object, str):
            if interface is None or isinstance(name_or_object, interface):
                return name_or_object
            raise ValueError(f"{name_or_object!r} does not implement {interface.__name__}")
        name = name_or_object
        if self.module is not None and name == self.name:
            return await self._proxy(self.module, interface)
        peer = await self._peer(name)
        if interface is not None and interface not in peer.interfaces:
            have = ", ".join(i.__name__ for i in peer.interfaces) or "no interfaces"
            raise ValueError(f"module '{name}' does not implement {interface.__name__} (it has {have})")
        proxy = self._proxies.get(name)
        if proxy is None or proxy._peer is not peer:
            proxy = proxy_class(peer.interfaces)(self, peer)
            self._proxies[name] = proxy
            await self._fill_proxy_caches(peer)
        return proxy

    async def _fill_proxy_caches(self, peer: Peer) -> None:
        """A new proxy reads states without a call (as in pyobs-core): subscribe to every state
        the peer has, all at once under the comm's deadline; fetch capabilities in the background."""
        todo = [
            i
            for i in peer.interfaces
            if i.own_state_class() is not None and (peer.name, i.__name__) not in self._state_subscribed
        ]
        results = await asyncio.gather(
            *(self._subscribe_state((peer.name, i.__name__), i) for i in todo), return_exceptions=True
        )
        for iface, res in zip(todo, results, strict=True):
            if isinstance(res, BaseException):
                log.warning("%s: cannot subscribe to state %s of %s: %s", self.name, iface.__name__, peer.name, res)
        for iface in peer.interfaces:
            if iface.own_capabilities_class() is not None and (peer.name, iface.__name__) not in self._caps_cache:
                self._spawn(self._prefetch_capabilities(peer, iface))

    async def _prefetch_capabilities(self, peer: Peer, interface: type[Interface]) -> None:
        try:
            await self.get_capabilities(peer.name, interface)
        except Exception as exc:  # the proxy still works; get_capabilities() stays None
            log.debug("%s: capabilities %s of %s: %s", self.name, interface.__name__, peer.name, exc)

    def safe_proxy(self, name_or_object: Any, obj_type: type[T] | None = None) -> ProxyRequest[Any]:
        """Like :meth:`proxy`, but None instead of ValueError (awaitable, or ``async with``)."""
        return ProxyRequest(lambda: self._safe_proxy(name_or_object, obj_type))

    async def _safe_proxy(self, name_or_object: Any, obj_type: type[Any] | None) -> Any:
        try:
            return await self._proxy(name_or_object, obj_type)
        except ValueError:
            return None

    async def has_proxy(self, name_or_object: Any, obj_type: type[Any] | None = None) -> bool:
        """Whether a proxy of that type can be had now."""
        return await self._safe_proxy(name_or_object, obj_type) is not None

    @property
    def has_module(self) -> bool:
        """Whether a module is attached to this comm."""
        return self.module is not None

    # ------------------------------------------------------------------ presence

    def get_client_state(self, module: str) -> tuple[ModuleState, str] | None:
        """The lifecycle state a module online shows and its error message; None if not online."""
        peer = self._peers.get(module)
        if peer is None:
            return None
        return ModuleState(peer.state), peer.error

    def peer(self, name: str) -> Peer | None:
        """What we know of a module (or tool) online — interfaces, label, lifecycle state — or None.
        For tools that show the fleet; treat it as read-only."""
        return self._peers.get(name)

    async def subscribe_presence(self, module: str, callback: PresenceCallback) -> None:
        """Call ``callback(state, error)`` now with the module's current state and on every change
        (``ModuleState.CLOSED`` when it goes offline). May be sync or async."""
        self._presence_handlers.setdefault(module, []).append(callback)
        current = self.get_client_state(module)
        if current is not None:
            self._spawn(self._run_presence_callback(callback, module, *current))

    async def unsubscribe_presence(self, module: str, callback: PresenceCallback) -> None:
        handlers = self._presence_handlers.get(module, [])
        if callback in handlers:
            handlers.remove(callback)
        if not handlers:
            self._presence_handlers.pop(module, None)

    def _presence_changed(self, name: str, state: str, error: str) -> None:
        for callback in self._presence_handlers.get(name, ()):
            self._spawn(self._run_presence_callback(callback, name, ModuleState(state), error))

    async def _run_presence_callback(
        self, callback: PresenceCallback, name: str, state: ModuleState, error: str
    ) -> None:
        try:
            result = callback(state, error)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("%s: presence callback %r failed for %s", self.name, callback, name)

    # ------------------------------------------------------------------ transport callbacks

    def peer_online(
        self, name: str, interfaces: list[tuple[str, int]], sends: set[str] | None = None, label: str = ""
    ) -> None:
        if name == self.name:
            return
        classes = []
        for iname, version in interfaces:
            iface = interface_by_name(iname, version)
            if iface is not None:
                classes.append(iface)
        peer = self._peers.get(name)
        if peer is not None:  # known already: update in place, so existing proxies stay valid
            peer.interfaces, peer.sends, peer.label = tuple(classes), frozenset(sends or ()), label
            if peer.stale:  # seen again after our link was down: its state may have changed meanwhile
                peer.stale = False
                if self._connected:
                    self._resubscribe_peer(name)
                else:  # a transport may report peers before it reports its link back
                    self._returned.add(name)
        else:
            self._peers[name] = Peer(name, tuple(classes), frozenset(sends or ()), label)
            self._dispatch(ModuleOpenedEvent(module=name), name)
            for key in self._state_handlers:
                if key[0] == name:  # somebody watches this module's state: subscribe again
                    self._spawn(self._resubscribe(key))
        if name in self._awaited:
            self._awaited.discard(name)
            self._release_when_all_back()

    def peer_module_state(self, name: str, state: str, message: str = "") -> None:
        """A peer shows a new lifecycle state (``ready``, ``error`` with a message, ``local``)."""
        peer = self._peers.get(name)
        if peer is None:
            return
        state = state if state in _PRESENCE_STATES else "ready"
        message = message if state == "error" else ""
        if (peer.state, peer.error) == (state, message):
            return
        peer.state, peer.error = state, message
        self._presence_changed(name, state, message)

    def peer_offline(self, name: str) -> None:
        peer = self._peers.pop(name, None)
        if peer is None:
            return
        self._presence_changed(name, "closed", "")
        self._proxies.pop(name, None)
        for call in list(self._inflight.get(name, ())):
            call._abort()
        for key in [k for k in self._state_subscribed if k[0] == name]:
            self._state_subscribed.discard(key)
            self._state_cache.pop(key, None)
        for key in [k for k in self._caps_cache if k[0] == name]:
            del self._caps_cache[key]
        self._offline_at.pop(name, None)
        self._offline_at[name] = time.monotonic()
        if len(self._offline_at) > _RECENTLY_GONE_MAX:
            del self._offline_at[next(iter(self._offline_at))]
        self._dispatch(ModuleClosedEvent(module=name), name)
        if name in self._awaited:
            self._awaited.discard(name)
            self._release_when_all_back()

    def connection_changed(self, connected: bool, reason: str = "") -> None:
        """The connectivity policy, the same for every transport.

        Link lost: calls in flight end at once with :class:`NotConnected`, new calls fail at once;
        peers are kept, marked stale (no ModuleClosedEvent), for ``peer_grace`` seconds; events wait
        in the outbox. Link back: calls work again; peers the transport reports again are fresh
        (their state is subscribed again); those not seen within ``peer_grace`` after that, or all of
        them if we stay down longer, go offline. The events kept meanwhile go out once every peer we
        knew is back or gone (so they reach those that come back), after what the transport's old
        connection never confirmed (:meth:`Transport.resend_unconfirmed`).
        """
        was = self._connected
        self._connected = connected
        if not self._opened:
            self.outbox.set_connected(connected)
            return
        if connected:
            log.info("%s: connection restored", self.name)
            returned, self._returned = self._returned, set()
            for name in returned:
                if name in self._peers:
                    self._resubscribe_peer(name)
            if self._awaited:
                self._arm_grace()  # a fresh grace for the stale ones to be seen again
            self._release_when_all_back()
            return
        log.warning("%s: connection lost%s", self.name, f" ({reason})" if reason else "")
        self.outbox.set_connected(False)
        self._losses += 1
        self._holding = True
        self._lost_reason = reason or "connection lost"
        for peer in self._peers.values():
            peer.stale = True
        now = time.monotonic()
        recent = {n for n, t in self._offline_at.items() if now - t < RECENTLY_GONE}
        self._awaited |= set(self._peers) | recent
        for calls in self._inflight.values():
            for call in list(calls):
                call._abort(lost=self._lost_reason)
        if was or self._grace_timer is None:
            self._arm_grace()

    def _release_when_all_back(self) -> None:
        """After a reconnect: once nobody is awaited any more, the outbox sends what it kept."""
        if self._holding and self._connected and not self._awaited:
            self._holding = False
            self._spawn(self._release_outbox(self._losses))

    async def _release_outbox(self, losses: int) -> None:
        try:  # older than anything in the outbox: first
            async with asyncio.timeout(self.timeout):
                await self._transport.resend_unconfirmed()
        except NotConnected:
            pass  # the transport keeps it for its next connection
        except TimeoutError:
            log.warning("%s: sending again what the old connection never confirmed timed out", self.name)
        except Exception as exc:
            log.warning("%s: events lost with the old connection could not be sent again: %s", self.name, exc)
        if losses == self._losses and self._connected:
            self.outbox.set_connected(True)

    def _resubscribe_peer(self, name: str) -> None:
        keys = {k for k in self._state_subscribed if k[0] == name} | {k for k in self._state_handlers if k[0] == name}
        for key in keys:
            self._spawn(self._resubscribe(key, refresh=True))

    def _arm_grace(self) -> None:
        self._cancel_grace()
        self._grace_timer = asyncio.get_running_loop().call_later(self.peer_grace, self._grace_over)

    def _cancel_grace(self) -> None:
        if self._grace_timer is not None:
            self._grace_timer.cancel()
            self._grace_timer = None

    def _grace_over(self) -> None:
        self._grace_timer = None
        stale = [name for name, peer in self._peers.items() if peer.stale]
        if stale:
            log.info("%s: not seen again within %.1f s: %s", self.name, self.peer_grace, ", ".join(sorted(stale)))
        for name in stale:
            self.peer_offline(name)
            self._transport.forget_peer(name)
        self._awaited.clear()
        self._release_when_all_back()

    # ------------------------------------------------------------------ calls (caller side)

    async def execute(self, module: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call ``method`` on ``module`` by name (a coroutine, as in pyobs-core; proxy methods
        return the :class:`Call` handle with progress)."""
        return await NamedCall(self, module, method, args, kwargs)

    async def _lookup(self, module: str, method: str) -> tuple[Peer, MethodSpec]:
        """The peer and the spec of a call by name (a :class:`NamedCall` starting)."""
        peer = await self._peer(module)
        spec = methods_of(peer.interfaces).get(method)
        if spec is None:
            raise AttributeError(f"module '{module}' has no method '{method}'")
        return peer, spec

    def _send(self, handle: Call) -> Any:
        """Send a call (the first part of awaiting a :class:`Call`): returns the result of an
        in-process call that finished at once, or a :class:`Waiting` for the answer."""
        peer, spec = handle._peer, handle._spec
        bound = spec.bind(handle._args, handle._kwargs)
        name = peer.name
        if self._peers.get(name) is not peer:
            raise RemoteError(f"cannot call {name}.{spec.name}(): module '{name}' is offline")
        if self._opened and not self._connected:
            raise NotConnected(
                f"cannot call {name}.{spec.name}(): '{self.name}' is not connected ({self._lost_reason}); reconnecting"
            )
        observer = deadline_observer.get()
        if observer is not None:  # read here, in the caller's context (the announcement may come elsewhere)
            handle._observer = observer
        # the handle keeps the call's deadline too (one object per call on this hot path)
        transport = self._transport
        if transport.inline_calls:  # in-process: the callee's first step runs now, in this task
            return transport.call_inline(name, spec, bound, handle._extend, handle)
        return Waiting(transport.call(name, spec, bound, handle._extend, handle))

    def _cast_result(self, peer: Peer, spec: MethodSpec, result: Any) -> Any:
        """The result of a call, cast against its declaration (the last part of awaiting a :class:`Call`
        whose transport does not give typed values)."""
        try:
            return spec.cast_return(result)
        except CastError as exc:
            raise RemoteError(f"{peer.name}.{spec.name}() returned an unexpected value: {exc}") from None

    async def _wait(self, peer: Peer, spec: MethodSpec, pending: Awaitable[Any], call: Call) -> Any:
        """Wait for a call that had to suspend, under its deadline; if the deadline passes or the
        waiting task is cancelled, cancel it at the callee too."""
        name = peer.name
        inflight = self._inflight.get(name)
        if inflight is None:
            inflight = self._inflight[name] = set()
        loop = asyncio.get_running_loop()
        until = call._until if call._until is not None else loop.time() + self.timeout
        inflight.add(call)
        try:
            async with asyncio.timeout_at(until) as deadline:
                call._deadline = deadline
                return await pending
        except TimeoutError:
            if not deadline.expired():
                raise  # a TimeoutError raised by the remote method itself
            if call._lost is not None:
                lost = call._lost
                raise NotConnected(f"call {name}.{spec.name}() failed: our connection was lost ({lost})") from None
            if call._gone:
                raise RemoteError(f"call {name}.{spec.name}() failed: module '{name}' went offline") from None
            note = await self._cancel_remote(name, spec, call)
            raise RemoteTimeoutError(f"call {name}.{spec.name}() timed out (deadline passed){note}") from None
        except asyncio.CancelledError:
            if call._gone:
                raise
            note = await self._cancel_remote(name, spec, call)
            if note:
                raise asyncio.CancelledError(f"call {name}.{spec.name}() cancelled{note}") from None
            raise
        finally:
            inflight.discard(call)

    async def _cancel_remote(self, name: str, spec: MethodSpec, handle: Call) -> str:
        """Cancel our call at the callee; wait (at most ``cancel_grace``) until its method ended.

        Returns a note for the caller's exception when the call goes on there ("" if it ended).
        """
        wire_id = handle.wire_id
        if wire_id is None:
            handle.cancel_outcome = CancelOutcome.NOT_SENT
            return ""
        grace = self.cancel_grace
        what = f"{name}.{spec.name}()"
        try:
            async with asyncio.timeout(grace):
                # ask the callee to answer a little before we stop waiting, so its answer arrives
                outcome = CancelOutcome(await self._transport.cancel(name, wire_id, 0.8 * grace))
        except TimeoutError:
            outcome = CancelOutcome.UNCONFIRMED
        except Exception as exc:  # a failed cancel must not change what the caller sees
            log.warning("%s: cancelling %s failed: %s", self.name, what, exc)
            outcome = CancelOutcome.UNCONFIRMED
        handle.cancel_outcome = outcome
        if outcome is CancelOutcome.CANCELLED or outcome is CancelOutcome.UNKNOWN:
            log.debug("%s: %s cancelled (%s)", self.name, what, outcome)
            return ""
        if outcome is CancelOutcome.NOT_CANCELLABLE:
            note = f"; {name} does not allow cancelling {spec.name}(): it goes on there"
        elif outcome is CancelOutcome.UNSUPPORTED:
            note = f"; {name} cannot be cancelled (not a pyobs-comm module): the call goes on there"
        elif outcome is CancelOutcome.RUNNING:
            note = f"; {name} was told to cancel it, but it had not ended after {0.8 * grace:g} s"
        else:
            note = f"; {name} did not confirm the cancel within {grace:g} s"
        log.warning("%s: %s cancelled here%s", self.name, what, note)
        return note

    # ------------------------------------------------------------------ calls (callee side)

    @property
    def acl(self) -> Acl | None:
        """The access control list calls to our methods are checked against (None: open)."""
        return self._acl

    def set_acl(self, acl: Acl | None) -> None:
        """Check every incoming call against ``acl`` (see :mod:`pyobs.comm.acl`); None opens the module."""
        self._acl = acl

    def permitted_methods(self, sender: str) -> list[str]:
        """Names of our methods that ``sender`` may call, sorted."""
        names = sorted(self._methods)
        return names if self._acl is None else self._acl.permitted(sender, names)

    def method(self, name: str) -> MethodSpec | None:
        m = self._methods.get(name)
        return m.spec if m is not None else None

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
        m = self._methods.get(method)
        if m is None:
            raise UnknownMethodError(f"module '{self.name}' has no method '{method}'")
        if self.serving >= self.max_calls:
            self.busy_refusals += 1
            self._limited.warning(
                "busy", "%s: refused calls: %d calls are being served (max_calls)", self.name, self.max_calls
            )
            raise ModuleBusyError(
                f"module '{self.name}' is busy: it serves {self.max_calls} calls already (max_calls); try later"
            )
        # one coroutine frame and one try for the whole call: this is every served call's hot path
        self.serving += 1
        entry: Incoming | None = None
        token = owner = None
        try:
            if method not in _ALWAYS_ALLOWED:
                if not self._announced:
                    raise ModuleStartingError(f"module '{self.name}' is still starting")
                state = getattr(self._module, "_module_state", None)
                if state == "error":
                    raise ModuleError(f"module '{self.name}' is in error state")
            acl = self._acl
            # as pyobs-core: after the state gates, before the arguments are looked at; a denied
            # caller may still ask what it is permitted to call
            if acl is not None and method != "get_permitted_methods" and acl.denies(sender, method):
                if acl.enforcing:
                    self._limited.warning("acl", "%s: denied caller '%s' calling %s() (acl)", self.name, sender, method)
                    raise ForbiddenError(f"Caller '{sender}' is not permitted to invoke '{method}'.")
                self._limited.warning(
                    "acl-log",
                    '%s: caller "%s" would be denied calling "%s" (acl mode=log, allowing).', self.name, sender, method,
                )  # fmt: skip
            try:
                # not cast again if the caller cast them against this very spec (in-process)
                cargs = args if cast is False or cast is m.spec else m.spec.cast_args(args)
            except Exception as exc:  # TypeError/ValueError naming the argument, or a dataclass refusing values
                raise mark_bad_arguments(exc) from None
            if m.timeout is not None:  # gates first, then announce the duration (pyobs-core does it the other way)
                seconds = await self._evaluate_timeout(m, cargs)
                if seconds:
                    announced = announce(seconds)
                    if announced is not None:
                        await announced
            coro: Any = m.func(*cargs, sender=sender) if m.takes_kwargs else m.func(*cargs)  # runs when awaited
            key = coro if call_id is None else call_id
            entry = (self, key, sender, method, m.cancellable, progress, coro)
            self._serving[key] = entry
            # the current call of this context, for report_progress (the transport runs each call in
            # a task, or in-process a context, of its own)
            token = CURRENT_CALL.set(entry)
            # several modules here: the callee's code runs as its module (log records, pyobs.utils.owner);
            # a scoped call runs in a copy of owner_context, where it does already
            if Publishers.count > 1 and not scoped:
                owner = current_owner.set(self._module)
            result = await coro
        except asyncio.CancelledError:
            serving = self._records.get(entry[IN_KEY]) if entry is not None else None
            if serving is None or serving.entry is not entry or not serving.cancel_requested:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()  # the cancel was ours, and it is answered (below)
            raise CallCancelledError(f"{self.name}.{method}() was cancelled by its caller {sender}") from None
        finally:
            self.serving -= 1
            if entry is not None:
                if not scoped:  # else the context ends with the call: nothing to undo
                    if owner is not None:
                        current_owner.reset(owner)
                    if token is not None:
                        CURRENT_CALL.reset(token)
                other = self._serving.pop(key, None)  # key: set with entry, above
                if other is not entry and other is not None:
                    self._serving[key] = other  # a call the sender sent under the same id: still served
                if self._records:  # some call needed a record: is it this one?
                    serving = self._records.get(key)
                    if serving is not None and serving.entry is entry:
                        del self._records[key]
                        serving.finish()  # the newest pending progress leaves before the answer
        if result is None and m.none_ok:
            return None
        return m.spec.cast_return(result)  # the caller's transport may not cast again (typed_values)

    async def cancel_call(self, sender: str, call_id: Hashable, wait: float) -> CancelOutcome:
        entry = self._serving.get(call_id)
        if entry is None or entry[IN_SENDER] != sender:
            return CancelOutcome.UNKNOWN
        if not entry[IN_CANCELLABLE]:
            log.info("%s: %s asked to cancel %s(), not cancellable: it goes on", self.name, sender, entry[IN_METHOD])
            return CancelOutcome.NOT_CANCELLABLE
        serving = self._record(entry)
        if serving is None:
            return CancelOutcome.UNKNOWN
        task = serving.task
        if task is None:
            task = serving.task = task_awaiting(entry[IN_CORO])
        if task is None or task.done():
            return CancelOutcome.UNKNOWN
        if serving.cancel_requested:  # asked again: the first cancel waits (one waiter per call)
            return CancelOutcome.RUNNING
        log.info("%s: %s() cancelled by its caller %s", self.name, entry[IN_METHOD], sender)
        serving.cancel_requested = True
        task.cancel(f"cancelled by its caller {sender}")
        wait = min(max(float(wait), 0.0), MAX_CANCEL_WAIT) if math.isfinite(wait) else MAX_CANCEL_WAIT
        done, _ = await asyncio.wait({task}, timeout=wait)
        return CancelOutcome.CANCELLED if done else CancelOutcome.RUNNING

    def _record(self, entry: Incoming) -> Serving | None:
        """The record of a call we serve, made when first needed (None: the call is over)."""
        key = entry[IN_KEY]
        serving = self._records.get(key)
        if serving is not None and serving.entry is entry:
            return serving
        if self._serving.get(key) is not entry:
            return None
        serving = self._records[key] = Serving(entry, self.progress_interval)  # bounded as _serving is
        return serving

    def report_progress(self, fraction: float | None = None, message: str = "") -> bool:
        """Report the progress of the call being served; see :func:`pyobs.comm.calls.report_progress`."""
        return report_progress(fraction, message)

    async def _evaluate_timeout(self, m: _LocalMethod, args: list[Any]) -> float:
        tmo = m.timeout
        if callable(tmo):
            kwargs = {p.name: v for p, v in zip(m.spec.params, args, strict=False)}
            value = tmo(self.module, **kwargs)
            if inspect.isawaitable(value):
                value = await value
        elif isinstance(tmo, str) and tmo.isidentifier() and hasattr(self.module, tmo):
            attr = getattr(self.module, tmo)
            value = attr() if callable(attr) else attr
            if inspect.isawaitable(value):
                value = await value
        elif isinstance(tmo, str):  # pyobs-core: an arithmetic expression of the arguments
            value = evaluate_expression(tmo, {p.name: v for p, v in zip(m.spec.params, args, strict=False)})
        else:
            value = tmo
        return float(value or 0.0)

    # ------------------------------------------------------------------ events

    async def register_event(self, event_class: type[Event], handler: EventHandler | None = None) -> None:
        """Register an event type: without a handler for sending, with one for receiving.

        As in pyobs-core, handling a type does not advertise sending it (peers would subscribe to
        events that never come); a module that also sends a type it handles registers it twice.
        Handlers are ``async def handler(event, sender) -> bool``; a handler for a base class
        receives its subclasses too.
        """
        if not (isinstance(event_class, type) and issubclass(event_class, Event)):
            raise TypeError(f"{event_class!r} is not an Event class")
        changed = False
        if handler is None and not event_class.local and event_class not in self._sends:
            self._sends.add(event_class)
            changed = True
        if handler is not None:
            if not callable(handler):
                raise TypeError(f"event handler {handler!r} is not callable")
            self._handlers.setdefault(event_class, []).append(handler)
            self._dispatch_cache.clear()
            changed = True
        if changed and self._announced:
            await self._transport.update_events({e.__name__ for e in self._sends}, self._receive_names())

    async def unregister_event(self, event_class: type[Event], handler: EventHandler | None = None) -> None:
        """Remove one handler (or all handlers, and the right to send, if ``handler`` is None)."""
        if handler is None:
            self._handlers.pop(event_class, None)
            self._sends.discard(event_class)
        else:
            handlers = self._handlers.get(event_class, [])
            if handler in handlers:
                handlers.remove(handler)
            if not handlers:
                self._handlers.pop(event_class, None)
        self._dispatch_cache.clear()
        if self._announced:
            await self._transport.update_events({e.__name__ for e in self._sends}, self._receive_names())

    def _receive_names(self) -> set[str]:
        handled = tuple(e for e in self._handlers if not e.local)
        if not handled:
            return set()
        return {n for n, e in EVENTS.items() if issubclass(e, handled) and not e.local}

    async def send_event(self, event: Event) -> None:
        """Send an event to every module that handles its type. Its type must be registered."""
        etype = type(event)
        if etype not in self._sends:
            if etype.local:
                raise ValueError(f"{etype.__name__} is generated by the comm itself and cannot be sent")
            raise ValueError(
                f"cannot send {etype.__name__}: register it first with "
                f"'await comm.register_event({etype.__name__})' so peers can subscribe to it"
            )
        if not self._opened:
            raise RuntimeError(f"cannot send {etype.__name__}: comm of '{self.name}' is not open")
        await self.outbox.send(event)

    def event_received(self, sender: str, event: Event) -> None:
        uid = event.uuid
        if uid in self._seen:
            return  # a duplicate (retried publish or a replay)
        self._seen.add(uid)
        self._seen_order.append(uid)
        if len(self._seen_order) > _DEDUP_WINDOW:
            self._seen.discard(self._seen_order.popleft())
        self._dispatch(event, sender)

    def _dispatch(self, event: Event, sender: str) -> None:
        etype = type(event)
        handlers = self._dispatch_cache.get(etype)
        if handlers is None:
            handlers = [h for cls, hs in self._handlers.items() if issubclass(etype, cls) for h in hs]
            self._dispatch_cache[etype] = handlers
        if not handlers:
            return
        running = self._handler_running
        for handler in handlers:
            if running.get(handler, 0) < self.max_handler_tasks:
                self._start_handler(handler, event, sender)
                continue
            # the handler is busy with max_handler_tasks events: this one waits (bounded)
            waiting = self._handler_waiting.get(handler)
            if waiting is None:
                waiting = self._handler_waiting[handler] = deque()
            if len(waiting) >= self.handler_queue_size:
                old, old_sender = waiting.popleft()
                self.dropped_events += 1
                self._limited.warning(
                    f"drop:{getattr(handler, '__qualname__', '?')}",
                    "%s: event handler %s is behind (%d running, %d waiting): dropped %s from %s; %d dropped so far",
                    self.name, getattr(handler, "__qualname__", repr(handler)), running.get(handler, 0),
                    len(waiting), type(old).__name__, old_sender, self.dropped_events,
                )  # fmt: skip
            waiting.append((event, sender))

    def _start_handler(self, handler: EventHandler, event: Event, sender: str) -> None:
        try:
            # each handler in its own task: nobody waits for it, a failure is logged when it ends
            task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(
                handler(event, sender), context=self.owner_context  # type: ignore[arg-type]
            )
        except Exception:  # not a coroutine function, or it raised before its first await
            self._log_handler_failure(handler, event, sender, None)
            return
        self._handler_tasks[task] = (handler, event, sender)
        self._handler_running[handler] = self._handler_running.get(handler, 0) + 1
        task.add_done_callback(self._handler_done)

    def _handler_done(self, task: asyncio.Task[Any]) -> None:
        handler, event, sender = self._handler_tasks.pop(task)
        count = self._handler_running.get(handler, 1) - 1
        if count > 0:
            self._handler_running[handler] = count
        else:
            self._handler_running.pop(handler, None)
        if not task.cancelled() and task.exception() is not None:
            self._log_handler_failure(handler, event, sender, task.exception())
        waiting = self._handler_waiting.get(handler)
        if waiting:
            next_event, next_sender = waiting.popleft()
            if not waiting:
                del self._handler_waiting[handler]
            self._start_handler(handler, next_event, next_sender)

    def _log_handler_failure(self, handler: EventHandler, event: Event, sender: str, exc: BaseException | None) -> None:
        name = getattr(handler, "__qualname__", repr(handler))
        self._limited.error(
            f"handler:{name}",
            "%s: event handler %s failed on %r from %s",
            self.name,
            name,
            event,
            sender,
            exc_info=exc if exc is not None else True,
        )

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ state

    @staticmethod
    def _state_interface(interface: type[Interface]) -> type[Interface]:
        """The interface that declares the state ``interface`` has (itself or a base)."""
        for cls in interface.__mro__:
            if isinstance(cls, type) and issubclass(cls, Interface) and cls.own_state_class() is not None:
                return cls
        raise ValueError(f"{interface.__name__} declares no state")

    async def set_state(self, interface: type[Interface], state: Any) -> None:
        """Publish the current state of one of our interfaces (peers read it without a call)."""
        decl = self._state_interface(interface)
        cls = decl.own_state_class()
        assert cls is not None
        if not isinstance(state, cls):
            raise TypeError(f"state of {decl.__name__} must be a {cls.__name__}, not {type(state).__name__}")
        self._own_state[decl.__name__] = state
        if self._opened:
            try:
                async with asyncio.timeout(self.timeout):
                    await self._transport.publish_state(decl.__name__, state)
            except TimeoutError:
                raise RemoteTimeoutError(f"{self.name}: publishing state of {decl.__name__} timed out") from None
            except NotConnected as exc:
                # kept: transports publish their own state again when the connection is back; a
                # module's loop that sets state must not die of a reconnect (a weather station!)
                log.debug("%s: state of %s kept until reconnected: %s", self.name, decl.__name__, exc)

    def get_own_state(self, interface: type[Interface]) -> Any:
        """The state this module last published for ``interface``, or None."""
        return self._own_state.get(self._state_interface(interface).__name__)

    def cached_state(self, module: str, interface: type[Interface], max_age: float | None = None) -> Any:
        """The latest state of a module's interface we have received, without subscribing (None if none,
        or older than ``max_age`` s)."""
        value = self._state_cache.get((module, self._state_interface(interface).__name__))
        if value is not None and max_age is not None:
            t = getattr(value, "time", None)
            if t is None:
                raise ValueError(f"{type(value).__name__} has no 'time' field: max_age is not supported for it")
            if _age(t) > max_age:
                return None
        return value

    def set_capabilities(self, interface: type[Interface], capabilities: Any) -> _Done:
        """Set constant capabilities of an interface (before the module goes online).

        Takes effect at once; the result may be awaited, as pyobs-core's ``await
        comm.set_capabilities(...)`` does, or ignored.
        """
        self._capabilities[interface.__name__] = capabilities
        return _DONE

    def get_own_capabilities(self, interface: type[Interface]) -> Any:
        """The capabilities this module set for ``interface``, or None."""
        return self._capabilities.get(interface.__name__)

    def missing_published_state(self, interfaces: list[type[Interface]]) -> list[type[Interface]]:
        """Those of ``interfaces`` that declare a state of their own but have none published yet."""
        return [i for i in interfaces if i.own_state_class() is not None and i.__name__ not in self._own_state]

    async def get_state(self, module: str, interface: type[Interface], max_age: float | None = None) -> Any:
        """Latest state of a module's interface; subscribes on first use (no call afterwards)."""
        decl = self._state_interface(interface)
        key = (module, decl.__name__)
        if key not in self._state_subscribed:
            await self._subscribe_state(key, decl)
        return self.cached_state(module, decl, max_age)

    async def _subscribe_state(self, key: tuple[str, str], decl: type[Interface], refresh: bool = False) -> None:
        peer = await self._peer(key[0])
        if decl not in peer.interfaces:
            raise ValueError(f"module '{key[0]}' does not implement {decl.__name__}")
        if self._opened and not self._connected:  # subscribed again when the peer is seen again
            raise NotConnected(f"cannot subscribe to state {key[1]} of '{key[0]}': '{self.name}' is not connected")
        try:
            async with asyncio.timeout(self.timeout):
                value = await self._transport.subscribe_state(key[0], key[1])
        except TimeoutError:
            raise RemoteTimeoutError(f"subscribing to state {key[1]} of '{key[0]}' timed out") from None
        self._state_subscribed.add(key)
        if value is not None and refresh:  # seen again after our link was down: handlers hear the news
            self.state_received(key[0], key[1], value)
        elif value is not None and key not in self._state_cache:
            self._store_state(key, value)

    async def _resubscribe(self, key: tuple[str, str], refresh: bool = False) -> None:
        decl = interface_by_name(key[1])
        if decl is None:
            return
        try:
            await self._subscribe_state(key, decl, refresh)
        except NotConnected:
            # the link went again meanwhile: subscribed once it is back (connection_changed)
            if key[0] in self._peers:
                self._returned.add(key[0])
        except Exception as exc:
            log.warning("%s: cannot subscribe to state %s of %s: %s", self.name, key[1], key[0], exc)

    def _store_state(self, key: tuple[str, str], value: Any) -> Any:
        iface = interface_by_name(key[1])
        cls = iface.own_state_class() if iface is not None else None
        if cls is None:
            return None
        try:
            state = cast(value, cls)
        except CastError as exc:
            log.warning("%s: dropped state %s from %s: %s", self.name, key[1], key[0], exc)
            return None
        self._state_cache[key] = state
        ev = self._state_changed.get(key)
        if ev is not None:
            ev.set()
        return state

    def state_received(self, sender: str, interface: str, value: Any) -> None:
        key = (sender, interface)
        state = self._store_state(key, value)
        if state is None:
            return
        for handler in self._state_handlers.get(key, ()):
            self._spawn(self._run_state_handler(handler, state, sender))

    async def _run_state_handler(self, handler: StateHandler, state: Any, sender: str) -> None:
        try:
            # ours take (state, sender) and are async; pyobs-core's take (state) and are sync
            result = handler(state, sender) if _takes_two(handler) else handler(state)  # type: ignore[call-arg]
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("%s: state handler %r failed on %r from %s", self.name, handler, state, sender)

    async def subscribe_state(self, module: str, interface: type[Interface], callback: StateHandler) -> None:
        """Call ``callback`` with the current state (if one is known) and then on every new state of
        ``module``'s ``interface``: ``async (state, sender)``, or pyobs-core's sync ``(state)``."""
        decl = self._state_interface(interface)
        key = (module, decl.__name__)
        self._state_handlers.setdefault(key, []).append(callback)
        if key not in self._state_subscribed:
            try:
                await self._subscribe_state(key, decl)
            except BaseException:
                self._state_handlers[key].remove(callback)
                raise
        current = self._state_cache.get(key)
        if current is not None:
            self._spawn(self._run_state_handler(callback, current, module))

    async def unsubscribe_state(self, module: str, interface: type[Interface], callback: StateHandler) -> None:
        """Stop calling ``callback`` for ``module``'s ``interface`` (the cache stays up to date)."""
        key = (module, self._state_interface(interface).__name__)
        handlers = self._state_handlers.get(key, [])
        if callback in handlers:
            handlers.remove(callback)
        if not handlers:
            self._state_handlers.pop(key, None)

    async def wait_for_state(
        self,
        module: str,
        interface: type[Interface],
        predicate: Callable[[Any], bool] | None = None,
        timeout: float = 10.0,
    ) -> Any:
        """Wait at most ``timeout`` s for a state of the module (one that satisfies ``predicate``, if
        given); a state already known counts. None on expiry."""
        decl = self._state_interface(interface)
        key = (module, decl.__name__)
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        value = await self.get_state(module, decl)
        while value is None or (predicate is not None and not predicate(value)):
            remaining = end - loop.time()
            if remaining <= 0:
                return None
            ev = self._state_changed.setdefault(key, asyncio.Event())
            ev.clear()
            try:
                await asyncio.wait_for(ev.wait(), remaining)
            except TimeoutError:
                return None
            value = self._state_cache.get(key)
        return value

    async def get_capabilities(self, module: str, interface: type[Interface]) -> Any:
        """A module's capabilities of one interface (fetched once per session of the peer)."""
        peer = await self._peer(module)
        if interface not in peer.interfaces:
            raise ValueError(f"module '{module}' does not implement {interface.__name__}")
        key = (module, interface.__name__)
        if key in self._caps_cache:
            return self._caps_cache[key]
        cls = interface.own_capabilities_class()
        try:
            async with asyncio.timeout(self.timeout):
                value = await self._transport.fetch_capabilities(module, interface.__name__)
        except TimeoutError:
            raise RemoteTimeoutError(f"fetching capabilities of '{module}' timed out") from None
        if value is not None and cls is not None:
            value = cast(value, cls)
        if value is not None and self._peers.get(module) is peer:  # constant while the peer stays online
            self._caps_cache[key] = value
            ev = self._caps_changed.pop(key, None)
            if ev is not None:
                ev.set()
        return value

    def cached_capabilities(self, module: str, interface: type[Interface]) -> Any:
        """A module's capabilities of one interface if already fetched, else None (no call)."""
        return self._caps_cache.get((module, interface.__name__))

    async def wait_for_capabilities(self, module: str, interface: type[Interface], timeout: float = 10.0) -> Any:
        """The capabilities once fetched (the fetch a new proxy starts), at most ``timeout`` s; else None."""
        key = (module, interface.__name__)
        if key in self._caps_cache:
            return self._caps_cache[key]
        ev = self._caps_changed.setdefault(key, asyncio.Event())
        try:
            await asyncio.wait_for(ev.wait(), timeout)
        except TimeoutError:
            pass
        return self._caps_cache.get(key)


class _Done:
    """An awaitable that is already complete (for APIs that are sync here and async in pyobs-core)."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield  # a generator that finishes at once


_DONE = _Done()


def _takes_two(func: Callable[..., Any]) -> bool:
    """Whether a callback accepts two positional arguments."""
    try:
        params = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):
        return True
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return True
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(p.kind in positional for p in params) >= 2


def _age(t: Any) -> float:
    if hasattr(t, "unix"):  # pyobs Time (either kind)
        ts = float(t.unix)
    else:
        ts = t.timestamp() if hasattr(t, "timestamp") else float(t)
    return time.time() - ts
