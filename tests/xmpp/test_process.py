"""A module in its own process (``python -m pyobs config.yaml``), seen and called over XMPP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from backends.base import eventually
from xmpp_helpers import IProbe, RawClient

from pyobs.events import ModuleClosedEvent

HERE = Path(__file__).parent


async def test_module_process_is_discovered_called_and_leaves_cleanly(
    xmpp_backend: Any, raw: RawClient, tmp_path: Path
) -> None:
    config = {"class": "xmpp_helpers.Probe", "label": "Probe in a process", "comm": xmpp_backend.comm_config("callee")}
    path = tmp_path / "callee.yaml"
    path.write_text(yaml.safe_dump(config))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(HERE.parent), os.environ.get("PYTHONPATH", "")]))
    closed: list[str] = []

    async def on_closed(event: Any, sender: str) -> bool:
        closed.append(event.module)
        return True

    caller = xmpp_backend.comm("caller")
    await caller.register_event(ModuleClosedEvent, on_closed)
    await caller.open()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pyobs", str(path), "--log-level", "WARNING"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        await eventually(lambda: "callee" in caller.clients, timeout=20.0, what="the module process online")
        proxy = await caller.proxy("callee", IProbe)
        assert proxy.label == "Probe in a process"
        assert await proxy.add(40, 2.0) == 42.0
        # its presence is a plain available one, with the caps element
        jid = xmpp_backend.server.jid("callee", xmpp_backend.resource)
        presence = await raw.wait_for(lambda el: el.tag.endswith("presence") and el.get("from") == jid)
        assert presence.get("type") is None
        assert presence.find("{http://jabber.org/protocol/caps}c") is not None

        proc.send_signal(signal.SIGTERM)
        start = time.monotonic()
        await eventually(lambda: closed == ["callee"], timeout=10.0, what="ModuleClosedEvent")
        assert time.monotonic() - start < 5.0
        assert proc.wait(timeout=10) == 0
        assert "callee" not in caller.clients
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()
        await caller.close()
