"""Worker entry point: ``python worker.py '<json spec>'`` in our interpreter or in pyobs-core's venv.

The spec names a role (harness.roles.ROLES or ``role_<name>`` in the scenario module), the
implementation (``ours`` or ``core``), the transport scenario and the role's parameters. The
worker prints ``@bench {json}`` lines on stdout, reads commands (one JSON object a line) on
stdin, and ends itself after ``max_seconds`` or when stdin closes (the driver went away).
"""

from __future__ import annotations

import time

T_MAIN = time.monotonic_ns()  # before any other import: "process start" as far as Python code can tell

import asyncio  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the bench directory

from harness import roles  # noqa: E402
from harness.common import emit  # noqa: E402


def main() -> None:
    spec = json.loads(sys.argv[1])
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    scenario = importlib.import_module(f"scenarios.{spec['transport']}")
    role = roles.ROLES.get(spec["role"]) or getattr(scenario, "role_" + spec["role"], None)
    if role is None:
        raise SystemExit(f"unknown role {spec['role']!r}")
    ctx = roles.Context(spec, scenario, T_MAIN)
    max_seconds = float(spec.get("max_seconds", 120.0))

    async def run() -> None:
        ctx.control.start()
        try:
            async with asyncio.timeout(max_seconds) as limit:
                await role(ctx)
        except TimeoutError:
            if limit.expired():
                emit("error", message=f"worker {spec['role']} exceeded {max_seconds} s")
            raise

    try:
        asyncio.run(run())
    except BaseException as exc:
        if not isinstance(exc, SystemExit | KeyboardInterrupt):
            emit("error", message=f"{type(exc).__name__}: {exc}")
            logging.exception("worker failed")
        sys.stdout.flush()
        os._exit(1)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # do not wait for library threads (slixmpp, astropy) to wind down


if __name__ == "__main__":
    main()
