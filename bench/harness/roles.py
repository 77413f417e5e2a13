"""What workers do. Written once against the API that ours and pyobs-core 2.19.1 share:

``Module(comm=...)``, ``await module.open()`` (pyobs-core: ``startup()``, which also sets it READY),
``async with comm.proxy(name, Interface) as p``, ``comm.register_event(Event, handler)``,
``comm.send_event(event)``, ``comm.clients``, ``IPointingRaDec.move_radec(ra, dec)``,
``NewImageEvent(filename)``. ``pyobs`` is only imported inside functions, so the same file runs in
both interpreters; whichever ``pyobs`` the interpreter has is the one measured.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any

from .common import bounded, emit, now_ns, summary

Role = Callable[["Context"], Awaitable[None]]
#: the worker's command channel (set by Context), for marks that the driver acknowledges
CONTROL: Control | None = None


async def mark(name: str, edge: int, **data: Any) -> None:
    """Tell the driver a measured stretch starts (edge 0) or ends (1) and wait for its ``ack``, so
    it can read the CPU time of the other processes (callee, server) at exactly that point."""
    if CONTROL is None:
        return
    emit("mark", name=name, edge=edge, **data)
    try:
        await CONTROL.wait("ack", 5.0)
    except TimeoutError:
        pass


EVENT_PREFIX = "bench:"


class Control:
    """Commands from the driver, one JSON object a line on stdin. EOF counts as ``quit``."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._tasks: list[asyncio.Future[Any]] = []

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        protocol = asyncio.StreamReaderProtocol(reader)
        self._tasks.append(asyncio.ensure_future(loop.connect_read_pipe(lambda: protocol, sys.stdin)))
        self._tasks.append(asyncio.ensure_future(self._read(reader)))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        import json

        while True:
            line = await reader.readline()
            if not line:
                await self.queue.put({"cmd": "quit", "eof": True})
                return
            try:
                await self.queue.put(json.loads(line))
            except ValueError:
                continue

    async def wait(self, cmd: str, timeout: float) -> dict[str, Any]:
        """The next command ``cmd`` (TimeoutError after ``timeout`` s); ``quit`` always ends the wait."""
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.queue.get()
                if msg.get("cmd") == cmd or msg.get("cmd") == "quit":
                    return msg

    def poll(self, cmd: str) -> bool:
        """True if ``cmd`` (or ``quit``) is waiting in the queue (does not block)."""
        while not self.queue.empty():
            msg = self.queue.get_nowait()
            if msg.get("cmd") in (cmd, "quit"):
                return True
        return False


class Context:
    """A worker's spec and the handful of helpers that hide the two implementations' differences."""

    def __init__(self, spec: dict[str, Any], scenario: ModuleType, t_main: int) -> None:
        self.spec = spec
        self.params: dict[str, Any] = spec.get("params", {})
        self.impl: str = spec["impl"]
        self.scenario = scenario
        self.env: dict[str, Any] = spec.get("env", {})
        self.t_main = t_main
        self.control = Control()
        global CONTROL
        CONTROL = self.control

    def make_comm(self, name: str) -> Any:
        return self.scenario.make_comm(self.impl, name, self.env)

    # --- the few places where ours and pyobs-core differ

    @staticmethod
    async def start(module: Any) -> None:
        """Open a module so that peers can call it (pyobs-core needs startup() to leave STARTING)."""
        startup = getattr(module, "startup", None)
        if startup is not None:
            await startup()
        else:
            await module.open()

    @staticmethod
    async def proxy(comm: Any, name: str, interface: type) -> Any:
        async with comm.proxy(name, interface) as p:
            return p

    @staticmethod
    def classes() -> tuple[type, type]:
        """(Target, Plain): a module implementing IPointingRaDec, and a module with nothing extra."""
        from pyobs.interfaces import IPointingRaDec
        from pyobs.modules import Module

        class Target(Module, IPointingRaDec):  # type: ignore[misc]
            calls = 0

            async def move_radec(self, ra: float, dec: float, **kwargs: Any) -> None:
                Target.calls += 1

        class Plain(Module):  # type: ignore[misc]
            pass

        return Target, Plain

    def pyobs_info(self) -> dict[str, Any]:
        import pyobs

        dist = "pyobs-comm" if self.impl == "ours" else "pyobs-core"
        try:
            from importlib.metadata import version

            ver = version(dist)
        except Exception:
            ver = "?"
        return {"pyobs_file": pyobs.__file__, "dist": dist, "version": ver, "python": sys.version.split()[0]}

    def check_impl(self) -> None:
        """Refuse to measure the wrong package (both are imported as ``pyobs``)."""
        import pyobs

        in_venv = "site-packages" in (pyobs.__file__ or "")
        if (self.impl == "core") != in_venv:
            raise RuntimeError(f"impl {self.impl!r} but pyobs comes from {pyobs.__file__}")


