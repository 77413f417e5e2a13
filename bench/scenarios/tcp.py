"""Floor only: loopback TCP echo between two processes (asyncio streams), one connection."""

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
    return metrics


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
