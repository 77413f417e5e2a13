"""results.json → RESULTS.md: one table per transport (ours, pyobs-core, floor, ratios), goals, floors."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

X = "\u00d7"  # the multiplication sign of the ratios

#: (path in the metrics, label, unit kind): "time" is lower-better seconds, "rate" higher-better per second
CALL_ROWS: list[tuple[str, str, str]] = [
    ("call_rtt.p50", "call round trip p50 (sequential)", "time"),
    ("call_rtt.p99", "call round trip p99", "time"),
    ("throughput.per_s", "calls/s with 50 in flight", "rate"),
    ("throughput.p50", "call latency p50 with 50 in flight", "time"),
    ("cpu_per_call.caller", "CPU per sequential call: caller", "time"),
    ("cpu_per_call.callee", "CPU per sequential call: callee", "time"),
    ("cpu_per_call.server", "CPU per sequential call: server / bus daemon", "time"),
]
START_ROWS: list[tuple[str, str, str]] = [
    ("open.p50", "open() (module start) duration p50", "time"),
    ("visible_after_open.p50", "peer sees it, after its open() returned, p50 (< 0: before)", "time"),
    ("open_to_visible.p50", "open() called → visible to a peer, p50", "time"),
    ("spawn_to_ready.p50", "process start → module ready, p50", "time"),
    ("unknown_proxy_fail_s", "proxy() to a module not online fails after", "time"),
    ("import.p50", "import of the transport module (fresh interpreter), p50", "time"),
]


def rows(
    subscribers: list[int] | tuple[int, ...] = (1, 10), variants: tuple[str, ...] = ()
) -> list[tuple[str, str, str]]:
    """Every row of a transport table; the event rows depend on the subscriber counts measured."""
    ev: list[tuple[str, str, str]] = []
    for k in subscribers:
        if k == 1:
            ev += [
                ("event_1.every.p50", "event → 1 subscriber p50", "time"),
                ("event_1.every.p99", "event → 1 subscriber p99", "time"),
            ]
        else:
            ev += [
                (f"event_{k}.last.p50", f"event → {k} subscribers, last of {k}, p50", "time"),
                (f"event_{k}.every.p50", f"event → {k} subscribers, each delivery p50", "time"),
            ]
    for variant in variants:
        for k in subscribers:
            what = "1 subscriber" if k == 1 else f"{k} subscribers, last of {k},"
            path = f"{variant}_event_{k}." + ("every" if k == 1 else "last") + ".p50"
            ev.append((path, f"event → {what} p50 — {variant} floor", "time"))
    return CALL_ROWS + ev + START_ROWS


def get(metrics: dict[str, Any] | None, path: str) -> float | None:
    cur: Any = metrics
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    if isinstance(cur, int | float) and not isinstance(cur, bool) and math.isfinite(cur):
        return float(cur)
    return None


def fmt(value: float | None, kind: str) -> str:
    if value is None:
        return "—"
    if kind == "rate":
        return f"{value:,.0f}"
    if value < 1e-3:
        return f"{value * 1e6:.1f} µs"
    if value < 1.0:
        return f"{value * 1e3:.2f} ms"
    return f"{value:.2f} s"


def advantage(ours: float | None, other: float | None, kind: str) -> float | None:
    """How many times better ours is than ``other`` (>1: ours better)."""
    if ours is None or other is None or ours <= 0 or other <= 0:
        return None
    return other / ours if kind == "time" else ours / other


def cost(ours: float | None, floor: float | None, kind: str) -> float | None:
    """How many times the floor ours costs (≥1 normally)."""
    if ours is None or floor is None or ours <= 0 or floor <= 0:
        return None
    return ours / floor if kind == "time" else floor / ours


def ratio(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}{X}"


def check_goal(scen: dict[str, Any], goal: tuple[str, str, float, str]) -> tuple[bool | None, str]:
    """Goals are (metric, how, bound, text); how is ours<= (absolute), vs_core>= or vs_floor<= (ratios)."""
    path, how, bound, _ = goal
    kind = "rate" if path.endswith("per_s") else "time"
    ours = get(scen.get("ours"), path)
    if how == "ours<=":
        if ours is None:
            return None, "not measured"
        return ours <= bound, f"ours {fmt(ours, kind)}"
    if how == "vs_core>=":
        adv = advantage(ours, get(scen.get("core"), path), kind)
        return (None, "not measured") if adv is None else (adv >= bound, f"{adv:.2f}{X} better than pyobs-core")
    if how == "vs_floor<=":
        c = cost(ours, get(scen.get("floor"), path), kind)
        return (None, "not measured") if c is None else (c <= bound, f"{c:.2f}{X} the floor")
    return None, f"unknown goal type {how}"


def scenario_table(name: str, scen: dict[str, Any], subscribers: list[int]) -> list[str]:
    ours, core, floor = scen.get("ours"), scen.get("core"), scen.get("floor")
    lines = [
        f"### {scen.get('title', name)}",
        "",
        f"Floor: {scen.get('floor_name', '—')}.",
        "",
        "| metric | ours | pyobs-core 2.19.1 | floor | ours vs pyobs-core | ours ÷ floor |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    variants = tuple(sorted({k.rsplit("_event_", 1)[0] for k in (floor or {}) if "_event_" in k}))
    for path, label, kind in rows(subscribers, variants):
        o, c, f = get(ours, path), get(core, path), get(floor, path)
        if o is None and c is None and f is None:
            continue
        lines.append(
            f"| {label} | {fmt(o, kind)} | {fmt(c, kind)} | {fmt(f, kind)} "
            f"| {ratio(advantage(o, c, kind))} | {ratio(cost(o, f, kind))} |"
        )
    lost = [
        f"{who}: {int(get(m, f'event_{k}.lost') or 0)} of {int(get(m, f'event_{k}.events') or 0) * int(k)} "
        f"deliveries to {k} lost"
        for who, m in (("ours", ours), ("pyobs-core", core), ("floor", floor))
        for k in subscribers
        if get(m, f"event_{k}.lost")
    ]
    lines.append("")
    if scen.get("note"):
        lines += [scen["note"], ""]
    if lost:
        lines += ["Lost events: " + "; ".join(lost) + ".", ""]
    for impl, reason in scen.get("skipped", {}).items():
        lines += [f"- {impl}: not measured — {reason}"]
    for err in scen.get("errors", []):
        lines += [f"- error: {err}"]
    if scen.get("skipped") or scen.get("errors"):
        lines.append("")
    return lines


ORDER = ("local", "xmpp", "ejabberd", "dbus", "tcp")


def ordered(results: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Scenarios in the order they run (results.json has them sorted by name)."""
    scen = results.get("scenarios", {})
    names = [n for n in ORDER if n in scen] + sorted(n for n in scen if n not in ORDER)
    return [(n, scen[n]) for n in names]