async def wait_visible(comm: Any, names: list[str], timeout: float) -> None:
    """Wait until every name is in ``comm.clients`` (bounded)."""
    end = time.monotonic() + timeout
    while True:
        missing = [n for n in names if n not in comm.clients]
        if not missing:
            return
        if time.monotonic() > end:
            raise TimeoutError(f"not visible after {timeout} s: {missing}")
        await asyncio.sleep(0.005)


# ---------------------------------------------------------------------------- measurements


async def measure_calls(call: Callable[[], Awaitable[Any]], p: dict[str, Any]) -> dict[str, Any]:
    """Sequential round trips of ``call()``, then throughput with ``inflight`` concurrent callers."""
    for _ in bounded(p.get("warmup", 100), 10.0):
        await call()
    rtt: list[float] = []
    await mark("calls", 0)
    cpu0 = time.process_time()
    for _ in bounded(p["calls"], p.get("calls_seconds", 20.0)):
        t0 = now_ns()
        await call()
        rtt.append((now_ns() - t0) * 1e-9)
    cpu = (time.process_time() - cpu0) / max(len(rtt), 1)
    await mark("calls", 1, n=len(rtt))

    total, inflight = p["tp_calls"], p.get("inflight", 50)
    lat: list[float] = []
    started = 0
    end = time.monotonic() + p.get("tp_seconds", 10.0)

    async def worker() -> None:
        nonlocal started
        while started < total and time.monotonic() < end:
            started += 1
            t = now_ns()
            await call()
            lat.append((now_ns() - t) * 1e-9)

    t0 = now_ns()
    await asyncio.gather(*(worker() for _ in range(inflight)))
    elapsed = (now_ns() - t0) * 1e-9
    tp = {"calls": len(lat), "inflight": inflight, "seconds": elapsed, "per_s": len(lat) / elapsed, **summary(lat)}
    return {"call_rtt": summary(rtt), "throughput": tp, "cpu_per_call": {"caller": cpu}}


async def measure_unknown_proxy(comm: Any, interface: type) -> float | None:
    """How long ``proxy()`` to a module that is not online takes to fail (None if it never fails)."""
    t0 = now_ns()
    try:
        async with asyncio.timeout(8.0):
            await Context.proxy(comm, "bench-nobody", interface)
    except TimeoutError:
        return None
    except Exception:
        pass
    return (now_ns() - t0) * 1e-9


def seq_of(event: Any) -> int | None:
    name = getattr(event, "filename", "")
    if isinstance(name, str) and name.startswith(EVENT_PREFIX):
        return int(name[len(EVENT_PREFIX) :])
    return None


def event_stats(sent: dict[int, int], received: list[dict[int, int]]) -> dict[str, Any]:
    """Latencies of every delivery, and of the last delivery of each event (ns stamps in)."""
    every: list[float] = []
    last: list[float] = []
    lost = 0
    for seq, t0 in sent.items():
        times = [r[seq] for r in received if seq in r]
        lost += len(received) - len(times)
        every.extend((t - t0) * 1e-9 for t in times)
        if len(times) == len(received):
            last.append((max(times) - t0) * 1e-9)
    return {"every": summary(every), "last": summary(last), "lost": lost, "events": len(sent)}


