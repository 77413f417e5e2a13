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

from pyobs.comm.transport import NotConnected
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
        with pytest.raises(NotConnected, match="not connected"):  # the core's policy, as on every transport
            await proxy.add(1, 1.0)
        assert time.monotonic() - start < 2.0
        sent = []
        outage_end = time.monotonic() + 5.0
        i = 0
        while time.monotonic() < outage_end:
            t0 = time.monotonic()
            event = ProbeEvent(message="during", number=i)
            await probe.comm.send_event(event)
            assert time.monotonic() - t0 < 0.5, "send_event blocked while the server was down"
            sent.append(event.uuid)
            i += 1
            await asyncio.sleep(0.1)
        assert len(sent) >= 40

        await server.start()
        # bounded, not timed: how fast it reconnects is measured in bench/ (a loaded machine is slower)
        await eventually(lambda: caller.connected and probe.comm.connected, timeout=10.0, what="reconnect")

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
        # one warning (rate-limited), the count in the counter
        assert caplog.text.count("the event queue is full (5)") == 1
        assert "dropped the 1 oldest event(s) since the last warning, 1 in total" in caplog.text
        assert comm.outbox.dropped == 3 and comm.outbox.waiting == 5
        queued = list(comm.outbox._queue)
        assert [e.number for e in queued] == [3, 4, 5, 6, 7]
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
        assert first.xmpp.link.conflict
        # the first does not reconnect (that would kick the second in turn, forever)
        task = first.xmpp._reconnect_task
        assert task is None or task.done()
        assert not first.connected and second.connected
    finally:
        await second.close()
        await first.close()


async def test_close_reports_unsent_events_only_when_the_server_is_unreachable(server: TestServer, caplog: Any) -> None:
    from pyobs.comm.outbox import CLOSE_GRACE

    comm = _comm(server, "callee", timeout=2.0)
    await comm.register_event(ProbeEvent)
    await comm.open()
    await server.stop()
    await eventually(lambda: not comm.connected, what="disconnect")
    for i in range(3):
        await comm.send_event(ProbeEvent(message="x", number=i))
    assert comm.outbox.waiting == 3
    start = time.monotonic()
    await comm.close()
    assert time.monotonic() - start < CLOSE_GRACE + 3.0, "close() waited too long for an unreachable server"
    assert comm.outbox.unsent == 3
    assert "callee: 3 queued events not sent before closing (not connected)" in caplog.text


async def test_publishes_the_server_never_confirmed_are_sent_again_after_it_returns(server: TestServer) -> None:
    """The server takes our events into its socket and dies before handling them: they are written
    again after the reconnect (before anything newer), and arrive once, in order."""
    import os
    import signal

    got: list[ProbeEvent] = []

    async def handler(event: Any, sender: str) -> bool:
        got.append(event)
        return True

    sender = _comm(server, "callee", timeout=2.0)
    receiver = _comm(server, "caller", timeout=2.0)
    await receiver.register_event(ProbeEvent, handler)
    await sender.register_event(ProbeEvent)
    await receiver.open()
    await sender.open()
    try:
        await eventually(lambda: receiver.is_online("callee"), what="discovery")
        await sender.send_event(ProbeEvent(message="first", number=0))
        await eventually(lambda: len(got) == 1, what="the first event")
        await eventually(lambda: not sender.xmpp.publisher.unacked, what="the server to confirm the publish")
        proc = server._process
        assert proc is not None
        os.kill(proc.pid, signal.SIGSTOP)  # the server stops reading, the connection stays up
        try:
            for i in range(1, 4):
                await sender.send_event(ProbeEvent(message="frozen", number=i))
            await eventually(lambda: len(sender.xmpp.publisher.unacked) == 3, what="the deferred publishes")
            assert sender.outbox.waiting == 0  # written to the server, not confirmed by it
        finally:
            proc.kill()  # dies with our events unread
            proc.wait(10)
        await eventually(lambda: not sender.connected, what="the sender to notice")
        await sender.send_event(ProbeEvent(message="during", number=4))  # waits in the outbox
        await server.start()
        await eventually(lambda: len(got) >= 5, timeout=15.0, what="the unconfirmed and the queued events")
        assert [e.number for e in got] == [0, 1, 2, 3, 4]
        await eventually(lambda: not sender.xmpp.publisher.unacked, what="the server to confirm them all")
    finally:
        await sender.close()
        await receiver.close()
