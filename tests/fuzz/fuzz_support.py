"""Running the target in its own process and checking it after each attack."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

from module_process import start_module_process
from target import IFuzzTarget

from pyobs.testing.process import stop_process

HERE = Path(__file__).parent
#: the limits the target runs with (stated in docs/security.md's figures)
LIMITS = {"max_calls": 200, "max_handler_tasks": 4, "handler_queue_size": 100, "max_call_timeout": 60.0}
#: the most the target's resident memory may grow over its baseline during the whole suite
MEMORY_BOUND_MB = 96


def start_target(comm_config: dict[str, Any], tmp_path: Path, name: str, **limits: Any) -> subprocess.Popen[bytes]:
    config = {"class": "target.FuzzTarget", "comm": {**comm_config, **LIMITS, **limits}}
    return start_module_process(tmp_path, name, config, HERE)


def stop_target(proc: subprocess.Popen[bytes]) -> None:
    stop_process(proc, 10.0)


def rss_mb(proc: subprocess.Popen[bytes]) -> float:
    for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


class Health:
    """After each attack: the target is alive, answers a normal call within its deadline and its
    memory stays within MEMORY_BOUND_MB of where it started."""

    def __init__(self, proc: subprocess.Popen[bytes], caller: Any, name: str) -> None:
        self.proc = proc
        self.caller = caller
        self.name = name
        self.baseline = 0.0
        self.peak = 0.0
        self.report: dict[str, Any] = {}

    async def wait_online(self, timeout: float = 30.0) -> None:
        """Until the caller sees the target (it fails if the target process ends first)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while not self.caller.is_online(self.name):
            assert loop.time() < end and self.proc.poll() is None, "the target did not come online"
            await asyncio.sleep(0.05)
        await self.check("start")

    async def check(self, after: str) -> dict[str, Any]:
        assert self.proc.poll() is None, f"the target died after the {after} attack"
        proxy = await self.caller.proxy(self.name, IFuzzTarget)
        # within the caller's own deadline (comm.timeout): no retries, no extension
        assert await asyncio.wait_for(proxy.add(1, 2.0), self.caller.timeout) == 3.0, after
        stats: dict[str, Any] = await asyncio.wait_for(proxy.stats(), self.caller.timeout)
        rss = rss_mb(self.proc)
        if not self.baseline:
            self.baseline = rss
        self.peak = max(self.peak, rss)
        assert rss - self.baseline < MEMORY_BOUND_MB, f"target grew {rss - self.baseline:.0f} MB after {after}"
        return stats


def log_lines(tmp_path: Path, name: str, text: str) -> int:
    return (tmp_path / f"{name}.log").read_text(errors="replace").count(text)