class Receipts:
    """In-process event latency: send one event, wait until all ``k`` handlers have it, next.

    The clock starts before the event is constructed (``send_event(NewImageEvent(...))`` is what a
    module does) and stops when a handler starts. One deadline covers the whole series, so no
    per-event timer is paid inside the measurement; a series that stalls ends at that deadline.
    """

    def __init__(self, k: int) -> None:
        self.k = k
        self.received: list[dict[int, int]] = [{} for _ in range(k)]
        self.done: asyncio.Future[None] | None = None
        self.pending = 0
        self.handlers = [self._handler(r) for r in self.received]

    def _handler(self, rec: dict[int, int]) -> Callable[[Any, str], Awaitable[bool]]:
        async def handler(event: Any, sender: str) -> bool:
            t = now_ns()
            seq = event if isinstance(event, int) else seq_of(event)
            if seq is not None:
                rec[seq] = t
                self.pending -= 1
                if self.pending == 0 and self.done is not None and not self.done.done():
                    self.done.set_result(None)
            return True

        return handler

    async def run(self, send: Callable[[int], Awaitable[None]], p: dict[str, Any]) -> dict[str, Any]:
        sent: dict[int, int] = {}
        warm = p.get("event_warmup", 50)
        loop = asyncio.get_running_loop()
        seconds = p.get("events_seconds", 20.0)
        try:
            async with asyncio.timeout(seconds + 5.0):
                for i in bounded(p["events"] + warm, seconds):
                    self.done = loop.create_future()
                    self.pending = self.k
                    t0 = now_ns()
                    await send(i)
                    await self.done
                    if i >= warm:
                        sent[i] = t0
        except TimeoutError:
            pass
        return event_stats(sent, self.received)


# ---------------------------------------------------------------------------- roles


async def role_inproc(ctx: Context) -> None:
    """Everything in one process (LocalComm): calls, events, open → visible."""
    p = ctx.params
    t_import0 = now_ns()
    from pyobs.events import NewImageEvent
    from pyobs.interfaces import IPointingRaDec

    ctx.check_impl()
    Target, Plain = ctx.classes()
    out: dict[str, Any] = {"info": ctx.pyobs_info(), "import_in_worker_s": (now_ns() - t_import0) * 1e-9}

    callee, caller = Target(comm=ctx.make_comm("bench-callee")), Plain(comm=ctx.make_comm("bench-caller"))
    await ctx.start(callee)
    await ctx.start(caller)
    proxy = await ctx.proxy(caller.comm, "bench-callee", IPointingRaDec)
    out.update(await measure_calls(lambda: proxy.move_radec(1.0, 2.0), p))
    out["unknown_proxy_fail_s"] = await measure_unknown_proxy(caller.comm, IPointingRaDec)

    # events, sequential: send one, wait until every subscriber has it, next
    publisher = Plain(comm=ctx.make_comm("bench-pub"))
    await ctx.start(publisher)
    await publisher.comm.register_event(NewImageEvent)
    for k in p["subscribers"]:
        subs = [Plain(comm=ctx.make_comm(f"bench-sub{k}-{i}")) for i in range(k)]
        rec = Receipts(k)
        for i, sub in enumerate(subs):
            await ctx.start(sub)
            await sub.comm.register_event(NewImageEvent, rec.handlers[i])
        await wait_visible(publisher.comm, [s.comm.name for s in subs], 5.0)

        async def send(i: int) -> None:
            await publisher.comm.send_event(NewImageEvent(f"{EVENT_PREFIX}{i}"))

        out[f"event_{k}"] = await rec.run(send, p)
        for i, sub in enumerate(subs):
            await sub.comm.unregister_event(NewImageEvent, rec.handlers[i])
            await sub.close()

    # open() → visible to a peer that is already online
    opens, after, total = [], [], []
    for r in bounded(p["visible_repeats"], 10.0):
        m = Plain(comm=ctx.make_comm(f"bench-new{r}"))
        t0 = now_ns()
        await ctx.start(m)
        t1 = now_ns()
        for _ in bounded(100_000, 2.0):
            if m.comm.name in caller.comm.clients:
                break
            await asyncio.sleep(0)
        t2 = now_ns()
        opens.append((t1 - t0) * 1e-9)
        after.append((t2 - t1) * 1e-9)
        total.append((t2 - t0) * 1e-9)
        await m.close()
    out["open"] = summary(opens)
    out["visible_after_open"] = summary(after)
    out["open_to_visible"] = summary(total)

    for m in (publisher, caller, callee):
        await m.close()
    emit("result", **out)


