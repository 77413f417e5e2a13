"""Reconnection always converges (issue #13, point 2): whatever stage a drop hits — the TCP
connect, login, session set-up, restoring the session (state, event nodes), presence or the
re-subscriptions — the comm ends connected while the server is reachable, and ``connected`` says
the truth meanwhile. A TCP relay between module and server cuts the connection at each stage."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from backends.base import eventually
from relay import CuttingRelay
from xmpp_helpers import IProbe, Probe, ProbeEvent

from pyobs.comm.xmpp import XmppComm
from pyobs.interfaces import IMotion
from pyobs.interfaces.types import MotionState
from pyobs.utils.enums import MotionStatus

STAGES = {
    "connect": b"",
    "login": b"<auth",
    "session": b"jabber:iq:roster",
    "restore": b"<publish",
    "presence": b"<presence",
    "resubscription": b"<subscribe",
}


@pytest.mark.parametrize("stages", [list(STAGES), ["restore", "restore", "presence", "resubscription"]])
async def test_drops_at_every_stage_end_connected(xmpp_backend: Any, stages: list[str]) -> None:
    server = xmpp_backend.server
    host, port = server.address.split(":")
    # connection 0 is the first login; the cuts hit the reconnection attempts that follow
    relay = await CuttingRelay(host, int(port), [None, *(STAGES[s] for s in stages)]).start()
    events: list[Any] = []
    states: list[Any] = []

    async def on_event(event: Any, sender: str) -> bool:
        events.append(event.message)
        return True

    async def on_state(state: Any, sender: str) -> None:
        states.append(state.status)

    other = Probe(comm=xmpp_backend.comm("other"))
    await other.open()
    await other.comm.register_event(ProbeEvent, on_event)
    comm = XmppComm(
        jid=server.jid("callee", xmpp_backend.resource), password=server.password, server=relay.address,
        timeout=3.0, connect_timeout=5.0,
    )  # fmt: skip
    module = Probe(comm=comm)
    watcher: asyncio.Future[None] | None = None
    await module.open()
    await comm.register_event(ProbeEvent)
    try:
        await eventually(lambda: comm.is_online("other") and other.comm.is_online("callee"), what="both online")
        await comm.subscribe_state("other", IMotion, on_state)
        lies: list[str] = []

        async def watch() -> None:
            # ``connected`` tells the truth: never True while the transport has no session
            while True:
                if comm.connected and not comm.xmpp.connected:
                    lies.append("connected without a session")
                await asyncio.sleep(0.002)

        watcher = asyncio.ensure_future(watch())
        relay.cut_all()
        await eventually(lambda: not comm.connected, what="the drop noticed")
        # every planned cut happens, and the comm comes back after the last one
        await eventually(lambda: len(relay.cuts) == len(stages), timeout=30, what=f"cuts at {stages}")
        await eventually(lambda: comm.connected, timeout=30, what="connected again")
        assert [m for _, m in relay.cuts] == [STAGES[s] for s in stages]
        watcher.cancel()
        assert lies == []
        assert comm.xmpp.connected
        # and everything works again: calls both ways, events, the state subscription
        await eventually(lambda: other.comm.is_online("callee"), timeout=10, what="callee back for the other")
        proxy = await other.comm.proxy("callee", IProbe)
        assert await proxy.add(1, 2.0) == 3.0
        back = await comm.proxy("other", IProbe)
        assert await back.add(2, 2.0) == 4.0
        await comm.send_event(ProbeEvent(message="after"))
        await eventually(lambda: "after" in events, what="event after reconnecting")
        await other.comm.set_state(IMotion, MotionState(status=MotionStatus.PARKED))
        await eventually(lambda: MotionStatus.PARKED in states, what="state after reconnecting")
    finally:
        if watcher is not None:
            watcher.cancel()
        await module.close()
        await other.close()
        await relay.close()
