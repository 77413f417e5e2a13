"""The server goes away and comes back: reconnect, restore, and lose no events."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from backends.base import eventually
from backends.xmpp import new_server
from xmpp_helpers import IProbe, Probe, ProbeEvent

from pyobs.comm.xmpp import XmppComm, XmppConnectionError
from pyobs.interfaces import IMotion
from pyobs.interfaces.types import MotionState
from pyobs.testing.xmpp_server import TestServer
from pyobs.utils.enums import MotionStatus
from pyobs.utils.exceptions import RemoteError


@pytest.fixture
async def server(xmpp_kind: str) -> AsyncIterator[Any]:
    """A server of its own (it is stopped and started), of each kind."""
    async with new_server(xmpp_kind, ["callee", "caller"]) as s:
        yield s


def _comm(server: TestServer, name: str, timeout: float = 5.0) -> XmppComm:
    return XmppComm(jid=server.jid(name), password=server.password, server=server.address, timeout=timeout)


async def test_reconnect_restores_everything_and_loses_no_events(server: TestServer) -> None:
    got: list[ProbeEvent] = []

    async def handler(event: Any, sender: str) -> bool:
        got.append(event)
        return True

    probe = Probe(comm=_comm(server, "callee"))
    caller = _comm(server, "caller", timeout=2.0)
    await caller.register_event(ProbeEvent, handler)
    await probe.open()
    await probe.comm.register_event(ProbeEvent)
    await caller.open()
    try:
        proxy = await caller.proxy("callee", IProbe)
        assert await proxy.add(1, 2.0) == 3.0
        await probe.comm.send_event(ProbeEvent(message="before", number=-1))
        await eventually(lambda: len(got) == 1, what="first event")
        states: list[Any] = []

        async def on_state(state: Any, sender: str) -> None:
            states.append(state.status)

        await caller.subscribe_state("callee", IMotion, on_state)
        assert (await caller.get_state("callee", IMotion)).status is MotionStatus.IDLE

        # calls in flight when the server dies fail at once (the server may first say the callee left)
        slow = asyncio.ensure_future(proxy.slow(5.0))
        await asyncio.sleep(0.05)
        await server.stop()
        start = time.monotonic()
        with pytest.raises(RemoteError, match=r"connection to the XMPP server .* lost|went offline"):
            await slow
        assert time.monotonic() - start < 1.0
        await eventually(lambda: not caller.connected and not probe.comm.connected, what="both disconnected")

        # while the server is down: calls fail within their deadline with a clear error,
        # events do not block the sender and are kept
        start = time.monotonic()
        with pytest.raises(XmppConnectionError, match="not connected to the XMPP server"):
            await proxy.add(1, 1.0)
        assert time.monotonic() - start < 2.0
        sent = []
        outage_end = time.monotonic() + 5.0
        i = 0
        while time.monotonic() < outage_end:
            t0 = time.monotonic()
            event = ProbeEvent(message="during", number=i)
            await probe.comm.send_event(event)
            assert time.monotonic() - t0 < 0.05, "send_event blocked while the server was down"
            sent.append(event.uuid)
            i += 1
            await asyncio.sleep(0.1)
        assert len(sent) >= 40

        await server.start()
        back = time.monotonic()
        await eventually(lambda: caller.connected and probe.comm.connected, timeout=5.0, what="reconnect")
        assert time.monotonic() - back < 1.0, "reconnecting took longer than 1 s"

        # all events of the outage arrive, in order, none twice
        await eventually(lambda: len(got) >= 1 + len(sent), timeout=10.0, what="queued events")
        assert [e.uuid for e in got[1:]] == sent
        # discovery and calls work again
        await eventually(lambda: "callee" in caller.clients, what="rediscovery")
        proxy = await caller.proxy("callee", IProbe)
        assert await proxy.add(2, 2.0) == 4.0
        # and new events flow
        await probe.comm.send_event(ProbeEvent(message="after", number=99))
        await eventually(lambda: got[-1].message == "after", what="event after restart")
        # and the state subscription is back
        await probe.comm.set_state(IMotion, MotionState(status=MotionStatus.PARKED))
        await eventually(lambda: MotionStatus.PARKED in states, what="state after restart")
        assert (await caller.get_state("callee", IMotion)).status is MotionStatus.PARKED
    finally:
        await caller.close()
        await probe.close()


async def test_bounded_queue_drops_the_oldest_with_a_warning(server: TestServer, caplog: Any) -> None:
    comm = XmppComm(
        jid=server.jid("callee"), password=server.password, server=server.address, event_queue_size=5, timeout=2.0
    )
    await comm.register_event(ProbeEvent)
    await comm.open()
    try:
        await server.stop()
        await eventually(lambda: not comm.connected, what="disconnect")
        for i in range(8):
            await comm.send_event(ProbeEvent(message="x", number=i))
        assert "dropped the 1 oldest event(s), 3 so far" in caplog.text
        queued = [ev for ev in comm.xmpp._events]
        assert len(queued) == 5 and '"number": 3' in queued[0][1] and '"number": 7' in queued[-1][1]
    finally:
        await comm.close()


async def test_open_fails_fast_and_clearly_without_a_server() -> None:
    from pyobs.testing.xmpp_server import free_port

    comm = XmppComm(jid="nobody@pyobs.test", password="x", server=f"127.0.0.1:{free_port()}", connect_timeout=0.5)
    start = time.monotonic()
    with pytest.raises(XmppConnectionError, match=r"cannot connect to the XMPP server 127\.0\.0\.1"):
        await comm.open()
    assert time.monotonic() - start < 2.0


async def test_wrong_password_is_an_auth_error(server: TestServer) -> None:
    from pyobs.comm.xmpp import XmppAuthError

    comm = XmppComm(jid=server.jid("callee"), password="wrong", server=server.address)
    start = time.monotonic()
    with pytest.raises(XmppAuthError, match="rejected the credentials"):
        await comm.open()
    assert time.monotonic() - start < 3.0


async def test_second_login_with_the_same_jid_ends_the_first_without_ping_pong(server: TestServer) -> None:
    first = _comm(server, "callee")
    second = _comm(server, "callee")
    await first.open()
    try:
        await second.open()  # the server kicks the older session ("conflict")
        await eventually(lambda: not first.connected, what="first session kicked")
        assert first.xmpp._conflict
        # the first does not reconnect (that would kick the second in turn, forever)
        task = first.xmpp._reconnect_task
        assert task is None or task.done()
        assert not first.connected and second.connected
    finally:
        await second.close()
        await first.close()