async def _serve_until_quit(ctx: Context, module: Any, extra: dict[str, Any] | None = None) -> None:
    emit("ready", t=now_ns(), t_main=ctx.t_main, **(extra or {}))
    await ctx.control.wait("quit", ctx.spec.get("max_seconds", 120.0))
    await module.close()


async def role_callee(ctx: Context) -> None:
    ctx.check_impl()
    Target, _ = ctx.classes()
    module = Target(comm=ctx.make_comm(ctx.params["name"]))
    await ctx.start(module)
    await _serve_until_quit(ctx, module, {"info": ctx.pyobs_info()})
    emit("done", calls=getattr(Target, "calls", 0))


async def role_caller(ctx: Context) -> None:
    from pyobs.interfaces import IPointingRaDec

    ctx.check_impl()
    _, Plain = ctx.classes()
    p = ctx.params
    module = Plain(comm=ctx.make_comm(p["name"]))
    await ctx.start(module)
    await wait_visible(module.comm, [p["target"]], 30.0)
    proxy = await ctx.proxy(module.comm, p["target"], IPointingRaDec)
    out = await measure_calls(lambda: proxy.move_radec(1.0, 2.0), p)
    out["info"] = ctx.pyobs_info()
    await module.close()
    emit("result", **out)


class SubscriberLog:
    """A subscriber's side of the cross-process event protocol (also used by the floors):
    ``ready`` once subscribed, ``warm`` on the first warm-up event (seq < 0), and on ``quit``
    the arrival time of every numbered event."""

    def __init__(self) -> None:
        self.received: dict[int, int] = {}
        self.warm = False

    def got(self, seq: int | None) -> None:
        t = now_ns()
        if seq is None:
            return
        if seq >= 0:
            self.received[seq] = t
        elif not self.warm:
            self.warm = True
            emit("warm")

    async def serve(self, ctx: Context) -> None:
        emit("ready", t=now_ns())
        await ctx.control.wait("quit", ctx.spec.get("max_seconds", 120.0))
        emit("result", received=sorted(self.received.items()))


async def publish_series(ctx: Context, send: Callable[[int], Awaitable[None]]) -> None:
    """A publisher's side: warm-up events (seq -1) until the driver says ``go`` (every subscriber
    got one), then ``events`` numbered events ``interval`` s apart; reports when each was sent."""
    p = ctx.params
    for _ in bounded(600, 30.0):
        await send(-1)
        await asyncio.sleep(0.05)
        if ctx.control.poll("go"):
            break
    else:
        raise TimeoutError("no 'go' from the driver: subscribers never got a warm-up event")
    await asyncio.sleep(0.2)  # let stragglers of the warm-up drain
    sent: dict[int, int] = {}
    interval = p["interval"]
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i in bounded(p["events"], p.get("events_seconds", 30.0)):
        delay = start + i * interval - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        sent[i] = now_ns()  # before the event is built: send_event(NewImageEvent(...)) is the cost
        await send(i)
    await asyncio.sleep(p.get("drain", 0.5))
    emit("result", sent=sorted(sent.items()))