def goals_table(results: dict[str, Any]) -> list[str]:
    import importlib

    rows = []
    for name, scen in ordered(results):
        try:
            goals = importlib.import_module(f"scenarios.{name}").GOALS
        except ImportError:
            continue
        for goal in goals:
            ok, detail = check_goal(scen, goal)
            mark = "not measured" if ok is None else ("**met**" if ok else "**MISSED**")
            rows.append(f"| {goal[3]} | {detail} | {mark} |")
    if not rows:
        return []
    return ["## Goals", "", "| goal | measured | |", "|---|---|---|", *rows, ""]


def markdown(results: dict[str, Any], analysis: str = "") -> str:
    meta = results.get("meta", {})
    counts = meta.get("counts", {})
    lines = [
        "# Benchmark results",
        "",
        f"- date: {meta.get('date')}; commit {meta.get('commit')}; profile `{meta.get('profile')}`, "
        f"{meta.get('seconds')} s",
        f"- machine: {meta.get('nproc')} CPUs, {meta.get('cpu')}; Python {meta.get('python')}; {meta.get('platform')}",
        f"- counts: {counts}",
        f"- prosody garbage collector pacing: {meta.get('prosody_gc', 'prosody default')}",
        "",
        "Ratios: *ours vs pyobs-core* is how many times better ours is (pyobs-core ÷ ours for times, "
        "ours ÷ pyobs-core for rates; > 1 = ours better). *ours ÷ floor* is what our layer costs over the raw "
        "library on the same server or bus (1 = free). Absolute times on shared machines are noisy; ratios "
        "measured in one run less so.",
        "",
    ]
    lines += goals_table(results)
    lines += ["## Transports", ""]
    for name, scen in ordered(results):
        if name == "tcp":
            continue
        lines += scenario_table(name, scen, list(counts.get("subscribers", (1, 10))))
    lines += [
        "## Floors",
        "",
        "| floor | round trip p50 | p99 | p50, one every 20 ms | calls/s with 50 in flight |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, scen in ordered(results):
        f = scen.get("floor")
        if f:
            lines.append(
                f"| {scen.get('floor_name', name)} | {fmt(get(f, 'call_rtt.p50'), 'time')} "
                f"| {fmt(get(f, 'call_rtt.p99'), 'time')} | {fmt(get(f, 'paced_rtt.p50'), 'time')} "
                f"| {fmt(get(f, 'throughput.per_s'), 'rate')} |"
            )
    lines.append("")
    tcp = results.get("scenarios", {}).get("tcp", {}).get("floor") or {}
    if "oneway_direct" in tcp:
        lines += [
            "What any event path costs on this machine: one-way TCP messages between processes, one every",
            "20 ms (as the events are sent), straight to the subscriber and through a relay process that only",
            "forwards them (the least a server in the middle adds):",
            "",
            "| one-way, one every 20 ms | p50 | p99 |",
            "|---|---:|---:|",
        ]
        paths = (("oneway_direct", "publisher → subscriber"), ("oneway_relay", "publisher → relay → subscriber"))
        for key, label in paths:
            lines.append(f"| {label} | {fmt(get(tcp, key + '.p50'), 'time')} | {fmt(get(tcp, key + '.p99'), 'time')} |")
        lines.append("")
    from .fleet_report import section_from  # the fleet run's table is kept when this file is rewritten

    fleet = section_from(Path(__file__).resolve().parent.parent)
    if fleet:
        lines += [fleet]
    if analysis:
        lines += ["## Analysis (hand-written: bench/ANALYSIS.md)", "", analysis.strip(), ""]
    return "\n".join(lines)


def validate(results: dict[str, Any]) -> list[str]:
    """Problems with a result set (used by --smoke): errors, and missing or non-positive key figures."""
    problems = []
    if not results.get("scenarios"):
        problems.append("no scenarios ran")
    for name, scen in results.get("scenarios", {}).items():
        problems += [f"{name}: {e}" for e in scen.get("errors", [])]
        for who in ("ours", "core", "floor"):
            m = scen.get(who)
            if m is None:
                continue
            need = ["call_rtt.p50", "throughput.per_s"]
            ks = results.get("meta", {}).get("counts", {}).get("subscribers", (1, 10))
            if who != "floor":
                need += ["spawn_to_ready.p50", "import.p50"]
                need += [f"event_{k}.every.p50" for k in ks] + [f"event_{k}.last.p50" for k in ks]
            for path in need:
                v = get(m, path)
                if v is None or v <= 0:
                    problems.append(f"{name}/{who}: {path} missing or not positive ({v})")
    return problems
