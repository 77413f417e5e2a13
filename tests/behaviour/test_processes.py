"""Modules in their own processes, started with the CLI as users do."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from backends.base import eventually
from event_watch import EventWatch
from module_process import start_module_process
from support import Color, IKitchenSink, Point, seen, unseen

from pyobs.testing.process import stop_process
from pyobs.utils.exceptions import MoveError

HERE = Path(__file__).parent


def _start(backend: Any, tmp_path: Path, name: str) -> subprocess.Popen[bytes]:
    config = {"class": "support.KitchenSink", "comm": backend.comm_config(name)}
    return start_module_process(tmp_path, name, config, HERE)


async def test_module_in_another_process(backend: Any, tmp_path: Path) -> None:
    if not backend.multiprocess:
        pytest.skip(f"{backend.kind} works within one process")
    watch = EventWatch()
    caller = backend.comm("caller")
    await watch.attach(caller)
    await caller.open()
    proc = _start(backend, tmp_path, "sink")
    try:
        await seen(caller, "sink", timeout=20.0)
        proxy = await caller.proxy("sink", IKitchenSink)
        assert await proxy.echo_point(Point(1.0, 2.0, "x")) == Point(1.0, 2.0, "x")
        assert await proxy.echo_enum(Color.GREEN) is Color.GREEN
        assert await proxy.whoami() == "caller"
        with pytest.raises(MoveError, match="cannot move there"):
            await proxy.fail("move")
        assert "sink" in watch.opened
        # a module that is killed is seen gone, and calls to it fail promptly
        call = asyncio.ensure_future(proxy.sleep_announced(30.0))
        await asyncio.sleep(0.3)
        start = time.monotonic()
        proc.kill()
        with pytest.raises(Exception, match="sink"):
            await asyncio.wait_for(call, 60.0)
        await unseen(caller, "sink", timeout=60.0)
        await eventually(lambda: "sink" in watch.closed, what="ModuleClosedEvent")
        assert time.monotonic() - start < 60.0
    finally:
        stop_process(proc, 10.0)
        await caller.close()


async def test_module_process_closes_cleanly_on_sigterm(backend: Any, tmp_path: Path) -> None:
    if not backend.multiprocess:
        pytest.skip(f"{backend.kind} works within one process")
    caller = backend.comm("caller")
    await caller.open()
    proc = _start(backend, tmp_path, "sink")
    try:
        await seen(caller, "sink", timeout=20.0)
        stop_process(proc, 10.0)
        assert proc.returncode == 0, (tmp_path / "sink.log").read_text()
        await unseen(caller, "sink", timeout=5.0)
    finally:
        stop_process(proc, 10.0)
        await caller.close()
