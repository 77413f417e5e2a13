"""What the operator tools see of a bus: the modules, their published state, events and logs.

A :class:`Fleet` listens through a :class:`~pyobs.comm.Comm` (a module's, or a module-less tool's)
and keeps bounded histories. ``pyobs-comm`` and the web dashboard both read the bus through it, so
both show the same thing the same way.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import json
import logging
import time
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyobs.comm import Comm
from pyobs.comm.calls import NamedCall
from pyobs.comm.comm import deadline_observer
from pyobs.events import Event, LogEvent, ModuleClosedEvent, ModuleOpenedEvent
from pyobs.interfaces.interface import Interface, MethodSpec, interface_by_name, methods_of
from pyobs.utils.casting import CastError, to_plain
from pyobs.utils.enums import ModuleState

log = logging.getLogger(__name__)

#: log levels by name, to filter LogEvents
LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}

Listener = Callable[[str, dict[str, Any]], None]


def type_label(tp: Any) -> str:
    """A short, readable name of an annotation: ``float``, ``list[int]``, ``MotionStatus | None``."""
    if tp is None or tp is type(None):
        return "None"
    if tp is Any:
        return "Any"
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return type_label(typing.get_args(tp)[0])
    if origin is not None:
        args = typing.get_args(tp)
        if origin in (typing.Union, types.UnionType):
            return " | ".join(type_label(a) for a in args)
        if origin is typing.Literal:
            return " | ".join(repr(a) for a in args)
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(type_label(a) for a in args)}]" if args else name
    return getattr(tp, "__name__", str(tp))


def describe_method(spec: MethodSpec) -> dict[str, Any]:
    """A method's signature as JSON-able data (what the dashboard builds its forms from)."""
    params = []
    for p in spec.params:
        entry: dict[str, Any] = {"name": p.name, "type": type_label(p.annotation), "required": p.required}
        if not p.required:
            with contextlib.suppress(CastError):
                entry["default"] = to_plain(p.default)
        choices = _choices(p.annotation)
        if choices:
            entry["choices"] = choices
        params.append(entry)
    return {
        "name": spec.name,
        "interface": spec.interface.__name__,
        "params": params,
        "returns": type_label(spec.returns),
        "signature": signature(spec),
        "doc": (spec.interface.__dict__[spec.name].__doc__ or "").strip().split("\n")[0],
    }


def _choices(tp: Any) -> list[Any]:
    """Allowed values of an enum (or Optional enum) parameter, for a drop-down."""
    for arg in (tp, *typing.get_args(tp)):
        if isinstance(arg, type) and issubclass(arg, enum.Enum):
            return [m.value for m in arg]
    return []


def signature(spec: MethodSpec) -> str:
    """``move_radec(ra: float, dec: float) -> None``"""
    parts = []
    for p in spec.params:
        text = f"{p.name}: {type_label(p.annotation)}"
        if not p.required:
            text += f" = {p.default!r}"
        parts.append(text)
    return f"{spec.name}({', '.join(parts)}) -> {type_label(spec.returns)}"


