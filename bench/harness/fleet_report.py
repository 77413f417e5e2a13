"""The fleet table: ``fleet.json`` → the "Fleet" section of RESULTS.md (between markers, so the rest of
RESULTS.md, written by the transport benchmark, stays as it is; report.markdown keeps the section)."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

BEGIN = "<!-- fleet: written by bench/run --fleet -->"
END = "<!-- /fleet -->"
#: the ejabberd run's section (``--fleet-server ejabberd``), next to prosody's
BEGIN_EJABBERD = "<!-- fleet-ejabberd: written by bench/run --fleet --fleet-server ejabberd -->"
END_EJABBERD = "<!-- /fleet-ejabberd -->"


def markers(server: str) -> tuple[str, str]:
    return (BEGIN_EJABBERD, END_EJABBERD) if server == "ejabberd" else (BEGIN, END)


def json_name(server: str) -> str:
    return "fleet-ejabberd.json" if server == "ejabberd" else "fleet.json"

GOALS = [
    ("N = 100 start to full mesh ≤ 2 s", "100", "mesh_s", 2.0),
    ("N = 100 server CPU for the start ≤ 2 s", "100", "server_cpu_start_s", 2.0),
    ("late joiner into 100 seen by all ≤ 0.3 s", "100", "late_s", 0.3),
]


def _get(d: Any, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(d, dict):
            return None
        d = d.get(part)
    return d


def _fmt(v: Any, unit: str = "", nd: int = 2) -> str:
    if v is None:
        return "never"
    if isinstance(v, float):
        return f"{v:.{nd}f}{unit}"
    return f"{v}{unit}"


def _ratio(ours: Any, core: Any) -> str:
    if isinstance(ours, int | float) and isinstance(core, int | float) and ours > 0:
        return f"{core / ours:.1f}x"
    if isinstance(ours, int | float) and core is None:
        return "∞ (core: never)"
    return "-"


#: counts only ours has (pyobs-core, and ours before they were counted: "-")
COUNTS = ("start_pings", "late_pings", "restart.pings")

ROWS = [
    ("fleet start → full mesh", "mesh_s", " s"),
    ("server CPU for the start", "server_cpu_start_s", " s"),
    ("contacts pinged at open() (the presence probes said nothing)", "start_pings", ""),
    ("workers' CPU for the start (all modules)", "workers_cpu_start_s", " s"),
    ("late joiner seen by all", "late_s", " s"),
    ("late joiner: contacts pinged at open()", "late_pings", ""),
    ("event → last of N-1, p50", "fanout.last_p50_ms", " ms"),
    ("fan-out deliveries missing", "fanout.missing", ""),
    ("restart: all reconnected", "restart.reconnect_s", " s"),
    ("restart: all see all", "restart.mesh_s", " s"),
    ("restart: events reach all", "restart.events_s", " s"),
    ("restart: deliveries missing", "restart.missing", ""),
    ("restart: contacts pinged going online again", "restart.pings", ""),
    ("server CPU after the restart", "server_cpu_restart_s", " s"),
    ("RSS per module", "rss_mb_per_module", " MB"),
    ("idle CPU per module (workers + server)", "idle_cpu_ms_per_s_per_module", " ms/s"),
]


def markdown(results: dict[str, Any], before: dict[str, Any] | None = None) -> str:
    runs = results["runs"]
    ours, core = runs.get("ours", {}), runs.get("core", {})
    old = (before or {}).get("runs", {}).get("ours", {})
    sizes = [str(n) for n in results["sizes"]]
    server = results.get("server", "prosody")
    begin, end = markers(server)
    check = results.get("peer_check_interval")
    lines = [
        begin,
        "## Fleet (bench/run --fleet)"
        if server == "prosody"
        else f"## Fleet on {server} (bench/run --fleet --fleet-server {server})",
        "",
        f"{results.get('date', '')}, commit {results.get('commit', '?')}; {results['per_process']} modules per "
        + (f"process; ours' peer check every {check} s (0: off)" if check is not None else "process")
        + f", each with its own connection; one {server} per N, ours and pyobs-core 2.19.1 on it one after "
        "the other. Module 0 publishes, the others handle its events. \"never\": not within the phase's limit. "
        "Ratio: pyobs-core ÷ ours (> 1: ours better). Restart deliveries: pyobs-core's publisher waits in "
        "send_event() while the server is away, so it sends few events in that phase (\"of\" counts what was sent).",
        "",
        f"Before: ours at {before.get('commit', '?')} ({before.get('date', '')}), bench/fleet-before.json; "
        "another run, so compare it with care." if before else "",
        "",
        "| figure | N | ours | pyobs-core | ratio | ours before |",
        "|---|---|---|---|---|---|",
    ]
    for label, key, unit in ROWS:
        for n in sizes:
            o, c = ours.get(n), core.get(n)
            if o is None and c is None:
                continue
            ov = _get(o, key) if o else None
            cv = _get(c, key) if c else None
            oerr = o is not None and ("error" in o or ("failed" in o and _get(o, key) is None))
            cerr = c is not None and ("error" in c or (_get(c, key) is None and "failed" in c))
            nd = 3 if key.startswith("idle") else 2
            os_ = "error" if oerr else ("-" if o is None else _fmt(ov, unit, nd))
            cs = "error" if cerr else ("-" if c is None else _fmt(cv, unit, nd))
            ratio = _ratio(ov, cv) if key not in ("fanout.missing", "restart.missing", *COUNTS) and c else "-"
            if key in COUNTS:
                os_ = "-" if ov is None and not oerr else os_
                cs = "-" if cv is None and not cerr else cs
            if key.endswith("missing"):
                exp = "fanout.deliveries" if key.startswith("fanout") else "restart.expected"
                os_ = f"{os_} of {_get(o, exp)}" if o and not oerr else os_
                cs = f"{cs} of {_get(c, exp)}" if c and not cerr else cs
            b = old.get(n)
            bs = "-" if b is None else ("error" if "error" in b else _fmt(_get(b, key), unit, nd))
            bs = "-" if key in COUNTS and b is not None and _get(b, key) is None else bs
            lines.append(f"| {label} | {n} | {os_} | {cs} | {ratio} | {bs} |")
    failures = [f"{impl} N={n}: {r['failed']}" for impl, rs in runs.items() for n, r in rs.items() if "failed" in r]
    if failures:
        lines += ["", "Phases that failed (\"error\" above; the earlier phases of that run are shown): "
                  + "; ".join(failures)]  # fmt: skip
    lines += ["", "Growth with N (least-squares exponent of log figure over log N, all sizes measured):", ""]
    lines += ["| figure | ours | pyobs-core |", "|---|---|---|"]
    ex = results.get("exponents", {})
    for key, label in (
        ("mesh_s", "start → full mesh"),
        ("server_cpu_start_s", "server CPU for the start"),
        ("late_s", "late joiner"),
        ("fanout.last_p50_ms", "event → last of N-1"),
        ("restart.events_s", "restart: events reach all"),
    ):
        lines.append(
            f"| {label} | {_fmt(ex.get('ours', {}).get(key))} | {_fmt(ex.get('core', {}).get(key))} |"
        )
    lines += ["", "Goals (issue 18):", "", "| goal | measured | met |", "|---|---|---|"]
    for label, n, key, limit in GOALS:
        v = _get(ours.get(n), key) if ours.get(n) else None
        if n not in ours:
            lines.append(f"| {label} | not measured | - |")
            continue
        met = "yes" if isinstance(v, int | float) and v <= limit else "no"
        lines.append(f"| {label} | {_fmt(v, ' s')} | {met} |")
    r100 = _get(ours.get("100"), "restart") if ours.get("100") else None
    if r100:
        rec, ev = r100.get("reconnect_s"), r100.get("events_s")
        ok = isinstance(rec, float) and isinstance(ev, float) and ev <= 1.5 * rec
        lines.append(f"| restart of 100: events reach all ≤ 1.5 x reconnect all | {_fmt(ev, ' s')} vs "
                     f"{_fmt(rec, ' s')} | {'yes' if ok else 'no'} |")  # fmt: skip
    e = ex.get("ours", {}).get("mesh_s")
    if e is not None and _get(ours.get("100"), "mesh_s") is None:  # a fit without N = 100 shows nothing
        lines.append(f"| start exponent ≤ 1.3 (10 → 100) | {e} without N = 100 (never meshed) | no |")
    elif e is not None:
        lines.append(f"| start exponent ≤ 1.3 (10 → 100) | {e} | {'yes' if e <= 1.3 else 'no'} |")
    lines += ["", end, ""]
    return "\n".join(lines)


def merge_into(text: str, section: str, server: str = "prosody") -> str:
    """RESULTS.md with the server's fleet section replaced (or appended)."""
    begin, end_marker = markers(server)
    start, end = text.find(begin), text.find(end_marker)
    if start >= 0 and end > start:
        return text[:start] + section.rstrip("\n") + text[end + len(end_marker) :]
    return text.rstrip("\n") + "\n\n" + section


