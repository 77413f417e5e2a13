#!/usr/bin/env python3
"""Summarise py-spy raw profiles (``bench/run --pyspy`` writes them): top frames, inclusive and self.

    python bench/pyspy_summary.py bench/.out/logs/*publisher*.pyspy [--top 30] [--only FUNC]

``--only FUNC`` keeps only the samples whose stack contains FUNC (e.g. a role's hot loop), so
start-up and idle time do not dilute the picture.
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--only", help="keep stacks containing this text")
    ap.add_argument("--exclude", action="append", default=[], help="drop stacks containing this text")
    ap.add_argument("--idle", action="store_true", help="keep samples in the selector (idle) too")
    args = ap.parse_args()
    for name in args.files:
        total = 0
        own: collections.Counter[str] = collections.Counter()
        incl: collections.Counter[str] = collections.Counter()
        for line in Path(name).read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or (args.only and args.only not in stack) or any(x in stack for x in args.exclude):
                continue
            frames = stack.split(";")
            if not args.idle and "select (selectors.py" in frames[-1]:
                continue
            n = int(count)
            total += n
            own[frames[-1]] += n
            for f in set(frames):
                incl[f] += n
        print(f"== {name}: {total} samples (busy{', containing ' + args.only if args.only else ''})")
        for f, n in incl.most_common(args.top):
            print(f"{100 * n / max(total, 1):5.1f}% incl  {f[:140]}")
        print("  --")
        for f, n in own.most_common(args.top // 2):
            print(f"{100 * n / max(total, 1):5.1f}% self  {f[:140]}")
        print()


if __name__ == "__main__":
    main()
