#!/usr/bin/env python3
"""Cancel and progress of long calls, per transport (issue 17): caller and callee in this process.

    python3 bench/cancel_progress.py             # local, xmpp (throw-away prosody), dbus (private daemon)
    python3 bench/cancel_progress.py --quick     # fewer repetitions
    python3 bench/cancel_progress.py --only dbus

Measures, for LocalComm, XmppComm and DbusComm:

* **cancel → callee cleanup**: the caller's task awaiting ``expose(30)`` is cancelled; the time until
  the callee's ``finally`` runs, and until the caller's await has ended (with CancelledError, after
  the callee confirmed): p50 / p90 over N cancels;
* **deadline → callee cleanup**: the same when the caller's deadline (0.2 s) passes;
* **progress notices/s sustained**: one call whose method reports as fast as it can for a few
  seconds with the rate limit off (``progress_interval = 0``), counted at the caller; and how many
  arrive with the default limit (0.1 s: at most 10/s by design).

The cost of the machinery on a plain call's round trip is what ``bench/run`` measures (compare a
run of this branch with one of its base). Writes ``bench/CANCEL.md``-style Markdown to stdout and,
with ``--json FILE``, the figures as JSON. Every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import shutil
import sys
import tempfile
import time
from abc import abstractmethod
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's pyobs

from pyobs.comm import Comm
from pyobs.comm.calls import CancelOutcome, Progress
from pyobs.interfaces.interface import Interface
from pyobs.modules import Module


class IBenchLong(Interface):
    @abstractmethod
    async def expose(self, seconds: float, **kwargs: Any) -> str: ...
    @abstractmethod
    async def flood(self, seconds: float, **kwargs: Any) -> int: ...


class BenchLong(Module, IBenchLong):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(publish_logs=False, **kwargs)
        self.started = asyncio.Event()
        self.cleaned_ns = 0

    async def expose(self, seconds: float, **kwargs: Any) -> str:
        self.started.set()
        try:
            await asyncio.sleep(seconds)
            return "done"
        finally:
            self.cleaned_ns = time.perf_counter_ns()

    async def flood(self, seconds: float, **kwargs: Any) -> int:
        """Report progress as fast as the loop allows for ``seconds``; returns how many were reported."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        end = start + seconds
        n = 0
        while (now := loop.time()) < end:
            n += 1
            self.report_progress((now - start) / seconds, f"notice {n}")
            await asyncio.sleep(0)  # let the transport write and the caller read
        return n


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def seen(comm: Comm, name: str, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not comm.is_online(name):
        if loop.time() > end:
            raise RuntimeError(f"{comm.name} did not see {name} within {timeout} s")
        await asyncio.sleep(0.005)


async def measure(make: Callable[[str, float], Comm], reps: int, flood_s: float) -> dict[str, Any]:
    callee = BenchLong(comm=make("callee", 10.0))
    caller = make("caller", 10.0)
    await callee.open()
    await caller.open()
    out: dict[str, Any] = {}
    try:
        await seen(caller, "callee")
        proxy = await caller.proxy("callee", IBenchLong)

        # cancel -> cleanup
        cleanup, ended, outcomes = [], [], set()
        for _ in range(reps):
            callee.started.clear()
            call = proxy.expose(30.0)
            task = asyncio.ensure_future(call)
            await asyncio.wait_for(callee.started.wait(), 10.0)
            t0 = time.perf_counter_ns()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 10.0)
            t1 = time.perf_counter_ns()
            cleanup.append((callee.cleaned_ns - t0) / 1e3)
            ended.append((t1 - t0) / 1e3)
            outcomes.add(str(call.cancel_outcome))
        out["cancel_cleanup_us"] = {"p50": pct(cleanup, 0.5), "p90": pct(cleanup, 0.9), "n": reps}
        out["cancel_caller_done_us"] = {"p50": pct(ended, 0.5), "p90": pct(ended, 0.9), "n": reps}
        out["cancel_outcomes"] = sorted(outcomes)

        # deadline -> cleanup
        caller.timeout = 0.2
        late = []
        for _ in range(max(3, reps // 5)):
            call = proxy.expose(30.0)
            t0 = time.perf_counter_ns()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(call, 10.0)
            late.append((callee.cleaned_ns - t0) / 1e3 - 200_000.0)
            assert call.cancel_outcome is CancelOutcome.CANCELLED, call.cancel_outcome
        caller.timeout = 10.0
        out["deadline_cleanup_after_deadline_us"] = {"p50": pct(late, 0.5), "n": len(late)}

        # progress, rate limit off and on
        for key, interval in (("progress_unlimited", 0.0), ("progress_default_limit", Comm.progress_interval)):
            callee.comm.progress_interval = interval
            got: list[Progress] = []
            t0 = time.perf_counter()
            reported = await proxy.flood(flood_s).on_progress(got.append)
            dt = time.perf_counter() - t0
            in_order = all(b.seq > a.seq for a, b in itertools.pairwise(got))
            out[key] = {"reported": reported, "received": len(got), "per_s": len(got) / dt, "in_order": in_order}
        callee.comm.progress_interval = Comm.progress_interval
    finally:
        await caller.close()
        await callee.close()
    return out


@contextlib.asynccontextmanager
async def transport(kind: str) -> AsyncIterator[Callable[[str, float], Comm]]:
    if kind == "local":
        from pyobs.comm.local import LocalComm, LocalNetwork

        network = LocalNetwork()
        yield lambda name, timeout: LocalComm(name, network=network, timeout=timeout)
    elif kind == "xmpp":
        from pyobs.comm.xmpp import XmppComm
        from pyobs.testing.xmpp_server import TestServer

        server = TestServer(["caller", "callee"])
        await server.start()
        try:
            yield lambda name, timeout: XmppComm(
                user=name,
                domain=server.domain,
                password=server.password,
                server=server.address,
                timeout=timeout,
            )
        finally:
            await server.stop()
            server.cleanup()
    elif kind == "dbus":
        from pyobs.comm.dbus import DbusComm
        from pyobs.testing.dbus_daemon import DbusDaemon

        directory = Path(tempfile.mkdtemp(prefix="pyobs-bench-cancel-"))
        daemon = DbusDaemon(directory, stock=True)
        try:
            address = daemon.start()
            yield lambda name, timeout: DbusComm(name, bus=address, timeout=timeout)
        finally:
            daemon.stop()
            shutil.rmtree(directory, ignore_errors=True)
    else:
        raise ValueError(kind)


def report(results: dict[str, dict[str, Any]]) -> str:
    def ms(key: str, q: str) -> Callable[[dict[str, Any]], str]:
        return lambda r: f"{r[key][q] / 1e3:.2f} ms"

    def received(r: dict[str, Any]) -> str:
        p = r["progress_unlimited"]
        return f"{p['received']:,} of {p['reported']:,}, {'yes' if p['in_order'] else 'NO'}"

    rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("caller cancel → callee cleanup, p50", ms("cancel_cleanup_us", "p50")),
        ("caller cancel → callee cleanup, p90", ms("cancel_cleanup_us", "p90")),
        ("caller cancel → caller's await ended (confirmed), p50", ms("cancel_caller_done_us", "p50")),
        ("deadline passed → callee cleanup, p50", ms("deadline_cleanup_after_deadline_us", "p50")),
        ("progress notices/s sustained, rate limit off", lambda r: f"{r['progress_unlimited']['per_s']:,.0f}"),
        ("  … received of reported, in order", received),
        ("progress notices/s, default limit (0.1 s)", lambda r: f"{r['progress_default_limit']['per_s']:.1f}"),
    ]
    kinds = list(results)
    lines = ["| | " + " | ".join(kinds) + " |", "|---|" + "---:|" * len(kinds)]
    for title, fmt in rows:
        lines.append(f"| {title} | " + " | ".join(fmt(results[k]) for k in kinds) + " |")
    return "\n".join(lines)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (20 cancels, 1 s of progress)")
    ap.add_argument("--only", action="append", choices=["local", "xmpp", "dbus"])
    ap.add_argument("--json", help="write the figures to this file")
    args = ap.parse_args()
    reps, flood_s = (20, 1.0) if args.quick else (100, 3.0)
    results: dict[str, dict[str, Any]] = {}
    for kind in args.only or ["local", "xmpp", "dbus"]:
        if kind == "dbus" and shutil.which("dbus-daemon") is None:
            print(f"{kind}: skipped, dbus-daemon is not installed", file=sys.stderr)
            continue
        if kind == "xmpp" and shutil.which("prosody") is None:
            print(f"{kind}: skipped, prosody is not installed", file=sys.stderr)
            continue
        async with transport(kind) as make:
            results[kind] = await asyncio.wait_for(measure(make, reps, flood_s), 600)
        print(f"{kind}: {json.dumps(results[kind])}", file=sys.stderr)
    print(report(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    asyncio.run(main())