async def role_subscriber(ctx: Context) -> None:
    from pyobs.events import NewImageEvent

    ctx.check_impl()
    _, Plain = ctx.classes()
    module = Plain(comm=ctx.make_comm(ctx.params["name"]))
    log = SubscriberLog()

    async def handler(event: Any, sender: str) -> bool:
        log.got(seq_of(event))
        return True

    await ctx.start(module)  # pyobs-core's XmppComm cannot register events before it is open
    await module.comm.register_event(NewImageEvent, handler)
    await log.serve(ctx)
    await module.close()


async def role_publisher(ctx: Context) -> None:
    from pyobs.events import NewImageEvent

    ctx.check_impl()
    _, Plain = ctx.classes()
    module = Plain(comm=ctx.make_comm(ctx.params["name"]))
    await ctx.start(module)
    await module.comm.register_event(NewImageEvent)
    await wait_visible(module.comm, ctx.params["subscribers"], 30.0)

    async def send(i: int) -> None:
        await module.comm.send_event(NewImageEvent(f"{EVENT_PREFIX}{i}"))

    await publish_series(ctx, send)
    await module.close()


async def role_observer(ctx: Context) -> None:
    """Reports the moment each new module becomes visible (handler or 2 ms polling, first wins)."""
    from pyobs.events import ModuleOpenedEvent
    from pyobs.interfaces import IPointingRaDec

    ctx.check_impl()
    _, Plain = ctx.classes()
    module = Plain(comm=ctx.make_comm(ctx.params["name"]))
    seen: set[str] = set()

    def mark(name: str, how: str) -> None:
        t = now_ns()
        if name not in seen and name.startswith("bench-"):
            seen.add(name)
            emit("seen", name=name, t=t, how=how)

    async def opened(event: Any, sender: str) -> bool:
        mark(getattr(event, "module", None) or sender, "event")
        return True

    await ctx.start(module)
    await module.comm.register_event(ModuleOpenedEvent, opened)
    seen.update(module.comm.clients)
    unknown = await measure_unknown_proxy(module.comm, IPointingRaDec)
    emit("ready", t=now_ns(), unknown_proxy_fail_s=unknown)
    quit_task = asyncio.ensure_future(ctx.control.wait("quit", ctx.spec.get("max_seconds", 120.0)))
    while not quit_task.done():
        for name in module.comm.clients:
            mark(name, "poll")
        await asyncio.sleep(0.002)
    await module.close()


async def role_starter(ctx: Context) -> None:
    """Process start → ready: imports, builds a module, opens it, says when."""
    t0 = now_ns()
    import pyobs.events
    import pyobs.modules  # noqa: F401

    importlib_mod = __import__("importlib")
    importlib_mod.import_module(ctx.scenario.IMPORT[ctx.impl])
    t_imported = now_ns()
    ctx.check_impl()
    _, Plain = ctx.classes()
    module = Plain(comm=ctx.make_comm(ctx.params["name"]))
    t_open0 = now_ns()
    await ctx.start(module)
    t_open1 = now_ns()
    emit("ready", t=t_open1, t_main=ctx.t_main, t_import0=t0, t_imported=t_imported, t_open0=t_open0)
    await ctx.control.wait("quit", ctx.spec.get("max_seconds", 120.0))
    await module.close()


async def role_import(ctx: Context) -> None:
    """Import time of the transport module in this fresh interpreter."""
    import importlib

    t0 = time.perf_counter()
    importlib.import_module(ctx.scenario.IMPORT[ctx.impl])
    emit("result", seconds=time.perf_counter() - t0)


ROLES: dict[str, Role] = {
    "inproc": role_inproc,
    "callee": role_callee,
    "caller": role_caller,
    "subscriber": role_subscriber,
    "publisher": role_publisher,
    "observer": role_observer,
    "starter": role_starter,
    "import": role_import,
}
