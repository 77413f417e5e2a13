"""The benchmark driver: ``bench/run`` (see bench/README.md)."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

from . import report
from .common import summary
from .procs import WORKER, Worker, Workers, watch_cpu, workers
from .roles import event_stats

BENCH = Path(__file__).resolve().parent.parent
REPO = BENCH.parent
#: where pyobs-core 2.19.1 lives (PYOBS_CORE_VENV, as for bench/setup_pyobs_core.sh and the fleet bench)
CORE_VENV = Path(os.environ.get("PYOBS_CORE_VENV") or BENCH / ".venvs" / "pyobs-core")
#: every transport scenario, in the order they run
SCENARIOS = ("local", "xmpp", "ejabberd", "dbus", "tcp")


@dataclass(frozen=True)
class Profile:
    """How much to measure. Every loop is also bounded in time (see the roles)."""

    calls: int
    tp_calls_inproc: int
    tp_calls_remote: int
    inflight: int
    events_inproc: int
    events_remote: int
    event_interval: float
    subscribers: tuple[int, ...]
    starts: int
    imports: int
    visible_repeats: int
    warmup: int
    #: measurements of calls and events are repeated, alternating ours, pyobs-core and the floor;
    #: the medians are reported
    rounds_inproc: int
    rounds_calls: int
    rounds_events: int


PROFILES = {
    "full": Profile(1000, 20000, 3000, 50, 2000, 300, 0.02, (1, 10), 3, 5, 20, 200, 5, 5, 2),
    "quick": Profile(200, 2000, 500, 50, 200, 50, 0.02, (1, 10), 1, 2, 5, 50, 1, 1, 1),
    "smoke": Profile(20, 100, 100, 50, 20, 20, 0.02, (1, 3), 1, 1, 2, 10, 1, 1, 1),
}


class Run:
    """One benchmark run: profile, interpreters, output places, the time budget."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.profile_name: str = args.profile
        self.profile = PROFILES[args.profile]
        if args.calls:  # e.g. for a profile with enough samples: --quick --calls 10000
            self.profile = replace(self.profile, calls=args.calls)
        self.out = Path(args.out).resolve()
        # logs never go into the committed bench/ directory
        self.logs = (BENCH / ".out" if self.out == BENCH else self.out) / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.deadline: float = time.monotonic() + float(args.budget)
        self.core_python: str | None = None
        self.ws: Workers | None = None
        self.verbose: bool = args.verbose
        self.pyspy: bool = args.pyspy
        #: prosody with its own GC pacing instead of the tuned one docs/xmpp.md recommends
        self.prosody_gc: bool = args.prosody_gc
        #: c2s shaper of the ejabberd scenario in bytes/s (None: docs/xmpp.md's)
        self.ejabberd_shaper: int | None = args.ejabberd_shaper
        self._n = 0

    # --- time
    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def timeout(self, seconds: float) -> float:
        """A wait of at most ``seconds``, never beyond the run's budget (but at least 1 s)."""
        return max(1.0, min(seconds, self.remaining()))

    # --- parameters for the roles
    def inproc_params(self) -> dict[str, Any]:
        p = self.profile
        return {
            "calls": p.calls,
            "tp_calls": p.tp_calls_inproc,
            "inflight": p.inflight,
            "events": p.events_inproc,
            "subscribers": list(p.subscribers),
            "visible_repeats": p.visible_repeats,
            "warmup": p.warmup,
            "event_warmup": min(p.warmup, 50),
        }

    def remote_params(self) -> dict[str, Any]:
        p = self.profile
        return {"calls": p.calls, "tp_calls": p.tp_calls_remote, "inflight": p.inflight, "warmup": p.warmup}

    # --- processes
    def python(self, impl: str) -> tuple[str, dict[str, str]]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONDONTWRITEBYTECODE"] = "0"
        if impl == "ours":
            env["PYTHONPATH"] = str(REPO)  # this checkout, whatever is installed
            return sys.executable, env
        if self.core_python is None:
            raise RuntimeError("pyobs-core venv is not set up")
        return self.core_python, env

    async def spawn(
        self,
        label: str,
        impl: str,
        transport: str,
        role: str,
        params: dict[str, Any],
        env: dict[str, Any] | None = None,
    ) -> Worker:
        """Start a worker; it is stopped when the current scenario phase ends."""
        assert self.ws is not None, "spawn() outside of a phase"
        python, penv = self.python(impl)
        self._n += 1
        spec = {
            "role": role,
            "impl": impl,
            "transport": transport,
            "params": params,
            "env": env if env is not None else getattr(self, "env", {}),
            "max_seconds": max(10.0, min(300.0, self.remaining() + 10.0)),
        }
        argv = [python, str(WORKER), json.dumps(spec)]
        log = self.logs / f"{self._n:03d}-{transport}-{impl}-{label}.log"
        if self.pyspy and role not in ("import", "starter"):
            # sampled from outside; --nonblocking so the worker is never paused
            out = log.with_suffix(".pyspy")
            argv = ["py-spy", "record", "--nonblocking", "-r", "2000", "-f", "raw", "-o", str(out), "--", *argv]
        return await self.ws.start(Worker(f"{transport}/{impl}/{label}", argv, penv, self.out, log))

    def server_pid(self) -> int | None:
        """The pid of the scenario's server or bus daemon, if it has one (``server_pid`` in its env)."""
        pid = getattr(self, "env", {}).get("server_pid")
        return int(pid) if pid else None

    def watch_cpu(self, caller: Worker, callee: Worker, into: dict[str, float]) -> None:
        """For floors: CPU per sequential call of callee and server, stored into ``into``."""
        watch_cpu(caller, {"callee": callee.pid, "server": self.server_pid()}, into)

    def say(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- phases


async def phase_inproc(run: Run, scen: ModuleType, impl: str) -> dict[str, Any]:
    w = await run.spawn("inproc", impl, scen.NAME, "inproc", run.inproc_params())
    res = await w.expect("result", run.timeout(180))
    return {k: v for k, v in res.items() if k != "kind"}


async def phase_calls(run: Run, scen: ModuleType, impl: str) -> dict[str, Any]:
    callee = await run.spawn("callee", impl, scen.NAME, "callee", {"name": "bench-callee"})
    await callee.expect("ready", run.timeout(90))
    params = {**run.remote_params(), "name": "bench-caller", "target": "bench-callee"}
    caller = await run.spawn("caller", impl, scen.NAME, "caller", params)
    cpu: dict[str, float] = {}
    watch_cpu(caller, {"callee": callee.pid, "server": run.server_pid()}, cpu)
    res = await caller.expect("result", run.timeout(180))
    out = {k: v for k, v in res.items() if k != "kind"}
    out.setdefault("cpu_per_call", {}).update(cpu)
    return out


async def phase_events(
    run: Run,
    scen: ModuleType,
    impl: str,
    k: int,
    sub_role: str = "subscriber",
    pub_role: str = "publisher",
) -> dict[str, Any]:
    """Event latency to ``k`` subscribers, each in its own process (the floors use it with their roles)."""
    p = run.profile
    names = [f"bench-sub{k}-{i}" for i in range(k)]
    subs = [await run.spawn(n, impl, scen.NAME, sub_role, {"name": n}) for n in names]
    try:
        for s in subs:
            await s.expect("ready", run.timeout(120))
        interval = getattr(scen, "EVENT_INTERVAL", p.event_interval)
        params = {"name": f"bench-pub{k}", "subscribers": names, "events": p.events_remote, "interval": interval}
        pub = await run.spawn(f"pub{k}", impl, scen.NAME, pub_role, params)
        for s in subs:
            await s.expect("warm", run.timeout(60))
        pub.send("go")
        sent = await pub.expect("result", run.timeout(60 + p.events_remote * interval * 2))
        received = []
        for s in subs:
            s.send("quit")
            received.append({int(a): int(b) for a, b in (await s.expect("result", run.timeout(30)))["received"]})
        await pub.stop()
        return event_stats({int(a): int(b) for a, b in sent["sent"]}, received)
    finally:
        await asyncio.gather(*(s.stop() for s in subs))


async def phase_start(run: Run, scen: ModuleType, impl: str) -> dict[str, Any]:
    """Process start → ready, and (across processes) open() → visible to a peer already online."""
    observer, unknown = None, None
    if not scen.IN_PROCESS:
        observer = await run.spawn("observer", impl, scen.NAME, "observer", {"name": "bench-observer"})
        unknown = (await observer.expect("ready", run.timeout(90)))["unknown_proxy_fail_s"]
    spawn, interp, imports, opens, after, total = [], [], [], [], [], []
    for r in range(run.profile.starts):
        name = f"bench-start{r}"
        w = await run.spawn(name, impl, scen.NAME, "starter", {"name": name})
        ready = await w.expect("ready", run.timeout(90))
        spawn.append((ready["t"] - w.t_spawn) * 1e-9)
        interp.append((ready["t_main"] - w.t_spawn) * 1e-9)
        imports.append((ready["t_imported"] - ready["t_import0"]) * 1e-9)
        opens.append((ready["t"] - ready["t_open0"]) * 1e-9)
        if observer is not None:
            while True:
                seen = await observer.expect("seen", run.timeout(30))
                if seen["name"] == name:
                    break
            after.append((seen["t"] - ready["t"]) * 1e-9)
            total.append((seen["t"] - ready["t_open0"]) * 1e-9)
        await w.stop()
    out: dict[str, Any] = {
        "spawn_to_ready": summary(spawn),
        "spawn_detail": {
            "interpreter": summary(interp),
            "imports": summary(imports),
            "open": summary(opens),
        },
    }
    if observer is not None:
        out.update(open=summary(opens), visible_after_open=summary(after), open_to_visible=summary(total))
        out["unknown_proxy_fail_s"] = unknown
    return out


async def phase_import(run: Run, scen: ModuleType, impl: str) -> dict[str, Any]:
    times = []
    for i in range(run.profile.imports):
        w = await run.spawn(f"import{i}", impl, scen.NAME, "import", {})
        times.append((await w.expect("result", run.timeout(60)))["seconds"])
        await w.stop()
    return {"import": {"module": scen.IMPORT[impl], **summary(times)}}


def median_of(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge the results of several rounds: the median of every number, the first of anything else."""
    first = rounds[0]
    out: dict[str, Any] = {}
    for key, value in first.items():
        values = [r.get(key) for r in rounds]
        if isinstance(value, dict):
            out[key] = median_of([v for v in values if isinstance(v, dict)])
        elif isinstance(value, int | float) and not isinstance(value, bool):
            nums = sorted(v for v in values if isinstance(v, int | float))
            if key in ("p50", "per_s") and len(rounds) > 1:  # the spread, to judge the noise
                out[f"{key}_rounds"] = [v for v in values if isinstance(v, int | float)]
            out[key] = nums[len(nums) // 2] if len(nums) % 2 else (nums[len(nums) // 2 - 1] + nums[len(nums) // 2]) / 2
        else:
            out[key] = value
    if len(rounds) > 1:
        out["rounds"] = len(rounds)
    return out


async def phase(run: Run, label: str, coro_fn: Any, *args: Any) -> tuple[dict[str, Any], str | None]:
    """Run one measurement with its own set of workers (all stopped afterwards); errors are recorded."""
    if run.remaining() < 5:
        return {}, f"{label}: skipped, time budget used up"
    run.say(label)
    async with workers() as ws:
        run.ws = ws
        try:
            return await coro_fn(run, *args), None
        except Exception as exc:
            if run.verbose:
                traceback.print_exc()
            return {}, f"{label}: {type(exc).__name__}: {exc}"
        finally:
            run.ws = None


async def run_scenario(run: Run, scen: ModuleType, what: set[str]) -> dict[str, Any]:
    result: dict[str, Any] = {
        "title": scen.TITLE,
        "floor_name": scen.FLOOR,
        "note": getattr(scen, "NOTE", ""),
        "errors": [],
        "skipped": {},
    }
    todo = [i for i in scen.IMPLS if i in what]
    for impl in list(todo):
        reason = scen.available(impl) or (
            "pyobs-core venv not set up" if impl == "core" and run.core_python is None else None
        )
        if reason:
            result["skipped"][impl] = reason
            todo.remove(impl)
    do_floor = "floor" in what and hasattr(scen, "floor")
    if not todo and not do_floor:
        return result
    p = run.profile
    floor_events: dict[str, tuple[str, str]] | None = getattr(scen, "FLOOR_EVENT_ROLES", None)
    async with scen.environment(run) as env:
        run.env = env  # type: ignore[attr-defined]
        # Rounds alternate ours, pyobs-core and the floor against drift of the machine's load; for
        # each part (calls, events to k) the medians over its rounds are reported.
        parts: dict[str, dict[str, list[dict[str, Any]]]] = {who: {} for who in [*todo, "floor"]}

        async def step(who: str, part: str, label: str, fn: Any, *args: Any) -> None:
            out, err = await phase(run, f"{scen.NAME}/{who}: {label}", fn, *args)
            if err:
                result["errors"].append(err)
                run.say("  " + err)
            if out:
                parts[who].setdefault(part, []).append(out)

        def tag(r: int, n: int) -> str:
            return f", round {r + 1}/{n}" if n > 1 else ""

        async def floor_calls(run_: Run) -> dict[str, Any]:
            return dict(await scen.floor(run_, env))

        if scen.IN_PROCESS:
            for r in range(p.rounds_inproc):
                for impl in todo:
                    await step(impl, "all", "in-process" + tag(r, p.rounds_inproc), phase_inproc, scen, impl)
                if do_floor:
                    await step("floor", "all", "floor" + tag(r, p.rounds_inproc), floor_calls)
        else:
            for r in range(p.rounds_calls):
                for impl in todo:
                    await step(impl, "all", "calls" + tag(r, p.rounds_calls), phase_calls, scen, impl)
                if do_floor:
                    await step("floor", "all", "floor calls" + tag(r, p.rounds_calls), floor_calls)
            for k in p.subscribers:
                for r in range(p.rounds_events):
                    label = f"events to {k}" + tag(r, p.rounds_events)
                    for impl in todo:
                        await step(impl, f"event_{k}", label, phase_events, scen, impl, k)
                    if do_floor and floor_events:
                        # the first variant is "the" event floor, others are reported next to it
                        for n, (variant, roles) in enumerate(floor_events.items()):
                            part = f"event_{k}" if n == 0 else f"{variant}_event_{k}"
                            flabel = f"floor ({variant}) {label}"
                            await step("floor", part, flabel, phase_events, scen, "ours", k, *roles)
        for who in [*todo, "floor"]:
            if who == "floor" and not do_floor:
                continue
            metrics = median_of(parts[who].pop("all")) if "all" in parts[who] else {}
            for part, outs in parts[who].items():
                metrics[part] = median_of(outs)
            if who != "floor":
                for label, fn in (("start", phase_start), ("import", phase_import)):
                    out, err = await phase(run, f"{scen.NAME}/{who}: {label}", fn, scen, who)
                    metrics.update(out)
                    if err:
                        result["errors"].append(err)
                        run.say("  " + err)
            result[who] = metrics
        run.env = {}  # type: ignore[attr-defined]
    return result


# ---------------------------------------------------------------------------- main


def machine() -> dict[str, Any]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = "?"
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "pyobs"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        if dirty:  # the workers measure the working tree
            commit += " + uncommitted changes in pyobs/"
    except (OSError, subprocess.SubprocessError):
        pass
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "commit": commit,
    }


def setup_core(run: Run, args: argparse.Namespace) -> None:
    python = CORE_VENV / "bin" / "python"
    if args.no_core:
        return
    if args.profile != "smoke":  # smoke never installs anything; it uses the venv if it is there
        script = BENCH / "setup_pyobs_core.sh"
        run.say("pyobs-core venv: bench/setup_pyobs_core.sh")
        try:
            subprocess.run(["bash", str(script)], check=True, timeout=600, stdout=subprocess.DEVNULL)
        except (OSError, subprocess.SubprocessError) as exc:
            run.say(f"pyobs-core venv could not be set up ({exc}); measuring without it")
            return
    if python.exists():
        run.core_python = str(python)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="bench/run",
        description="Benchmark our transports against pyobs-core 2.19.1 and the raw floors; writes RESULTS.md + json.",
    )
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="profile", action="store_const", const="quick", help="small counts (dev)")
    mode.add_argument("--smoke", dest="profile", action="store_const", const="smoke", help="tiny counts + checks")
    ap.set_defaults(profile="full")
    ap.add_argument("--only", choices=(*SCENARIOS[:-1], "floors"), action="append", help="repeatable")
    ap.add_argument("--no-core", action="store_true", help="do not measure pyobs-core")
    ap.add_argument("--out", help="output directory (default: bench/ for a full run, else bench/.out/)")
    ap.add_argument("--calls", type=int, help="sequential calls per measurement (default: the profile's)")
    ap.add_argument("--budget", type=float, default=570.0, help="seconds for the whole run (default 570)")
    ap.add_argument("--pyspy", action="store_true", help="record a py-spy profile of every worker (<out>/logs/*.pyspy)")
    ap.add_argument("--report", action="store_true", help="only re-render RESULTS.md from results.json")
    ap.add_argument(
        "--prosody-gc", action="store_true",
        help="keep prosody's own garbage collector pacing (Debian's default), not the one docs/xmpp.md recommends",
    )  # fmt: skip
    ap.add_argument(
        "--ejabberd-shaper", type=int, default=None, metavar="BYTES_PER_S",
        help="c2s shaper of the ejabberd scenario (default: docs/xmpp.md's, 1,000,000)",
    )  # fmt: skip
    ap.add_argument("-v", "--verbose", action="store_true")
    fleet = ap.add_argument_group("fleet benchmark (issue 18)")
    fleet.add_argument("--fleet", action="store_true", help="fleet of N = 10, 30, 100 modules (with --quick: 10, 30)")
    fleet.add_argument("--fleet-300", action="store_true", help="with --fleet: N = 300 as well")
    fleet.add_argument("--fleet-sizes", help="with --fleet: these sizes instead, e.g. 10,30")
    fleet.add_argument("--fleet-server", choices=("prosody", "ejabberd"), default="prosody",
                       help="with --fleet: the server (ejabberd: fleet-ejabberd.json and its own section)")
    fleet.add_argument("--fleet-peer-check", type=float, default=None, metavar="SECONDS",
                       help="with --fleet: ours' peer_check_interval (0: off; default: the comm's)")
    fleet.add_argument("--fleet-worker-nice", type=int, default=0, metavar="K",
                       help="with --fleet: run the workers at nice K, the server at 0 (as on a machine of its own)")
    args = ap.parse_args(argv)
    args.fleet_profile = "quick" if args.profile in ("quick", "smoke") else "full"
    if args.out is None and args.fleet:
        args.out = str(BENCH if args.profile == "full" and not args.fleet_sizes else BENCH / ".out")
    if args.out is None:
        args.out = str(BENCH if args.profile == "full" and (not args.only or args.report) else BENCH / ".out")
    return args


def analysis_text() -> str:
    path = BENCH / "ANALYSIS.md"
    return path.read_text() if path.exists() else ""


def rerender(out: Path) -> int:
    """--report: RESULTS.md again from results.json (e.g. after editing ANALYSIS.md)."""
    results = json.loads((out / "results.json").read_text())
    (out / "RESULTS.md").write_text(report.markdown(results, analysis_text()))
    print(f"wrote {out / 'RESULTS.md'}")
    return 0


async def amain(args: argparse.Namespace) -> int:
    run = Run(args)
    setup_core(run, args)
    results: dict[str, Any] = {
        "meta": {
            **machine(),
            "profile": run.profile_name,
            "counts": asdict(run.profile),
            "prosody_gc": "prosody's default" if run.prosody_gc else "tuned (docs/xmpp.md)",
            "ejabberd_shaper": run.ejabberd_shaper or "docs/xmpp.md's (1,000,000 B/s)",
        },
        "scenarios": {},
    }
    for name in SCENARIOS:
        if args.only and name not in args.only and "floors" not in args.only:
            continue
        what = {"ours", "core", "floor"}
        if args.only and name not in args.only:  # only because of "floors"
            what = {"floor"}
        if args.no_core:
            what.discard("core")
        try:
            scen = importlib.import_module(f"scenarios.{name}")
        except ImportError as exc:
            results["scenarios"][name] = {"title": name, "errors": [f"no scenario file: {exc}"]}
            continue
        try:
            results["scenarios"][name] = await run_scenario(run, scen, what)
        except Exception as exc:  # an environment that does not come up
            traceback.print_exc()
            results["scenarios"][name] = {"title": scen.TITLE, "errors": [f"{type(exc).__name__}: {exc}"]}
    results["meta"]["seconds"] = round(args.budget - run.remaining(), 1)
    results["meta"]["core"] = run.core_python is not None
    (run.out / "results.json").write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    md = report.markdown(results, analysis_text())
    (run.out / "RESULTS.md").write_text(md)
    print(md)
    problems = report.validate(results)
    if args.profile == "smoke":
        for p in problems:
            print("SMOKE:", p, file=sys.stderr)
        return 1 if problems else 0
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        return rerender(Path(args.out).resolve())
    if args.fleet:
        from . import fleet

        return asyncio.run(fleet.amain(args))
    return asyncio.run(amain(args))
