"""Modules in their own processes, started with the CLI as users do."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from backends.base import eventually
from support import Color, IKitchenSink, Point, seen, unseen

from pyobs.events import ModuleClosedEvent, ModuleOpenedEvent
from pyobs.utils.exceptions import MoveError

HERE = Path(__file__).parent


def _start(backend: Any, tmp_path: Path, name: str) -> subprocess.Popen[bytes]:
    config = {"class": "support.KitchenSink", "comm": backend.comm_config(name)}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(HERE.parent), os.environ.get("PYTHONPATH", "")]))
    with (tmp_path / f"{name}.log").open("wb") as log:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "pyobs", str(path), "--log-level", "WARNING"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


async def test_module_in_another_process(backend: Any, tmp_path: Path) -> None:
    if not backend.multiprocess:
        pytest.skip(f"{backend.kind} works within one process")
    events: list[tuple[str, str | None]] = []

    async def on_event(event: Any, sender: str) -> bool:
        events.append((type(event).__name__, event.module))
        return True

    caller = backend.comm("caller")
    await caller.register_event(ModuleOpenedEvent, on_event)
    await caller.register_event(ModuleClosedEvent, on_event)
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
        assert ("ModuleOpenedEvent", "sink") in events
        # a module that is killed is seen gone, and calls to it fail promptly
        call = asyncio.ensure_future(proxy.sleep_announced(30.0))
        await asyncio.sleep(0.3)
        start = time.monotonic()
        proc.kill()
        with pytest.raises(Exception, match="sink"):
            await asyncio.wait_for(call, 60.0)
        await unseen(caller, "sink", timeout=60.0)
        await eventually(lambda: ("ModuleClosedEvent", "sink") in events, what="ModuleClosedEvent")
        assert time.monotonic() - start < 60.0
    finally:
        _stop(proc)
        await caller.close()


async def test_module_process_closes_cleanly_on_sigterm(backend: Any, tmp_path: Path) -> None:
    if not backend.multiprocess:
        pytest.skip(f"{backend.kind} works within one process")
    caller = backend.comm("caller")
    await caller.open()
    proc = _start(backend, tmp_path, "sink")
    try:
        await seen(caller, "sink", timeout=20.0)
        _stop(proc)
        assert proc.returncode == 0, (tmp_path / "sink.log").read_text()
        await unseen(caller, "sink", timeout=5.0)
    finally:
        _stop(proc)
        await caller.close()
