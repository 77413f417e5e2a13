"""pyobs-core-side modules of the interop tests, and a remote control for the test process.

Every module here is a pyobs-core ``Module``. A ``Probe`` reads JSON commands (one per line) on stdin
and prints JSON lines starting with ``@@PEER `` on stdout: what it observed (events, state updates) and
the results of the commands (calls through pyobs-core proxies, state reads, events to send). Values are
printed in a tagged JSON form, so the test sees the exact Python types pyobs-core produced:

    {"tuple": [...]}, {"enum": "Color", "value": "red"}, {"dataclass": "Point", "fields": {...}},
    {"dict": {...}}, {"time": "2026-...T..."}; lists, str, int, float, bool and null as themselves.

Commands (``id`` is echoed in the reply ``{"kind": "reply", "id": …, "ok": …, "result"|"error": …}``):

    {"cmd": "ping"}
    {"cmd": "clients"} / {"cmd": "clients_with_interface", "interface": "ICamera"}
    {"cmd": "call", "module": m, "interface": I, "method": f, "args": [...], "kwargs": {...}}
    {"cmd": "get_state", "module": m, "interface": I}   # through a proxy (Interface.get_state)
    {"cmd": "wait_for_state", "module": m, "interface": I, "timeout": s}
    {"cmd": "subscribe_state", "module": m, "interface": I}   # later: {"kind": "state", ...} lines
    {"cmd": "set_state", "interface": I, "state": <tagged dataclass>}   # publish own state
    {"cmd": "send_event", "event": E, "kwargs": {...}}
    {"cmd": "get_capabilities", "module": m, "interface": I}
    {"cmd": "register_event", "event": E}      # report events of type E too, from now on
    {"cmd": "client_state", "module": m}        # [state, error text] from m's presence, or null
    {"cmd": "set_module_state", "state": "error", "error": text}   # this module's own state
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import json
import sys
import threading
import time
from typing import Any

import pyobs.events
import pyobs.interfaces
import pyobs.utils.enums
from pyobs.events import Event
from pyobs.interfaces import (
    FitsHeaderEntry,
    FocuserState,
    IFitsHeaderBefore,
    IFocuser,
    IMotion,
    IPointingRaDec,
    IReady,
    ITelescope,
    MotionState,
    RaDecState,
    ReadyState,
)
from pyobs.modules import Module, timeout
from pyobs.utils.enums import ModuleState, MotionStatus
from pyobs.utils.time import Time

from . import kitchen
from .kitchen import FlapMoved, IKitchenSink, KitchenSinkMixin

PREFIX = "@@PEER "


def emit(record: dict[str, Any]) -> None:
    sys.stdout.write(PREFIX + json.dumps(record) + "\n")
    sys.stdout.flush()


def _lookup(name: str) -> Any:
    for ns in (kitchen, pyobs.interfaces, pyobs.events, pyobs.utils.enums):
        obj = getattr(ns, name, None)
        if obj is not None:
            return obj
    raise KeyError(f"unknown name {name}")


def encode(value: Any) -> Any:
    """Python value -> tagged JSON (keeps tuple/enum/dataclass distinct)."""
    if value is None or (isinstance(value, (bool, int, float, str)) and not isinstance(value, enum.Enum)):
        return value
    if isinstance(value, enum.Enum):
        return {"enum": type(value).__name__, "value": value.value}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            "dataclass": type(value).__name__,
            "fields": {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)},
        }
    if isinstance(value, tuple):
        return {"tuple": [encode(v) for v in value]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {"dict": {str(k): encode(v) for k, v in value.items()}}
    if isinstance(value, Time):
        return {"time": value.isot}
    return {"repr": repr(value), "type": type(value).__name__}


def decode(value: Any) -> Any:
    """Tagged JSON -> pyobs-core-side Python value."""
    if isinstance(value, list):
        return [decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "tuple" in value:
        return tuple(decode(v) for v in value["tuple"])
    if "enum" in value:
        return _lookup(value["enum"])(value["value"])
    if "dataclass" in value:
        return _lookup(value["dataclass"])(**{k: decode(v) for k, v in value["fields"].items()})
    if "dict" in value:
        return {k: decode(v) for k, v in value["dict"].items()}
    if "time" in value:
        return Time(value["time"])
    raise ValueError(f"cannot decode {value!r}")


def describe_exception(exc: BaseException) -> dict[str, Any]:
    cls = type(exc)
    return {
        "type": f"{cls.__module__}.{cls.__qualname__}",
        "message": str(exc),
        "original_type": getattr(exc, "original_type", None),
        "mro": [f"{c.__module__}.{c.__qualname__}" for c in cls.__mro__],
    }


class Probe(Module):
    """A pyobs-core module remote-controlled by the test through stdin/stdout."""

    #: events we receive and report
    WATCH: tuple[type[Event], ...] = (
        pyobs.events.NewImageEvent,
        pyobs.events.ExposureStatusChangedEvent,
        pyobs.events.MotionStatusChangedEvent,
        pyobs.events.ModuleOpenedEvent,
        pyobs.events.ModuleClosedEvent,
        pyobs.events.TestEvent,
        FlapMoved,
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._probe_tasks: set[asyncio.Task[Any]] = set()

    async def open(self) -> None:
        await super().open()
        for ev in self.WATCH:
            await self.comm.register_event(ev, self._on_event)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str] = asyncio.Queue()

        def read_stdin() -> None:  # a daemon thread: works for pipes, files and ttys alike
            for line in sys.stdin:
                loop.call_soon_threadsafe(queue.put_nowait, line)
            # EOF: the test process is gone (or done with us): do not linger
            loop.call_soon_threadsafe(self.quit)

        threading.Thread(target=read_stdin, name="probe-stdin", daemon=True).start()
        self._spawn(self._read_commands(queue))
        emit({"kind": "opened", "name": self.comm.name})

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._probe_tasks.add(task)
        task.add_done_callback(self._probe_tasks.discard)

    async def _on_event(self, event: Event, sender: str) -> bool:
        data = event.to_json().get("data", {})
        emit(
            {
                "kind": "event",
                "type": type(event).__name__,
                "sender": sender,
                "data": encode(data),
                "uuid": getattr(event, "uuid", None),
            }
        )
        return True

    async def _read_commands(self, queue: asyncio.Queue[str]) -> None:
        while True:
            line = await queue.get()
            try:
                command = json.loads(line)
            except ValueError:
                emit({"kind": "reply", "id": None, "ok": False, "error": {"type": "bad json"}})
                continue
            self._spawn(self._run(command))

    async def _run(self, command: dict[str, Any]) -> None:
        start = time.monotonic()
        try:
            result = await self._execute(command)
        except Exception as exc:
            emit(
                {
                    "kind": "reply",
                    "id": command.get("id"),
                    "ok": False,
                    "error": describe_exception(exc),
                    "elapsed": time.monotonic() - start,
                }
            )
        else:
            emit(
                {
                    "kind": "reply",
                    "id": command.get("id"),
                    "ok": True,
                    "result": encode(result),
                    "elapsed": time.monotonic() - start,
                }
            )

    async def _execute(self, c: dict[str, Any]) -> Any:
        cmd = c["cmd"]
        if cmd == "ping":
            return self.comm.name
        if cmd == "clients":
            return sorted(self.comm.clients)
        if cmd == "clients_with_interface":
            return sorted(await self.comm.clients_with_interface(_lookup(c["interface"])))
        if cmd == "call":
            args = [decode(a) for a in c.get("args", [])]
            kwargs = {k: decode(v) for k, v in c.get("kwargs", {}).items()}
            async with self.proxy(c["module"], _lookup(c["interface"])) as proxy:
                return await getattr(proxy, c["method"])(*args, **kwargs)
        if cmd == "get_state":
            async with self.proxy(c["module"], _lookup(c["interface"])) as proxy:
                return proxy.get_state(_lookup(c["interface"]))
        if cmd == "wait_for_state":
            async with self.proxy(c["module"], _lookup(c["interface"])) as proxy:
                return await proxy.wait_for_state(_lookup(c["interface"]), timeout=float(c.get("timeout", 10)))
        if cmd == "get_capabilities":
            async with self.proxy(c["module"], _lookup(c["interface"])) as proxy:
                return proxy.get_capabilities(_lookup(c["interface"]))
        if cmd == "subscribe_state":
            module, iface = c["module"], c["interface"]

            def callback(state: Any) -> None:
                emit({"kind": "state", "module": module, "interface": iface, "state": encode(state)})

            await self.comm.subscribe_state(module, _lookup(iface), callback)
            return True
        if cmd == "set_state":
            await self.comm.set_state(_lookup(c["interface"]), decode(c["state"]))
            return True
        if cmd == "register_event":  # receive (and report) one more event type from now on
            await self.comm.register_event(_lookup(c["event"]), self._on_event)
            return True
        if cmd == "client_state":  # the presence-derived state pyobs-core keeps for a peer
            state = self.comm.get_client_state(c["module"])
            return None if state is None else [getattr(state[0], "value", str(state[0])), state[1]]
        if cmd == "set_module_state":  # e.g. {"state": "error", "error": "broken"}
            await self.set_state(ModuleState(c["state"]), c.get("error"))
            return True
        if cmd == "send_event":
            event_class = _lookup(c["event"])
            await self.comm.send_event(event_class(**{k: decode(v) for k, v in c.get("kwargs", {}).items()}))
            return True
        raise ValueError(f"unknown command {cmd}")


class CoreSink(Probe, KitchenSinkMixin, IKitchenSink):
    """pyobs-core module implementing the user-defined IKitchenSink, remote-controlled."""

    async def open(self) -> None:
        await super().open()
        # with pyobs-core, registering with a handler only subscribes; registering without one
        # advertises the event as sent (role="send"), which receivers need to subscribe to us
        await self.comm.register_event(FlapMoved)
        await self.comm.register_event(pyobs.events.TestEvent)


class CoreObserver(Probe):
    """A pyobs-core module that only watches: our simulated modules' logs, images, weather and motion."""

    WATCH = (
        pyobs.events.LogEvent,
        pyobs.events.NewImageEvent,
        pyobs.events.BadWeatherEvent,
        pyobs.events.MotionStatusChangedEvent,
    )


