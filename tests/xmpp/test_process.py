"""A module in its own process (``python -m pyobs config.yaml``), seen and called over XMPP."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

from backends.base import eventually
from event_watch import EventWatch
from module_process import start_module_process
from xmpp_helpers import IProbe, RawClient

from pyobs.testing.process import stop_process

HERE = Path(__file__).parent


async def test_module_process_is_discovered_called_and_leaves_cleanly(
    xmpp_backend: Any, raw: RawClient, tmp_path: Path
) -> None:
    config = {"class": "xmpp_helpers.Probe", "label": "Probe in a process", "comm": xmpp_backend.comm_config("callee")}
    watch = EventWatch()
    caller = xmpp_backend.comm("caller")
    await watch.attach(caller)
    await caller.open()
    proc = start_module_process(tmp_path, "callee", config, HERE)
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
        await eventually(lambda: watch.closed == ["callee"], timeout=10.0, what="ModuleClosedEvent")
        assert time.monotonic() - start < 5.0
        assert proc.wait(timeout=10) == 0
        assert "callee" not in caller.clients
    finally:
        stop_process(proc, 10.0)
        await caller.close()
