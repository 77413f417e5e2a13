"""The fleet benchmark: ``bench/run --fleet`` (see bench/README.md, "Fleet").

N modules (N = 10, 30, 100, and 300 with ``--fleet-300``), several per worker process, each with its
own XMPP connection, on one throw-away prosody per N that ours and pyobs-core 2.19.1 use one after
the other in the same run. Module 0 publishes, the others handle its events. Measured:

* start: from "open now" to every module seeing every other one (``clients``), and prosody's CPU;
* late joiner: one more module opens; until every module of the fleet sees it;
* fan-out: events 50 ms apart; when the last of the N-1 receivers has each one (p50), and losses;
* restart: prosody stopped and started while events keep coming every 50 ms; from the server
  accepting again until every module is reconnected, sees everyone, and has an event sent after
  that moment; losses over the whole series;
* RSS per module (worker RSS ÷ modules in it) and idle CPU (workers + server, per module).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from .common import percentile
from .procs import WORKER, Worker, WorkerError, Workers, cpu_seconds, workers

BENCH = Path(__file__).resolve().parent.parent
REPO = BENCH.parent
PER_PROCESS = 10
EVENTS = 20
INTERVAL = 0.05
#: events during a server restart: each is queued while the server is away, and the queue is
#: delivered when it is back (a 5 s outage: 50 queued events to N-1 receivers each)
RESTART_INTERVAL = 0.1
#: how long each phase may take per implementation (s)
LIMITS = {
    "full": {"mesh": 60.0, "late": 30.0, "events": 10.0, "restart": 40.0},
    "quick": {"mesh": 30.0, "late": 15.0, "events": 8.0, "restart": 25.0},
}


def core_python() -> str | None:
    venv = os.environ.get("PYOBS_CORE_VENV") or str(BENCH / ".venvs" / "pyobs-core")
    python = Path(venv) / "bin" / "python"
    return str(python) if python.exists() else None


class Fleet:
    def __init__(self, args: argparse.Namespace, logs: Path) -> None:
        self.args = args
        self.logs = logs
        self.limits = LIMITS[args.fleet_profile]
        self.n_spawned = 0
        self.ws: Workers | None = None
        self.deadline = time.monotonic() + float(args.budget)

    def say(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] fleet: {text}", file=sys.stderr, flush=True)

    def left(self, seconds: float) -> float:
        return max(1.0, min(seconds, self.deadline - time.monotonic()))

    async def spawn(self, impl: str, label: str, params: dict[str, Any], env: dict[str, Any]) -> Worker:
        assert self.ws is not None
        penv = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        penv["PYTHONUNBUFFERED"] = "1"
        if impl == "ours":
            penv["PYTHONPATH"] = os.environ.get("PYOBS_FLEET_OURS", str(REPO))
            python = sys.executable
        else:
            python = core_python() or ""
        spec = {"role": "member", "impl": impl, "transport": "fleet", "params": params, "env": env,
                "max_seconds": 600.0}  # fmt: skip
        self.n_spawned += 1
        log = self.logs / f"{self.n_spawned:03d}-fleet-{impl}-{label}.log"
        cmd = [python, str(WORKER), json.dumps(spec)]
        if self.args.fleet_worker_nice:  # the server first, as on a machine of its own (nice execs: same pid)
            cmd = ["nice", "-n", str(self.args.fleet_worker_nice), *cmd]
        return await self.ws.start(Worker(f"fleet/{impl}/{label}", cmd, penv, BENCH, log))


def names_for(n: int) -> list[str]:
    return [f"fleet-{i:03d}" for i in range(n)]


async def measure(fl: Fleet, impl: str, n: int, server: Any, out: dict[str, Any]) -> dict[str, Any]:
    """Fills ``out`` phase by phase (what was measured survives a later phase that fails)."""
    lim = fl.limits
    env = {"server": server.address, "domain": server.domain, "password": server.password,
           "peer_check_interval": fl.args.fleet_peer_check}  # fmt: skip
    names = names_for(n)
    publisher = names[0]
    groups = [names[i : i + PER_PROCESS] for i in range(0, n, PER_PROCESS)]
    out.update({"n": n, "processes": len(groups)})
    ws = [
        await fl.spawn(impl, f"n{n}-p{i}", {"names": g, "fleet": names, "publisher": publisher}, env)
        for i, g in enumerate(groups)
    ]
    for w in ws:
        await w.expect("ready", fl.left(120))
    pub = ws[0]

    def server_cpu() -> float:
        proc = getattr(server, "_process", None)  # prosody's and ejabberd's test servers alike
        return cpu_seconds(proc.pid if proc is not None and proc.poll() is None else None) or 0.0

    # --- start to full mesh
    cpu0 = server_cpu()
    for w in ws:
        w.send("start", timeout=fl.left(lim["mesh"]))
    meshes = [await w.expect("mesh", fl.left(lim["mesh"] + 30)) for w in ws]
    t0 = min(m["t0"] for m in meshes)
    missing = sum(m["missing"] for m in meshes)
    out["start_errors"] = [e for m in meshes for e in m["errors"]][:3]
    out["open_s"] = (max(m["t_open"] for m in meshes) - t0) / 1e9
    out["mesh_s"] = None if missing else (max(m["t_mesh"] for m in meshes) - t0) / 1e9
    out["mesh_missing"] = missing
    out["server_cpu_start_s"] = server_cpu() - cpu0
    out["workers_cpu_start_s"] = sum(m.get("cpu", 0.0) for m in meshes)
    # roster contacts pinged at open() because the server's presence probes said nothing of them
    out["start_pings"] = _total([m.get("pinged") for m in meshes])
    fl.say(f"{impl} N={n}: mesh {out['mesh_s']} s (missing {missing}), server CPU {out['server_cpu_start_s']:.2f} s")

    # --- fan-out
    pub.send("send", first=0, count=EVENTS, interval=INTERVAL)
    try:
        sent = (await pub.expect("sent", fl.left(EVENTS * INTERVAL + lim["events"])))["sent"]
    except WorkerError:  # the publisher is stuck in send_event(): what it sent so far
        pub.send("stop_sending")
        sent = (await pub.expect("sent", fl.left(30)))["sent"]
        out["fanout_stuck"] = True
    await settle(ws, fl, len(sent) * (n - 1), lim["events"])
    got = await collect(ws, fl)
    out["fanout"] = fanout(sent, got, n - 1)
    fl.say(f"{impl} N={n}: fan-out last of {n - 1} p50 {out['fanout']['last_p50_ms']} ms, "
           f"missing {out['fanout']['missing']}")  # fmt: skip

    # --- idle CPU and RSS
    pids = [w.pid for w in ws]
    c0 = sum(cpu_seconds(p) or 0.0 for p in pids) + server_cpu()
    t_idle = time.monotonic()
    await asyncio.sleep(3.0)
    c1 = sum(cpu_seconds(p) or 0.0 for p in pids) + server_cpu()
    out["idle_cpu_ms_per_s_per_module"] = 1000 * (c1 - c0) / (time.monotonic() - t_idle) / n
    usages = []
    for w in ws:
        w.send("usage")
        usages.append(await w.expect("usage", fl.left(30)))
    out["rss_mb_per_module"] = sum(u["rss"] for u in usages) / sum(u["modules"] for u in usages) / 2**20

    # --- server restart while events keep coming
    first = EVENTS
    series = int((lim["restart"] + 60) / RESTART_INTERVAL)
    pub.send("send", first=first, count=series, interval=RESTART_INTERVAL, wait=False)
    await asyncio.sleep(0.3)
    t_stop = time.monotonic_ns()
    await server.stop()
    t_stopped = time.monotonic_ns()
    for w in ws:  # bounded from the stop on: the server's own start counts too
        w.send("restart_watch", timeout=fl.left(lim["restart"] + 60))
    await server.start()
    t_back = time.monotonic_ns()
    out["server_stop_s"] = (t_stopped - t_stop) / 1e9
    out["server_down_s"] = (t_back - t_stop) / 1e9
    cpu0 = server_cpu()
    restarted = [await w.expect("restarted", fl.left(lim["restart"] + 90)) for w in ws]
    for w in ws:
        w.send("reach", t_back=t_back, timeout=fl.left(lim["restart"]))
    reach: dict[str, int | None] = {}
    for w in ws:
        reach.update((await w.expect("reach", fl.left(lim["restart"] + 30)))["first"])
    # keep sending a moment longer, so that late recoveries are visible as such, then stop
    await asyncio.sleep(1.0)
    if os.environ.get("PYOBS_FLEET_LOG"):
        for w in ws:
            w.send("debug")
    pub.send("stop_sending")
    sent_all = (await pub.expect("sent", fl.left(30)))["sent"]
    await settle(ws, fl, len(sent_all) * (n - 1), lim["restart"])  # fan-out events included
    got = await collect(ws, fl)
    out["server_cpu_restart_s"] = server_cpu() - cpu0
    out["restart"] = restart_figures(restarted, reach, [x for x in sent_all if x[0] >= first],
                                     got, t_back, names, publisher)  # fmt: skip
    r = out["restart"]
    pings = _total([x.get("pinged") for x in restarted])
    r["pings"] = pings - out["start_pings"] if pings is not None and out["start_pings"] is not None else None
    fl.say(f"{impl} N={n}: restart: reconnected {r['reconnect_s']} s, sees all {r['mesh_s']} s, "
           f"events reach all {r['events_s']} s, missing {r['missing']} of {r['expected']}")  # fmt: skip

    # --- late joiner
    late_name = "fleet-late"
    late = await fl.spawn(impl, f"n{n}-late", {"names": [late_name], "fleet": [late_name]}, env)
    await late.expect("ready", fl.left(120))
    for w in ws:
        w.send("watch", name=late_name, timeout=fl.left(lim["late"]))
    late.send("start", timeout=5.0)
    lm = await late.expect("mesh", fl.left(lim["late"] + 30))
    seen = [await w.expect("seen", fl.left(lim["late"] + 30)) for w in ws]
    late_missing = sum(s["missing"] for s in seen)
    out["late_s"] = None if late_missing else (max(s["t"] for s in seen) - lm["t0"]) / 1e9
    out["late_missing"] = late_missing
    out["late_pings"] = lm.get("pinged")
    late.send("quit")
    await late.wait_exit(15)
    fl.say(f"{impl} N={n}: late joiner seen by all after {out['late_s']} s")

    for w in ws:
        w.send("quit")
    await asyncio.gather(*(w.wait_exit(20) for w in ws))
    return out


async def settle(ws: list[Worker], fl: Fleet, expected: int, limit: float) -> None:
    """Wait until every event is in, or the count stopped growing for 3 s (bounded by ``limit``)."""
    end = time.monotonic() + limit
    last, since = -1, time.monotonic()
    while time.monotonic() < end:
        total = 0
        for w in ws:
            w.send("count")
            total += (await w.expect("count", fl.left(30)))["n"]
        if total >= expected:
            return
        if total != last:
            last, since = total, time.monotonic()
        elif time.monotonic() - since > 3.0:
            return
        await asyncio.sleep(0.5)


async def collect(ws: list[Worker], fl: Fleet) -> dict[str, dict[int, int]]:
    got: dict[str, dict[int, int]] = {}
    for w in ws:
        w.send("collect")
        msg = await w.expect("got", fl.left(30))
        for name, g in msg["got"].items():
            got[name] = {int(k): v for k, v in g.items()}
    return got


def fanout(sent: list[list[int]], got: dict[str, dict[int, int]], receivers: int) -> dict[str, Any]:
    last = []
    missing = 0
    for seq, t in sent:
        times = [g[seq] for g in got.values() if seq in g]
        missing += receivers - len(times)
        if len(times) == receivers and times:
            last.append((max(times) - t) / 1e6)
    last.sort()
    return {
        "events": len(sent),
        "deliveries": len(sent) * receivers,
        "missing": missing,
        "last_p50_ms": round(percentile(last, 50), 2) if last else None,
        "last_max_ms": round(last[-1], 2) if last else None,
    }


def restart_figures(
    restarted: list[dict[str, Any]],
    first_after: dict[str, int | None],
    sent: list[list[int]],
    got: dict[str, dict[int, int]],
    t_back: int,
    names: list[str],
    publisher: str,
) -> dict[str, Any]:
    back: dict[str, int] = {}
    mesh: dict[str, int] = {}
    for r in restarted:
        back.update(r["back"])
        mesh.update(r["mesh"])
    never_down = [n for r in restarted for n in r["never_down"]]
    receivers = [n for n in names if n != publisher]
    reach = [t for n in receivers if (t := first_after.get(n)) is not None]
    expected = len(sent) * len(receivers)
    missing = sum(1 for seq, _ in sent for n in receivers if seq not in got.get(n, {}))
    lost_by: dict[str, list[int]] = {}
    for seq, _ in sent:
        for n in receivers:
            if seq not in got.get(n, {}):
                lost_by.setdefault(n, []).append(seq)
    # which receivers lost what (seconds after the server was back), to tell a pattern
    detail = {
        n: [round((dict(sent)[q] - t_back) / 1e9, 2) for q in (seqs[0], seqs[-1])] + [len(seqs)]
        for n, seqs in sorted(lost_by.items(), key=lambda kv: -len(kv[1]))[:8]
    }

    def span(values: list[int], count: int) -> float | None:
        return round((max(values) - t_back) / 1e9, 3) if len(values) == count and values else None

    return {
        "reconnect_s": span(list(back.values()), len(names)),
        "mesh_s": span(list(mesh.values()), len(names)),
        "events_s": span(reach, len(receivers)),
        "reconnected": len(back),
        "meshed": len(mesh),
        "reached": len(reach),
        "never_down": len(never_down),
        "events": len(sent),
        "expected": expected,
        "missing": missing,
        "missing_detail": detail,
    }


def exponent(points: list[tuple[int, float | None]]) -> float | None:
    """Least-squares slope of log(value) over log(N)."""
    pts = [(math.log(n), math.log(v)) for n, v in points if v is not None and v > 0]
    if len(pts) < 2:
        return None
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    den = sum((x - mx) ** 2 for x, _ in pts)
    return round(sum((x - mx) * (y - my) for x, y in pts) / den, 2) if den else None


async def amain(args: argparse.Namespace) -> int:
    from pyobs.testing.ejabberd_server import SHAPER_RATE, EjabberdTestServer
    from pyobs.testing.xmpp_server import TestServer

    sizes = [10, 30] if args.fleet_profile == "quick" else [10, 30, 100]
    if args.fleet_300:
        sizes.append(300)
    if args.fleet_sizes:
        sizes = [int(s) for s in args.fleet_sizes.split(",")]
    impls = ["ours"] if args.no_core or core_python() is None else ["ours", "core"]
    out_dir = Path(args.out).resolve()
    logs = out_dir / "logs" if out_dir != BENCH else BENCH / ".out" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    if args.budget == 570.0:  # the transport benchmark's default: a fleet run needs more
        args.budget = 1500.0 if args.fleet_profile == "full" else 600.0
    fl = Fleet(args, logs)
    kind = args.fleet_server
    results: dict[str, Any] = {"sizes": sizes, "impls": impls, "per_process": PER_PROCESS, "runs": {},
                               "server": kind, "peer_check_interval": args.fleet_peer_check,
                               "ejabberd_shaper": (args.ejabberd_shaper or SHAPER_RATE) if kind == "ejabberd" else None,
                               "worker_nice": args.fleet_worker_nice,
                               }  # fmt: skip
    for n in sizes:
        users = [*names_for(n), "fleet-late"]
        server: TestServer | EjabberdTestServer = (
            EjabberdTestServer(users, shaper_rate=args.ejabberd_shaper or SHAPER_RATE)
            if kind == "ejabberd"
            else TestServer(users=users)
        )
        async with server, workers() as ws:
            fl.ws = ws
            fl.say(f"N={n}: {kind} on {server.address}")
            for impl in impls:
                if time.monotonic() > fl.deadline:
                    fl.say(f"budget used up: {impl} N={n} skipped")
                    continue
                out: dict[str, Any] = {"n": n}
                results["runs"].setdefault(impl, {})[str(n)] = out
                try:
                    await measure(fl, impl, n, server, out)
                except Exception as exc:  # the phases measured so far are kept
                    fl.say(f"{impl} N={n} failed: {type(exc).__name__}: {exc}")
                    out["failed"] = f"{type(exc).__name__}: {exc}"
                await ws.stop_all()
                if not server.running:
                    await server.start()
    results["exponents"] = {
        impl: {
            key: exponent([(int(n), _get(r, key)) for n, r in runs.items()])
            for key in ("mesh_s", "server_cpu_start_s", "late_s", "fanout.last_p50_ms", "restart.events_s")
        }
        for impl, runs in results["runs"].items()
    }
    from .fleet_report import write

    write(results, out_dir, args)
    return 0


def _total(counts: list[Any]) -> int | None:
    """The sum of the workers' counts, None unless every worker had one."""
    return sum(counts) if counts and all(isinstance(c, int) for c in counts) else None


def _get(d: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        if not isinstance(d, dict):
            return None
        d = d.get(part)  # type: ignore[assignment]
    return d