def _before(bench_dir: Path) -> dict[str, Any] | None:
    path = bench_dir / "fleet-before.json"
    try:
        return json.loads(path.read_text()) if path.exists() else None
    except ValueError:
        return None


def section_from(bench_dir: Path) -> str:
    """The fleet sections for report.markdown, from bench/fleet.json and bench/fleet-ejabberd.json
    (empty if there is none)."""
    sections = []
    for server in ("prosody", "ejabberd"):
        path = bench_dir / json_name(server)
        if not path.exists():
            continue
        try:
            # "before" was measured on prosody only
            sections.append(markdown(json.loads(path.read_text()), _before(bench_dir) if server == "prosody" else None))
        except (ValueError, KeyError, TypeError):
            continue
    return "\n".join(sections)


def write(results: dict[str, Any], out: Path, args: argparse.Namespace) -> None:
    import subprocess

    results["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    try:
        repo = Path(__file__).resolve().parent.parent.parent
        commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--", "pyobs"],
                               capture_output=True, text=True, timeout=10).stdout.strip()  # fmt: skip
        results["commit"] = commit + (" + uncommitted changes in pyobs/" if dirty else "")
        if os.environ.get("PYOBS_FLEET_OURS"):
            results["commit"] = f"pyobs from {os.environ['PYOBS_FLEET_OURS']} (bench {commit})"
    except (OSError, subprocess.SubprocessError):
        results["commit"] = "?"
    out.mkdir(parents=True, exist_ok=True)
    server = results.get("server", "prosody")
    (out / json_name(server)).write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    md = markdown(results, _before(Path(__file__).resolve().parent.parent) if server == "prosody" else None)
    target = out / "RESULTS.md"
    target.write_text(merge_into(target.read_text() if target.exists() else "", md, server))
    print(md)
