"""Helpers shared by the driver and the workers (standard library only)."""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

#: prefix of every machine-readable line a worker prints on stdout (other output is ignored)
TAG = "@bench "


def now_ns() -> int:
    """CLOCK_MONOTONIC in ns: the same clock in every process on this machine."""
    return time.monotonic_ns()


def emit(kind: str, **data: Any) -> None:
    """Print one machine-readable line for the driver."""
    data["kind"] = kind
    sys.stdout.write(TAG + json.dumps(data, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def parse_line(line: str) -> dict[str, Any] | None:
    """The message in a worker's output line, None for anything else (library chatter)."""
    if not line.startswith(TAG):
        return None
    try:
        msg = json.loads(line[len(TAG) :])
    except ValueError:
        return None
    return msg if isinstance(msg, dict) and isinstance(msg.get("kind"), str) else None


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Percentile ``q`` (0..100) of already sorted values, nearest-rank with interpolation."""
    if not sorted_values:
        return math.nan
    if len(sorted_values) == 1:
        return float(sorted_values[0])
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo))


def summary(values_s: Sequence[float]) -> dict[str, Any]:
    """p50/p99/mean/min/max of durations in seconds, plus the sample count."""
    v = sorted(values_s)
    if not v:
        return {"n": 0}
    return {
        "n": len(v),
        "p50": percentile(v, 50),
        "p99": percentile(v, 99),
        "mean": sum(v) / len(v),
        "min": v[0],
        "max": v[-1],
    }


def bounded(count: int, seconds: float) -> Iterator[int]:
    """``range(count)`` that also stops once ``seconds`` have passed: every loop is bounded twice."""
    end = time.monotonic() + seconds
    for i in range(count):
        if i and time.monotonic() > end:
            return
        yield i