class CoreTelescope(Probe, ITelescope, IPointingRaDec, IFocuser, IFitsHeaderBefore):
    """A pyobs-core telescope with focuser that moves instantly and publishes its state like pyobs-core's
    own devices do (IMotion, IReady, IPointingRaDec, IFocuser). ``init`` announces a long timeout."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._status = MotionStatus.PARKED
        self._radec = (0.0, 0.0)
        self._focus = 42.0

    async def open(self) -> None:
        await super().open()
        await self.comm.register_event(pyobs.events.MotionStatusChangedEvent)
        await self._publish()

    async def _publish(self) -> None:
        await self.comm.set_state(IMotion, MotionState(status=self._status, devices=[]))
        await self.comm.set_state(IReady, ReadyState(ready=self._status != MotionStatus.PARKED))
        await self.comm.set_state(IPointingRaDec, RaDecState(ra=self._radec[0], dec=self._radec[1]))
        await self.comm.set_state(IFocuser, FocuserState(focus=self._focus, focus_offset=0.0))

    async def _set_status(self, status: MotionStatus) -> None:
        self._status = status
        await self._publish()
        await self.comm.send_event(
            pyobs.events.MotionStatusChangedEvent(status=status, interfaces={"ITelescope": status})
        )

    @timeout(20)
    async def init(self, **kwargs: Any) -> None:
        await asyncio.sleep(0.5)
        await self._set_status(MotionStatus.IDLE)

    async def park(self, **kwargs: Any) -> None:
        await self._set_status(MotionStatus.PARKED)

    async def stop_motion(self, device: str | None = None, **kwargs: Any) -> None:
        await self._set_status(MotionStatus.IDLE)

    async def move_radec(self, ra: float, dec: float, **kwargs: Any) -> None:
        self._radec = (ra, dec)
        await self._set_status(MotionStatus.TRACKING)

    async def set_focus(self, focus: float, **kwargs: Any) -> None:
        self._focus = focus
        await self._publish()

    async def set_focus_offset(self, offset: float, **kwargs: Any) -> None:
        await self._publish()

    async def get_fits_header_before(
        self, namespaces: list[str] | None = None, **kwargs: Any
    ) -> dict[str, FitsHeaderEntry]:
        """Cards of every value type; ``namespaces`` echoed in a card to show what arrived."""
        return {
            "TEL-FOCU": FitsHeaderEntry(self._focus, "focus [mm]"),
            "TEL-RA": FitsHeaderEntry(self._radec[0], "right ascension [deg]"),
            "FRAMENUM": FitsHeaderEntry(7, "an int"),
            "OBJECT": FitsHeaderEntry("M42", "a string"),
            "FILTER": FitsHeaderEntry(None, "no value"),
            "NS": FitsHeaderEntry(",".join(namespaces) if namespaces is not None else "<none>", "namespaces"),
        }
