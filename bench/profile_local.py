#!/usr/bin/env python3
"""Hot loops of the LocalComm benchmark, for a profiler. Our package by default.

    python bench/profile_local.py calls  --seconds 5          # plain run, prints µs per op
    python bench/profile_local.py events --pyinstrument        # pyinstrument's text report
    py-spy record -r 5000 -o out.svg -- python bench/profile_local.py events --seconds 10

Under ``bench/.venvs/pyobs-core/bin/python`` it profiles pyobs-core instead. Runs the same code
the benchmark runs (Context.classes(), move_radec, NewImageEvent to one subscriber); each loop is
bounded by ``--seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
if "pyobs-core" not in sys.prefix:  # in pyobs-core's venv, profile pyobs-core
    sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # this checkout's pyobs


async def main(what: str, seconds: float, subscribers: int) -> None:
    from harness.roles import Context

    from pyobs.comm.local import LocalComm
    from pyobs.events import NewImageEvent
    from pyobs.interfaces import IPointingRaDec

    Target, Plain = Context.classes()
    callee, caller = Target(comm=LocalComm("callee")), Plain(comm=LocalComm("caller"))
    await Context.start(callee)
    await Context.start(caller)
    n = 0
    if what == "calls":
        proxy = await Context.proxy(caller.comm, "callee", IPointingRaDec)
        end = time.perf_counter() + seconds
        t0 = time.perf_counter()
        while time.perf_counter() < end:
            for _ in range(1000):
                await proxy.move_radec(1.0, 2.0)
            n += 1000
    else:
        subs = [Plain(comm=LocalComm(f"sub{i}")) for i in range(subscribers)]
        pending = [0]
        done: list[asyncio.Future[None]] = []

        async def handler(event: Any, sender: str) -> bool:
            pending[0] -= 1
            if pending[0] == 0:
                done[0].set_result(None)
            return True

        for s in subs:
            await Context.start(s)
            await s.comm.register_event(NewImageEvent, handler)
        await caller.comm.register_event(NewImageEvent)
        loop = asyncio.get_running_loop()
        end = time.perf_counter() + seconds
        t0 = time.perf_counter()
        while time.perf_counter() < end:
            for _ in range(100):
                done[:] = [loop.create_future()]
                pending[0] = subscribers
                await caller.comm.send_event(NewImageEvent("x"))
                await done[0]
            n += 100
    dt = time.perf_counter() - t0
    print(f"{what}: {n} in {dt:.2f} s = {dt / n * 1e6:.2f} µs each", file=sys.stderr)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=("calls", "events"))
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--subscribers", type=int, default=1)
    ap.add_argument("--pyinstrument", action="store_true", help="print pyinstrument's report")
    args = ap.parse_args()
    if args.pyinstrument:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.00005, async_mode="disabled")
        profiler.start()
        asyncio.run(main(args.what, args.seconds, args.subscribers))
        profiler.stop()
        print(profiler.output_text(unicode=True, color=False, show_all=False))
    else:
        asyncio.run(main(args.what, args.seconds, args.subscribers))
