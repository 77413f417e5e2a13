"""A tight ejabberd c2s shaper (the formerly documented 30,000 B/s) holds a burst of events back;
closing right after the burst waits (bounded) for the server's confirmations, so the events arrive
and nothing is reported as unsent."""

from __future__ import annotations

import asyncio
import logging
import os
import time

import pytest
from backends.base import eventually
from backends.xmpp import server_kinds
from xmpp_helpers import ProbeEvent

from pyobs.comm.xmpp import XmppComm
from pyobs.modules import Module
from pyobs.testing.ejabberd_server import EjabberdTestServer, available

_why_not = available() if "ejabberd" in server_kinds() else "PYOBS_XMPP_SERVERS does not include ejabberd"
pytestmark = pytest.mark.skipif(
    _why_not is not None and not ("ejabberd" in server_kinds() and os.environ.get("PYOBS_REQUIRE_XMPP")),
    reason=f"ejabberd: {_why_not}",
)


def _comm(server: EjabberdTestServer, name: str) -> XmppComm:
    # timeout 10 s (the default): close() may wait up to 7 s for the server's confirmations
    return XmppComm(jid=server.jid(name), password=server.password, server=server.address, timeout=10.0)


async def test_a_burst_through_a_tight_shaper_is_delivered_when_closing(caplog: pytest.LogCaptureFixture) -> None:
    async with EjabberdTestServer(["sender", "receiver"], shaper_rate=30000) as server:
        got: set[int] = set()

        async def on_event(event: ProbeEvent, sender: str) -> bool:
            got.add(event.number)
            return True

        receiver = Module(comm=_comm(server, "receiver"))
        sender = Module(comm=_comm(server, "sender"))
        await receiver.open()
        await receiver.comm.register_event(ProbeEvent, on_event)
        await sender.open()
        await sender.comm.register_event(ProbeEvent)
        try:
            await eventually(lambda: "receiver" in sender.comm.clients, timeout=5.0, what="sender sees receiver")
            start = time.monotonic()
            for i in range(300):  # 200 per second
                await sender.comm.send_event(ProbeEvent(message="burst", number=i))
                await asyncio.sleep(max(0.0, start + (i + 1) / 200 - time.monotonic()))
            with caplog.at_level(logging.WARNING, logger="pyobs.comm.xmpp"):
                await sender.close()
            warnings = [r for r in caplog.records if r.name.startswith("pyobs.comm") and r.levelno >= logging.WARNING]
            assert not warnings, caplog.text  # e.g. "N events ... not confirmed" or "never sent"
            await eventually(lambda: len(got) == 300, timeout=10.0, what="all 300 events")
        finally:
            for m in (sender, receiver):
                if m.comm.opened:
                    await m.close()


