"""LocalComm: every module in one process. Floor: the same work done with bare asyncio."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from harness.common import emit
from harness.roles import Context, Receipts, measure_calls

if TYPE_CHECKING:
    from harness.driver import Run

NAME = "local"
TITLE = "LocalComm (in-process)"
IN_PROCESS = True
IMPLS = ("ours", "core")
IMPORT = {"ours": "pyobs.comm.local", "core": "pyobs.comm.local"}
FLOOR = "bare asyncio: `await obj.method()` / a task per handler"
GOALS = [
    # (metric, comparison, bound, text) -- see harness.report.check_goal
    ("call_rtt.p50", "ours<=", 5e-6, "issue 2: LocalComm call round trip p50 ≤ 5 µs"),
    ("event_1.every.p50", "ours<=", 20e-6, "issue 2: LocalComm event delivery p50 ≤ 20 µs"),
]


def available(impl: str) -> str | None:
    return None


@contextlib.asynccontextmanager
async def environment(run: Run) -> AsyncIterator[dict[str, Any]]:
    yield {}


def make_comm(impl: str, name: str, env: dict[str, Any]) -> Any:
    from pyobs.comm.local import LocalComm

    return LocalComm(name)  # both: the process-wide default network


async def floor(run: Run, env: dict[str, Any]) -> dict[str, Any]:
    worker = await run.spawn("local-floor", "ours", NAME, "floor", run.inproc_params())
    return dict((await worker.expect("result", run.timeout(120))).get("metrics", {}))


async def role_floor(ctx: Context) -> None:
    """What LocalComm cannot beat: a direct await, and handing an event to a task per handler."""
    p = ctx.params

    class Target:
        async def move_radec(self, ra: float, dec: float, **kwargs: Any) -> None:
            return None

    target = Target()
    out: dict[str, Any] = await measure_calls(lambda: target.move_radec(1.0, 2.0), p)
    tasks: set[asyncio.Task[Any]] = set()
    for k in p["subscribers"]:
        rec = Receipts(k)

        async def send(i: int, rec: Receipts = rec) -> None:
            for h in rec.handlers:  # what a comm does at the least: one task per handler
                task = asyncio.ensure_future(h(i, "x"))
                tasks.add(task)
                task.add_done_callback(tasks.discard)

        out[f"event_{k}"] = await rec.run(send, p)
    emit("result", metrics=out)
