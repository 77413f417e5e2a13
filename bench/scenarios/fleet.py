"""Fleet members for ``bench/run --fleet``: several modules in one worker process, each with its own
XMPP connection (see bench/harness/fleet.py for what is measured).

Runs in our interpreter and in pyobs-core's venv alike: ``pyobs`` is only imported inside functions.
Commands come on stdin (one JSON object a line); answers are ``@bench`` lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from typing import Any

from harness.common import emit, now_ns
from harness.roles import Context

from scenarios.xmpp import make_comm as _make_comm

NAME = "fleet"
#: event filenames: "fleet:<seq>:<send time ns>"
PREFIX = "fleet"
#: how often the members look at their peer lists while waiting for something (s)
POLL = 0.01


def make_comm(impl: str, name: str, env: dict[str, Any]) -> Any:
    """The worker builds each member's comm here: the XMPP scenario's, with ours' peer check interval
    set when the run asks for one (``--fleet-peer-check``; pyobs-core has no such check)."""
    if impl == "ours" and env.get("peer_check_interval") is not None:
        from pyobs.comm.xmpp import XmppComm

        return XmppComm(user=name, domain=env["domain"], password=env["password"], server=env["server"],
                        use_tls=False, peer_check_interval=float(env["peer_check_interval"]))  # fmt: skip
    return _make_comm(impl, name, env)


def rss_bytes() -> int:
    try:
        for line in open("/proc/self/status", encoding="ascii"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _connected(comm: Any) -> bool:
    """Whether the comm has a session with the server (ours: ``connected``; pyobs-core: its client)."""
    if hasattr(comm, "transport"):
        return bool(comm.connected)
    client = getattr(comm, "_xmpp", None)
    try:
        return bool(client is not None and client.is_connected() and client.authenticated)
    except Exception:
        return False


async def role_member(ctx: Context) -> None:
    from pyobs.events import ModuleClosedEvent, ModuleOpenedEvent, NewImageEvent
    from pyobs.modules import Module

    ctx.check_impl()
    import faulthandler
    import signal

    faulthandler.register(signal.SIGUSR1)  # a stuck worker: kill -USR1 shows where, in its log
    if os.environ.get("PYOBS_FLEET_LOG"):  # diagnostics: e.g. INFO into the worker logs
        import logging

        logging.getLogger("pyobs").setLevel(os.environ["PYOBS_FLEET_LOG"])
    p = ctx.params
    names: list[str] = p["names"]
    fleet: set[str] = set(p["fleet"])
    publisher: str = p.get("publisher", "")
    got: dict[str, dict[int, int]] = {n: {} for n in names}
    #: send time of each event seen (from its filename)
    sent_at: dict[int, int] = {}

    #: modules whose list of peers changed since it was last looked at (ModuleOpened/ClosedEvent)
    changed: set[str] = set()

    def member(name: str) -> Any:
        async def on_peers(event: Any, sender: str) -> bool:
            changed.add(name)
            return True

        async def on_image(event: Any, sender: str) -> bool:
            t = now_ns()
            parts = str(getattr(event, "filename", "")).split(":")
            if len(parts) == 3 and parts[0] == PREFIX and parts[1].isdigit():
                got[name].setdefault(int(parts[1]), t)
                sent_at[int(parts[1])] = int(parts[2])
            return True

        class Member(Module):  # type: ignore[misc]
            async def open(self) -> None:
                await super().open()
                await self.comm.register_event(ModuleOpenedEvent, on_peers)
                await self.comm.register_event(ModuleClosedEvent, on_peers)
                if name == publisher:
                    await self.comm.register_event(NewImageEvent)
                else:
                    await self.comm.register_event(NewImageEvent, on_image)

        return Member(comm=ctx.make_comm(name))

    modules = {n: member(n) for n in names}
    emit("ready", rss=rss_bytes(), pid=os.getpid())
    sender: asyncio.Task[None] | None = None
    sent: list[tuple[int, int]] = []

    def pinged() -> int | None:
        """Roster contacts our modules here pinged when going online, in all (None: not ours or
        a version without the count)."""
        counts = [getattr(getattr(getattr(m.comm, "transport", None), "peers", None), "pinged", None)
                  for m in modules.values()]  # fmt: skip
        return sum(counts) if counts and all(isinstance(c, int) for c in counts) else None

    async def wait_until(cond: Any, timeout: float) -> int | None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if cond():
                return now_ns()
            await asyncio.sleep(POLL)
        return now_ns() if cond() else None

    def sees(name: str, want: set[str]) -> bool:
        comm = modules[name].comm
        return want <= set(comm.clients) if want else True

    async def send_series(first: int, count: int, interval: float, report: bool) -> None:
        comm = modules[publisher].comm
        for i in range(first, first + count):
            t = now_ns()
            try:
                await comm.send_event(NewImageEvent(filename=f"{PREFIX}:{i}:{t}"))
            except Exception as exc:  # pyobs-core while disconnected: counted as missing
                emit("send_failed", seq=i, error=f"{type(exc).__name__}: {exc}")
            sent.append((i, t))
            await asyncio.sleep(interval)
        if report:  # the whole series went out (a stopped one is reported by stop_sending)
            emit("sent", sent=[x for x in sent if x[0] >= first])

    while True:
        try:
            cmd = await ctx.control.queue.get()
        except asyncio.CancelledError:
            break
        what = cmd.get("cmd")
        timeout = float(cmd.get("timeout", 30.0))
        if what == "quit":
            break
        if what == "start":
            t0 = now_ns()
            cpu0 = time.process_time()
            profiler = None
            if os.environ.get("PYOBS_FLEET_CPROFILE") and names[0].endswith("0"):
                import cProfile

                profiler = cProfile.Profile()
                profiler.enable()
            results = await asyncio.gather(*(ctx.start(m) for m in modules.values()), return_exceptions=True)
            errors = [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]
            t_open = now_ns()
            want = {n: fleet - {n} for n in names}
            pending = set(names)
            sweep = [0.0]

            def meshed(w: dict[str, set[str]] = want, todo: set[str] = pending, sweep: list[float] = sweep) -> bool:
                # only modules still missing someone whose peers changed are looked at (and all of
                # those every 0.5 s): looking costs CPU, N per module, which a fleet start has not to spare
                now = time.monotonic()
                if now - sweep[0] > 0.5:
                    sweep[0] = now
                    look = set(todo)
                else:
                    look = todo & changed
                changed.difference_update(look)
                todo.difference_update([n for n in look if sees(n, w[n])])
                return not todo

            t_mesh = await wait_until(meshed, timeout)
            missing = sum(len(want[n] - set(modules[n].comm.clients)) for n in names)
            if profiler is not None:  # diagnostics only: into the worker's log
                import io
                import pstats

                profiler.disable()
                text = io.StringIO()
                pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(40)
                pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(30)
                print(text.getvalue(), file=sys.stderr)
            emit("mesh", t0=t0, t_open=t_open, t_mesh=t_mesh, missing=missing, errors=errors[:3],
                 cpu=time.process_time() - cpu0, pinged=pinged())  # fmt: skip
        elif what == "watch":  # every module here sees module ``name``
            target = cmd["name"]
            t = await wait_until(lambda x=target: all(x in modules[n].comm.clients for n in names), timeout)
            emit("seen", t=t, missing=sum(target not in modules[n].comm.clients for n in names))
        elif what == "send":
            if sender is not None and not sender.done():
                sender.cancel()
            # in a task of its own: a publisher that blocks in send_event must not block the commands
            series = send_series(int(cmd["first"]), int(cmd["count"]), float(cmd["interval"]), cmd.get("wait", True))
            sender = asyncio.ensure_future(series)
        elif what == "stop_sending":
            if sender is not None and not sender.done():
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sender
            emit("sent", sent=list(sent))
        elif what == "debug":  # diagnostics: the transport's bookkeeping, into the worker log
            for n, m in modules.items():
                t = getattr(m.comm, "transport", None)
                if t is not None and hasattr(t, "peers") and hasattr(t, "publisher"):
                    peers = t.peers.known()
                    print(f"DEBUG {n}: online={t.exports.online} session={t.link.session} "
                          f"unacked={len(t.publisher.unacked)} peers={len(peers)} "
                          f"stale={sum(p.stale for p in peers)} cache={len(t.peers.discovery.cache)}",
                          file=sys.stderr)  # fmt: skip
        elif what == "collect":
            emit("got", got={n: {str(k): v for k, v in g.items()} for n, g in got.items() if n != publisher})
        elif what == "restart_watch":  # after the server went down: when is each module back
            down = {n: False for n in names}
            back: dict[str, int] = {}
            mesh: dict[str, int] = {}
            want = {n: fleet - {n} for n in names}
            end = time.monotonic() + timeout
            while time.monotonic() < end and len(mesh) < len(names):
                for n in names:
                    comm = modules[n].comm
                    up = _connected(comm)
                    if not up:
                        down[n] = True
                    elif down[n] and n not in back:
                        back[n] = now_ns()
                    if n in back and n not in mesh and sees(n, want[n]):
                        mesh[n] = now_ns()
                await asyncio.sleep(POLL)
            emit("restarted", back=back, mesh=mesh, never_down=[n for n in names if not down[n]], pinged=pinged())
        elif what == "reach":  # until every receiver here had an event sent at or after t_back
            t_back = int(cmd["t_back"])
            receivers = [n for n in names if n != publisher]

            def first_after(n: str, tb: int = t_back) -> int | None:
                times = [t for q, t in got[n].items() if sent_at.get(q, 0) >= tb]
                return min(times) if times else None

            await wait_until(lambda r=receivers: all(first_after(n) is not None for n in r), timeout)
            emit("reach", first={n: first_after(n) for n in receivers})
        elif what == "count":  # receipts so far (the driver waits until they stop growing)
            emit("count", n=sum(len(g) for n, g in got.items() if n != publisher))
        elif what == "usage":
            emit("usage", rss=rss_bytes(), modules=len(names), cpu=time.process_time())
    if sender is not None:
        sender.cancel()
    with contextlib.suppress(Exception):
        async with asyncio.timeout(10):
            await asyncio.gather(*(m.close() for m in modules.values()), return_exceptions=True)
