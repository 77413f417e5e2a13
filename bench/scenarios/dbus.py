"""DbusComm, one process per module, on a private dbus-daemon. Floor: a raw dbus-fast method call
(low-level message handler on the callee, ``bus.call(Message)`` on the caller) on the same bus."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import json
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.common import emit, now_ns
from harness.roles import Context, SubscriberLog, measure_calls, publish_series

if TYPE_CHECKING:
    from harness.driver import Run

NAME = "dbus"
TITLE = "DbusComm (one process per module, private dbus-daemon)"
IN_PROCESS = False
IMPLS = ("ours",)  # pyobs-core 2.19.1 has no D-Bus transport any more
IMPORT = {"ours": "pyobs.comm.dbus"}
#: worker roles of the floor's event measurement (the driver runs them like ours)
FLOOR_EVENT_ROLES = {"signal": ("floor_subscriber", "floor_publisher")}
FLOOR = (
    "dbus-fast on the same private dbus-daemon: method call (dd → ()) answered by a low-level handler; "
    "events: a signal (s) to subscribers with a match rule"
)
NOTE = "pyobs-core 2.19.1 has no D-Bus transport (removed in 2026), so there is no pyobs-core column."
EVENT_INTERVAL = 0.01
GOALS = [
    ("call_rtt.p50", "vs_floor<=", 1.5, "issue 5: D-Bus call round trip p50 within 1.5x of raw dbus-fast"),
]
FLOOR_NAME = "org.pyobs.benchfloor"
FLOOR_PATH = "/org/pyobs/benchfloor"
FLOOR_IFACE = "org.pyobs.BenchFloor"


def available(impl: str) -> str | None:
    if shutil.which("dbus-daemon") is None:
        return "dbus-daemon is not installed"
    try:
        if importlib.util.find_spec("pyobs.comm.dbus.comm") is None:
            return "pyobs.comm.dbus does not exist yet"
        importlib.import_module("pyobs.comm.dbus")
    except Exception as exc:
        return f"pyobs.comm.dbus does not import: {exc}"
    return None


@contextlib.asynccontextmanager
async def environment(run: Run) -> AsyncIterator[dict[str, Any]]:
    """A private dbus-daemon on a unix socket in a temporary directory; killed afterwards."""
    from pyobs.testing.dbus_daemon import DbusDaemon

    directory = Path(tempfile.mkdtemp(prefix="pyobs-bench-dbus-"))
    daemon = DbusDaemon(directory, stock=True)
    try:
        address = daemon.start()
        run.say(f"dbus-daemon at {address}")
        yield {"address": address, "server_pid": daemon.pid}
    finally:
        daemon.stop()
        shutil.rmtree(directory, ignore_errors=True)


def make_comm(impl: str, name: str, env: dict[str, Any]) -> Any:
    from pyobs.comm.dbus import DbusComm

    return DbusComm(name, bus=env["address"])


# ---------------------------------------------------------------------------- floor: raw dbus-fast


async def floor(run: Run, env: dict[str, Any]) -> dict[str, Any]:
    callee = await run.spawn("floor-callee", "ours", NAME, "floor_callee", {})
    await callee.expect("ready", run.timeout(60))
    caller = await run.spawn("floor-caller", "ours", NAME, "floor_caller", run.remote_params())
    cpu: dict[str, float] = {}
    run.watch_cpu(caller, callee, cpu)
    metrics: dict[str, Any] = (await caller.expect("result", run.timeout(180)))["metrics"]
    metrics.setdefault("cpu_per_call", {}).update(cpu)
    return metrics


async def _connect(ctx: Context) -> Any:
    from dbus_fast import BusType
    from dbus_fast.aio import MessageBus

    async with asyncio.timeout(10):
        return await MessageBus(bus_address=ctx.env["address"], bus_type=BusType.SESSION).connect()


async def role_floor_callee(ctx: Context) -> None:
    from dbus_fast import Message

    bus = await _connect(ctx)

    def handler(msg: Any) -> Any:
        if msg.member == "MoveRadec" and msg.interface == FLOOR_IFACE:
            return Message.new_method_return(msg)
        return None

    bus.add_message_handler(handler)
    async with asyncio.timeout(10):
        await bus.request_name(FLOOR_NAME)
    emit("ready", t=now_ns())
    await ctx.control.wait("quit", ctx.spec.get("max_seconds", 120.0))
    bus.disconnect()


async def role_floor_caller(ctx: Context) -> None:
    from dbus_fast import Message, MessageType

    bus = await _connect(ctx)

    async def call() -> None:
        reply = await bus.call(
            Message(
                destination=FLOOR_NAME,
                path=FLOOR_PATH,
                interface=FLOOR_IFACE,
                member="MoveRadec",
                signature="dd",
                body=[1.0, 2.0],
            )
        )
        if reply.message_type != MessageType.METHOD_RETURN:
            raise RuntimeError(f"floor call failed: {reply.body}")

    metrics = await measure_calls(call, ctx.params)
    bus.disconnect()
    emit("result", metrics=metrics)


async def role_floor_subscriber(ctx: Context) -> None:
    from dbus_fast import Message, MessageType

    bus = await _connect(ctx)
    log = SubscriberLog()

    def handler(msg: Any) -> None:
        if msg.message_type == MessageType.SIGNAL and msg.interface == FLOOR_IFACE and msg.member == "Event":
            log.got(int(json.loads(msg.body[0])["data"]["seq"]))

    bus.add_message_handler(handler)
    rule = f"type='signal',interface='{FLOOR_IFACE}',member='Event'"
    reply = await bus.call(
        Message(
            destination="org.freedesktop.DBus",
            path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus",
            member="AddMatch",
            signature="s",
            body=[rule],
        )
    )
    if reply.message_type != MessageType.METHOD_RETURN:
        raise RuntimeError(f"AddMatch failed: {reply.body}")
    await log.serve(ctx)
    bus.disconnect()


async def role_floor_publisher(ctx: Context) -> None:
    from dbus_fast import Message

    bus = await _connect(ctx)

    async def send(i: int) -> None:
        # a body like a pyobs event's JSON
        body = json.dumps(
            {"type": "NewImageEvent", "timestamp": time.time(), "uuid": "0" * 36, "data": {"seq": i, "filename": "x"}}
        )
        await bus.send(Message.new_signal(FLOOR_PATH, FLOOR_IFACE, "Event", "s", [body]))

    await publish_series(ctx, send)
    bus.disconnect()