def parse_value(text: str) -> Any:
    """A value typed by a person: JSON where it parses (``12.5``, ``true``, ``[1, 2]``, ``null``),
    else the text itself (``parked``, ``M57``); the method's declaration casts it afterwards."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_arguments(spec: MethodSpec, tokens: list[str]) -> list[Any]:
    """``["10", "dec=20"]`` → the full positional argument list, cast against ``spec``.

    Raises TypeError/ValueError naming the parameter and the expected signature.
    """
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for token in tokens:
        name, sep, value = token.partition("=")
        if sep and name.isidentifier():
            kwargs[name] = parse_value(value)
        elif kwargs:
            raise TypeError(f"positional argument {token!r} after keyword arguments; expected {signature(spec)}")
        else:
            args.append(parse_value(token))
    return bind(spec, args, kwargs)


def bind(spec: MethodSpec, args: list[Any], kwargs: dict[str, Any]) -> list[Any]:
    try:
        return spec.bind(tuple(args), kwargs)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{exc}; expected {signature(spec)}") from None


def plain(value: Any) -> Any:
    """JSON-able form of a typed value (dataclasses as dicts, enums as values, times as ISO)."""
    try:
        return to_plain(value)
    except CastError:
        return repr(value)


def event_record(event: Event, sender: str) -> dict[str, Any]:
    return {"time": event.timestamp, "sender": sender, "type": event.type, "data": plain(event.data)}


@dataclass
class ModuleInfo:
    name: str
    label: str
    state: str
    message: str
    interfaces: list[str]
    methods: dict[str, MethodSpec] = field(default_factory=dict)

    def to_dict(self, with_methods: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "label": self.label,
            "state": self.state,
            "message": self.message,
            "interfaces": self.interfaces,
        }
        if with_methods:
            out["methods"] = [describe_method(m) for m in self.methods.values()]
        return out


class Fleet:
    """Follows every module on a bus: who is online, their state, events and log lines.

    Args:
        comm: the comm to listen through (opened by the caller).
        history: how many events and log lines are kept (older ones are dropped).
        state_history: how many values of each module's weather state are kept (for plots).
    """

    def __init__(self, comm: Comm, history: int = 500, state_history: int = 300) -> None:
        if history < 1 or state_history < 1:
            raise ValueError("history and state_history must be positive")
        self.comm = comm
        self.events: collections.deque[dict[str, Any]] = collections.deque(maxlen=history)
        self.logs: collections.deque[dict[str, Any]] = collections.deque(maxlen=history)
        #: latest state per (module, interface name), plain
        self.states: dict[tuple[str, str], dict[str, Any]] = {}
        #: recent values of states worth plotting (weather), per (module, interface name)
        self.series: dict[tuple[str, str], collections.deque[dict[str, Any]]] = {}
        self._state_history = state_history
        self._subscribed: set[tuple[str, str]] = set()
        self._presence: set[str] = set()
        self._listeners: list[Listener] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._started = False
        self._follow_states = True
        #: set whenever a module comes or goes
        self._fleet_changed = asyncio.Event()

    # ---------------------------------------------------------------- listening

    def add_listener(self, listener: Listener) -> None:
        """``listener(kind, record)`` for kind ``fleet`` (a module came or went), ``presence`` (its
        lifecycle state changed), ``state``, ``event``, ``log``; must not block."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def _emit(self, kind: str, record: dict[str, Any]) -> None:
        for listener in list(self._listeners):
            try:
                listener(kind, record)
            except Exception:
                log.exception("fleet listener %r failed", listener)

    async def start(self, states: bool = True) -> None:
        """Listen to every event; with ``states``, follow the published state of every module."""
        if self._started:
            return
        self._started = True
        self._follow_states = states
        await self.comm.register_event(Event, self._on_event)  # receives only: sends nothing
        if states:
            await asyncio.gather(*(self._follow(name) for name in self.comm.clients))

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._listeners.clear()

    async def _on_event(self, event: Event, sender: str) -> bool:
        if isinstance(event, ModuleOpenedEvent | ModuleClosedEvent):
            self._fleet_changed.set()
            name = event.module or sender
            if isinstance(event, ModuleClosedEvent):  # its last state is no news any more
                for key in [k for k in self.states if k[0] == name]:
                    del self.states[key]
                    self.series.pop(key, None)
            self._emit("fleet", {"module": name, "online": isinstance(event, ModuleOpenedEvent)})
            if isinstance(event, ModuleOpenedEvent) and self._follow_states:
                self._spawn(self._follow(name))
            return True
        record = event_record(event, sender)
        if isinstance(event, LogEvent):
            record = {
                "time": event.time,
                "sender": event.sender or sender,
                "level": event.level,
                "message": event.message,
                "where": f"{event.filename.rsplit('/', 1)[-1]}:{event.line}",
            }
            self.logs.append(record)
            self._emit("log", record)
        else:
            self.events.append(record)
            self._emit("event", record)
        return True

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _follow(self, module: str) -> None:
        """Follow the module's lifecycle state and every state it publishes (once per module and
        key: the comm resubscribes itself when the module comes back) and take the current values."""
        try:
            interfaces = await self.comm.get_interfaces(module)
        except ValueError:
            return
        if module not in self._presence:
            self._presence.add(module)
            await self.comm.subscribe_presence(module, self._presence_handler(module))
        for iface in interfaces:
            if iface.own_state_class() is None:
                continue
            key = (module, iface.__name__)
            try:
                if key not in self._subscribed:
                    # once per key, even if this first subscription fails: the handler is registered
                    # then, and the comm subscribes again when the module comes back
                    self._subscribed.add(key)
                    await self.comm.subscribe_state(module, iface, self._state_handler(iface.__name__))
                value = await self.comm.get_state(module, iface)
            except Exception as exc:  # offline again, or it does not answer: shown as missing
                log.info("cannot follow state %s of %s: %s", iface.__name__, module, exc)
                continue
            if value is not None:
                self._store(module, iface.__name__, value)

    def _presence_handler(self, module: str) -> Callable[[ModuleState, str], None]:
        def on_presence(state: ModuleState, error: str) -> None:
            if state != ModuleState.CLOSED:  # closing is a ModuleClosedEvent ("fleet")
                self._emit("presence", {"module": module, "state": str(state), "message": error})

        return on_presence

    def _state_handler(self, interface: str) -> Callable[[Any, str], Any]:
        async def on_state(state: Any, sender: str) -> None:
            self._store(sender, interface, state)

        return on_state

    def _store(self, module: str, interface: str, value: Any) -> None:
        record = {"module": module, "interface": interface, "value": plain(value), "received": time.time()}
        key = (module, interface)
        self.states[key] = record
        if interface == "IWeather":
            series = self.series.get(key)
            if series is None:
                series = self.series[key] = collections.deque(maxlen=self._state_history)
            series.append(record)
        self._emit("state", record)

    # ---------------------------------------------------------------- reading

    def modules(self) -> list[ModuleInfo]:
        out = []
        for name in sorted(self.comm.clients):
            peer = self.comm.peer(name)
            if peer is None:
                continue
            out.append(
                ModuleInfo(
                    name=name,
                    label=peer.label or name,
                    state=peer.state,
                    message=peer.error,
                    interfaces=sorted(i.__name__ for i in peer.interfaces),
                    methods=methods_of(peer.interfaces),
                )
            )
        return out

    def module(self, name: str) -> ModuleInfo:
        for info in self.modules():
            if info.name == name:
                return info
        online = ", ".join(sorted(self.comm.clients)) or "none"
        raise ValueError(f"module '{name}' is not online (online: {online})")

    def method(self, module: str, method: str) -> MethodSpec:
        info = self.module(module)
        spec = info.methods.get(method)
        if spec is None:
            raise ValueError(
                f"module '{module}' has no method '{method}' (it has: {', '.join(sorted(info.methods)) or 'none'})"
            )
        return spec

    async def call(
        self,
        module: str,
        method: str,
        args: list[Any],
        on_deadline: Callable[[float], None] | None = None,
        on_progress: Callable[[float | None, str], None] | None = None,
    ) -> Any:
        """Call ``module.method`` with a full positional list; ``on_deadline(seconds)`` is told the
        deadline when the callee announces a duration, ``on_progress(fraction, message)`` every
        progress notice the callee reports. Cancelling the caller cancels the call."""
        spec = self.method(module, method)
        call = NamedCall(self.comm, module, spec.name, tuple(args), {})
        if on_progress is not None:
            call.on_progress(lambda p: on_progress(p.fraction, p.message))
        token = deadline_observer.set(on_deadline)
        try:
            return await call
        finally:
            deadline_observer.reset(token)

    async def wait_for(self, modules: list[str], timeout: float) -> list[str]:
        """Wait until all ``modules`` are online, at most ``timeout`` s; returns those still missing.
        Needs :meth:`start` (it learns of arrivals from ModuleOpenedEvent)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            self._fleet_changed.clear()
            for name in modules:  # a peer the transport is still discovering is waited for (bounded)
                if name not in self.comm.clients:
                    with contextlib.suppress(ValueError, TimeoutError):
                        await asyncio.wait_for(self.comm.get_interfaces(name), max(0.01, end - loop.time()))
            missing = [m for m in modules if m not in self.comm.clients]
            remaining = end - loop.time()
            if not missing or remaining <= 0:
                return missing
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._fleet_changed.wait(), remaining)


def interface_named(name: str) -> type[Interface]:
    iface = interface_by_name(name)
    if iface is None:
        raise ValueError(f"unknown interface '{name}'")
    return iface
