"""Floor only: loopback TCP between processes (asyncio streams).

Echo between two processes (round trips back to back, paced, pipelined), and the floor of any
event path: one-way messages 20 ms apart (as the events are sent) straight from the publisher's
process to the subscriber's, and through a relay process that forwards them and does nothing else,
as a server in the middle at least must.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from harness.common import bounded, emit, now_ns, summary
from harness.roles import Context, mark

if TYPE_CHECKING:
    from harness.driver import Run

NAME = "tcp"
TITLE = "loopback TCP echo (floor only)"
IN_PROCESS = False
IMPLS: tuple[str, ...] = ()
IMPORT: dict[str, str] = {}
FLOOR = "asyncio TCP echo on 127.0.0.1, two processes"
GOALS: list[tuple[str, str, float, str]] = []
#: about the size of a small jabber:iq:rpc call
PAYLOAD = b"x" * 200 + b"\n"


def available(impl: str) -> str | None:
    return None


@contextlib.asynccontextmanager
async def environment(run: Run) -> AsyncIterator[dict[str, Any]]:
    yield {}


def make_comm(impl: str, name: str, env: dict[str, Any]) -> Any:
    raise NotImplementedError("tcp is a floor, not a transport")


async def floor(run: Run, env: dict[str, Any]) -> dict[str, Any]:
    server = await run.spawn("tcp-server", "ours", NAME, "server", {})
    port = (await server.expect("ready", run.timeout(30)))["port"]
    client = await run.spawn("tcp-client", "ours", NAME, "client", {**run.remote_params(), "port": port})
    cpu: dict[str, float] = {}
    run.watch_cpu(client, server, cpu)
    metrics: dict[str, Any] = (await client.expect("result", run.timeout(120)))["metrics"]
    metrics.setdefault("cpu_per_call", {}).update(cpu)
    metrics.update(await oneway(run))
    return metrics


async def oneway(run: Run) -> dict[str, Any]:
    """One-way latency 20 ms apart, direct and through a relay, alternating message by message."""
    n = run.profile.events_remote
    relay = await run.spawn("tcp-relay", "ours", NAME, "relay", {})
    relay_port = (await relay.expect("ready", run.timeout(30)))["port"]
    pub = await run.spawn("tcp-pub", "ours", NAME, "oneway_pub", {"n": n, "relay_port": relay_port})
    pub_port = (await pub.expect("ready", run.timeout(30)))["port"]
    subs = [
        await run.spawn(f"tcp-sub-{how}", "ours", NAME, "oneway_sub", {"n": n, "port": port, "how": how})
        for how, port in (("direct", pub_port), ("relay", relay_port))
    ]
    for sub in subs:
        await sub.expect("ready", run.timeout(30))
    pub.send("go")
    out = {}
    for sub in subs:
        res = await sub.expect("result", run.timeout(n * 0.05 + 30))
        out[f"oneway_{res['how']}"] = res["latency"]
    return out


async def role_server(ctx: Context) -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while line := await reader.readline():
                writer.write(line)
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    emit("ready", port=server.sockets[0].getsockname()[1])
    async with server:
        await ctx.control.wait("quit", ctx.spec.get("max_seconds", 120.0))


async def role_client(ctx: Context) -> None:
    p = ctx.params
    reader, writer = await asyncio.open_connection("127.0.0.1", p["port"])

    async def one() -> None:
        writer.write(PAYLOAD)
        await reader.readline()

    for _ in bounded(p.get("warmup", 100), 5.0):
        await one()
    rtt = []
    await mark("calls", 0)
    cpu0 = time.process_time()
    for _ in bounded(p["calls"], p.get("calls_seconds", 20.0)):
        t0 = now_ns()
        await one()
        rtt.append((now_ns() - t0) * 1e-9)
    cpu = (time.process_time() - cpu0) / max(len(rtt), 1)
    await mark("calls", 1, n=len(rtt))

    # paced: one round trip every 20 ms, like the events; what idle wake-ups cost on this machine
    paced = []
    for _ in bounded(p.get("paced", 100), 5.0):
        await asyncio.sleep(0.02)
        t0 = now_ns()
        await one()
        paced.append((now_ns() - t0) * 1e-9)

    # pipelined: keep `inflight` messages outstanding on the connection
    total, inflight = p["tp_calls"], p.get("inflight", 50)
    sent: deque[int] = deque()
    lat: list[float] = []
    end = time.monotonic() + p.get("tp_seconds", 10.0)
    t0 = now_ns()
    for _ in range(min(inflight, total)):
        sent.append(now_ns())
        writer.write(PAYLOAD)
    while sent:
        await reader.readline()
        lat.append((now_ns() - sent.popleft()) * 1e-9)
        if len(lat) + len(sent) < total and time.monotonic() < end:
            sent.append(now_ns())
            writer.write(PAYLOAD)
    elapsed = (now_ns() - t0) * 1e-9
    writer.close()
    tp = {"calls": len(lat), "inflight": inflight, "seconds": elapsed, "per_s": len(lat) / elapsed, **summary(lat)}
    metrics = {"call_rtt": summary(rtt), "paced_rtt": summary(paced), "throughput": tp, "cpu_per_call": {"caller": cpu}}
    emit("result", metrics=metrics)


async def role_relay(ctx: Context) -> None:
    """Forwards every line from a publisher to every connection that said ``sub``; nothing else."""
    subscribers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            first = await reader.readline()
            if first == b"sub\n":
                subscribers.append(writer)
                return
            while line := await reader.readline():
                for sub in subscribers:
                    sub.write(line)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    emit("ready", port=server.sockets[0].getsockname()[1])
    async with server:
        await ctx.control.wait("quit", ctx.spec.get("max_seconds", 120.0))


async def role_oneway_pub(ctx: Context) -> None:
    """Listens for the direct subscriber, connects to the relay, then sends timestamps alternately."""
    p = ctx.params
    direct: list[asyncio.StreamWriter] = []
    server = await asyncio.start_server(lambda r, w: direct.append(w), "127.0.0.1", 0)
    _, relay = await asyncio.open_connection("127.0.0.1", p["relay_port"])
    relay.write(b"pub\n")
    emit("ready", port=server.sockets[0].getsockname()[1])
    await ctx.control.wait("go", 60.0)
    async with server:
        for _ in bounded(p["n"], p["n"] * 0.1 + 10):
            for writer in (direct[0], relay):
                await asyncio.sleep(0.02)
                writer.write(b"%d\n" % now_ns())
        await ctx.control.wait("quit", ctx.spec.get("max_seconds", 120.0))


async def role_oneway_sub(ctx: Context) -> None:
    p = ctx.params
    reader, writer = await asyncio.open_connection("127.0.0.1", p["port"])
    if p["how"] == "relay":
        writer.write(b"sub\n")
        await writer.drain()
    emit("ready")
    lat = []
    for _ in bounded(p["n"], p["n"] * 0.1 + 20):
        line = await asyncio.wait_for(reader.readline(), 10.0)
        lat.append((now_ns() - int(line)) * 1e-9)
    emit("result", how=p["how"], latency=summary(lat))
    writer.close()
