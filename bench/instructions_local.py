#!/usr/bin/env python3
"""Instructions per LocalComm call, counted by ``valgrind --tool=cachegrind`` (deterministic, unlike
timings on a shared machine). Our package by default; ``--pyobs DIR`` counts another checkout's
(e.g. ``git archive <commit> | tar -x -C DIR``, to compare before and after a change).

    python3 bench/instructions_local.py                # needs valgrind (apt-get install valgrind)
    python3 bench/instructions_local.py --pyobs /tmp/old
    python3 bench/instructions_local.py --hash-seed 0  # the same count every time (to compare steps)

Runs the same script with 500 and 2,500 sequential ``proxy.move_radec(1.0, 2.0)`` calls (the
benchmark's call, after 200 warm-up calls) and divides the difference of the two counts by 2,000:
start-up, imports and warm-up cancel out. Repeated counts differ by up to ~0.9k (hash randomisation,
garbage collection); ``--hash-seed N`` fixes ``PYTHONHASHSEED`` in the counted runs, which makes
them repeat exactly (compare a change under two or three seeds, not one: a seed is one sample).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
SMALL, LARGE = 500, 2500
#: one valgrind run takes ~10-20 s; a hung one is stopped
RUN_TIMEOUT = 300.0


async def calls(n: int) -> None:
    sys.path.insert(0, str(HERE))
    from harness.roles import Context

    from pyobs.comm.local import LocalComm
    from pyobs.interfaces import IPointingRaDec

    Target, Plain = Context.classes()
    callee, caller = Target(comm=LocalComm("callee")), Plain(comm=LocalComm("caller"))
    await Context.start(callee)
    await Context.start(caller)
    proxy = await Context.proxy(caller.comm, "callee", IPointingRaDec)
    for _ in range(200):
        await proxy.move_radec(1.0, 2.0)
    for _ in range(n):
        await proxy.move_radec(1.0, 2.0)
    if Target.calls != 200 + n:
        raise SystemExit(f"the callee counted {Target.calls} calls, not {200 + n}")


def count(n: int, pyobs_dir: Path, hash_seed: int | None = None) -> int:
    """Instructions of one run with ``n`` calls (the interpreter binary itself, not a shim script)."""
    env = dict(os.environ, PYTHONPATH=str(pyobs_dir))
    if hash_seed is not None:
        env["PYTHONHASHSEED"] = str(hash_seed)
    cmd = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"]
    cmd += [os.path.realpath(sys.executable), str(Path(__file__).resolve()), "--run", str(n)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    match = re.search(r"I\s+refs:\s+([\d,]+)", out.stderr)
    if out.returncode != 0 or match is None:
        raise SystemExit(f"valgrind run with {n} calls failed:\n{out.stderr[-2000:]}")
    return int(match.group(1).replace(",", ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pyobs", type=Path, default=HERE.parent, help="checkout whose pyobs is counted")
    ap.add_argument("--hash-seed", type=int, help="PYTHONHASHSEED of the counted runs (default: random)")
    ap.add_argument("--run", type=int, help=argparse.SUPPRESS)  # the counted child
    args = ap.parse_args()
    if args.run is not None:
        asyncio.run(calls(args.run))
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    with ThreadPoolExecutor(2) as pool:
        small, large = pool.map(lambda n: count(n, args.pyobs.resolve(), args.hash_seed), (SMALL, LARGE))
    print(f"{(large - small) / (LARGE - SMALL):,.0f} instructions per LocalComm call ({args.pyobs.resolve()})")


if __name__ == "__main__":
    main()
