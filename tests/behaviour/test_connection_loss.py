"""The link goes down and comes back: the core's connectivity policy, the same on every transport.

Local: the network's test hook cuts every link; D-Bus: the private dbus-daemon is killed and started
again; XMPP: the private prosody is stopped and started again. Expectations are identical.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from backends.base import eventually
from event_watch import EventWatch
from support import IKitchenSink, KitchenSink, Telescope, opened, seen

from pyobs.comm import Comm
from pyobs.comm.transport import NotConnected
from pyobs.events import NewImageEvent
from pyobs.interfaces import IPointingRaDec, ITelescope
from pyobs.modules import Module
from pyobs.utils.enums import MotionStatus

#: how long a reconnect may take after the server is back (D-Bus backs off up to 2 s, XMPP logs in)
RECONNECT = 15.0


async def _start(backend: Any, grace: float) -> tuple[Comm, KitchenSink, Telescope, EventWatch]:
    caller = backend.comm("caller")
    caller.peer_grace = grace
    watch = EventWatch()
    await watch.attach(caller, images=True)
    sink = KitchenSink(comm=backend.comm("sink"))
    await sink.comm.register_event(NewImageEvent)
    await opened(sink)
    tel = await opened(Telescope(comm=backend.comm("telescope")))
    await caller.open()
    await seen(caller, "sink")
    await seen(caller, "telescope")
    return caller, sink, tel, watch


async def _close(*items: Module | Comm) -> None:
    for item in items:
        await item.close()


async def test_a_short_outage_keeps_peers_fails_calls_at_once_and_restores_state(outage_backend: Any) -> None:
    caller, sink, tel, watch = await _start(outage_backend, grace=60.0)
    try:
        images = watch.images
        await sink.comm.send_event(NewImageEvent("/before.fits"))
        await eventually(lambda: images == ["sink:/before.fits"], what="an event before the outage")
        states: list[MotionStatus] = []

        async def on_state(state: Any, sender: str) -> None:
            states.append(state.status)

        await caller.subscribe_state("telescope", ITelescope, on_state)
        assert (await caller.get_state("telescope", ITelescope)).status is MotionStatus.IDLE
        proxy = await caller.proxy("sink", IKitchenSink)
        assert await proxy.echo_int(1) == 1

        await outage_backend.cut()
        await eventually(lambda: not caller.connected, timeout=RECONNECT, what="the caller noticing the loss")
        # peers are kept (stale) for the grace: no ModuleClosedEvent, proxies still made
        assert caller.is_online("sink") and caller.is_online("telescope")
        assert sorted(caller.stale) == ["sink", "telescope"]
        assert await caller.proxy("sink", IKitchenSink) is proxy
        # calls fail at once with a clear error
        start = time.monotonic()
        with pytest.raises(NotConnected, match="not connected"):
            await proxy.echo_int(2)
        assert time.monotonic() - start < 1.0
        # events sent meanwhile wait (the core's outbox) and arrive after, in order
        for name in ("/during-1.fits", "/during-2.fits"):
            await sink.comm.send_event(NewImageEvent(name))
        assert images == ["sink:/before.fits"]

        await outage_backend.restore()
        await eventually(
            lambda: all(c.connected for c in (caller, sink.comm, tel.comm)), timeout=RECONNECT, what="reconnection"
        )
        await eventually(lambda: caller.stale == [], timeout=RECONNECT, what="peers seen again")
        assert await proxy.echo_int(3) == 3
        await eventually(lambda: len(images) == 3, timeout=RECONNECT, what="the events of the outage")
        assert images == ["sink:/before.fits", "sink:/during-1.fits", "sink:/during-2.fits"]
        # the state subscription is back: a change after the reconnect reaches the handler
        pointing = await caller.proxy("telescope", IPointingRaDec)
        await pointing.move_radec(1.0, 2.0)
        await eventually(lambda: MotionStatus.TRACKING in states, what="a state change after the reconnect")
        assert watch.closed == []
        assert sorted(watch.opened) == ["sink", "telescope"]  # once each, before the outage
    finally:
        await _close(caller, tel, sink)


async def test_peers_go_offline_when_our_link_stays_down_past_the_grace(outage_backend: Any) -> None:
    caller, sink, tel, watch = await _start(outage_backend, grace=0.5)
    try:
        cut = asyncio.ensure_future(outage_backend.cut())  # a server may take a while to stop
        await eventually(lambda: not caller.connected, timeout=RECONNECT, what="the caller noticing the loss")
        start = time.monotonic()
        await cut
        await eventually(lambda: sorted(watch.closed) == ["sink", "telescope"], what="ModuleClosedEvent after grace")
        assert time.monotonic() - start >= 0.4
        assert caller.clients == []
        with pytest.raises(ValueError, match="not online"):
            await caller.proxy("sink", IKitchenSink)

        await outage_backend.restore()
        await eventually(
            lambda: sorted(watch.opened) == ["sink", "sink", "telescope", "telescope"],
            timeout=RECONNECT,
            what="ModuleOpenedEvent once they are back",
        )
        await eventually(lambda: caller.connected, timeout=RECONNECT, what="the caller reconnecting")
        proxy = await caller.proxy("sink", IKitchenSink)
        assert await proxy.echo_int(4) == 4
    finally:
        await _close(caller, tel, sink)


async def test_a_module_that_closed_during_the_outage_goes_offline_within_the_grace(outage_backend: Any) -> None:
    # long enough for the sink to log in again on a loaded machine (at 3 s, ejabberd under a load
    # average of 12-16 sometimes took longer, and the sink was reported gone)
    grace = 5.0
    caller, sink, tel, watch = await _start(outage_backend, grace=grace)
    try:
        await outage_backend.cut()
        await eventually(lambda: not caller.connected, timeout=RECONNECT, what="the caller noticing the loss")
        await asyncio.wait_for(tel.close(), 10.0)  # cannot tell anybody: its link is down too
        await outage_backend.restore()
        await eventually(lambda: caller.connected, timeout=RECONNECT, what="the caller reconnecting")
        back = time.monotonic()
        await eventually(lambda: "telescope" in watch.closed, timeout=grace + 5.0, what="telescope reported gone")
        # by the core's grace after the reconnect, on every transport (not before: nobody could say)
        assert grace - 1.0 <= time.monotonic() - back <= grace + 5.0
        await eventually(lambda: caller.stale == [], timeout=RECONNECT, what="sink seen again")
        assert caller.is_online("sink") and watch.closed == ["telescope"]  # once, and only the telescope
        proxy = await caller.proxy("sink", IKitchenSink)
        assert await proxy.echo_int(5) == 5
    finally:
        await _close(caller, sink)


async def test_a_module_restarted_during_the_outage_gets_the_events_kept_meanwhile(outage_backend: Any) -> None:
    """The peers we knew get one grace after our reconnect (the core's, on every transport): the
    events kept meanwhile wait for them, and one that is back within it is no new peer."""
    caller, sink, tel, watch = await _start(outage_backend, grace=60.0)
    sink.comm.peer_grace = 60.0
    await seen(sink.comm, "caller")
    at_sink = EventWatch()
    await at_sink.attach(sink.comm, images=True)
    restarted: Comm | None = None
    try:
        await sink.comm.send_event(NewImageEvent("/before.fits"))
        await eventually(lambda: watch.images == ["sink:/before.fits"], what="an event before the outage")
        await outage_backend.cut()
        await eventually(lambda: not sink.comm.connected, timeout=RECONNECT, what="the sink noticing the loss")
        await asyncio.wait_for(caller.close(), 10.0)  # the receiver goes away meanwhile: nobody can be told
        for name in ("/during-1.fits", "/during-2.fits"):
            await sink.comm.send_event(NewImageEvent(name))
        await outage_backend.restore()
        await eventually(lambda: sink.comm.connected, timeout=RECONNECT, what="the sink reconnecting")
        await eventually(lambda: sink.comm.stale == ["caller"], timeout=RECONNECT, what="the telescope back")
        # the sink is back and calls work, but what it kept waits for the receiver it knew, also when
        # that one takes a while (part of the scenario, not a wait for a condition: longer than an
        # XMPP peer-check round, whose "not there" for a peer not back yet is no verdict)
        proxy = await sink.comm.proxy("telescope", ITelescope)
        assert await proxy.park() is None
        await asyncio.sleep(2.0)
        assert sink.comm.outbox.waiting == 2 and sink.comm.stale == ["caller"]

        again = EventWatch()
        restarted = outage_backend.comm("caller")  # the receiver restarts, within the sink's grace
        await again.attach(restarted, images=True)
        await restarted.open()
        await eventually(lambda: len(again.images) == 2, timeout=RECONNECT, what="the kept events at the receiver")
        assert again.images == ["sink:/during-1.fits", "sink:/during-2.fits"]
        assert sink.comm.stale == [] and sink.comm.outbox.waiting == 0
        assert at_sink.closed == [] and at_sink.opened == []  # the same peer for the sink, not a new one
    finally:
        await _close(*(c for c in (restarted,) if c is not None), tel, sink)


async def test_peers_gone_while_we_were_down_still_get_the_events_kept(outage_backend: Any) -> None:
    """Our grace ended while our own link was still down (all peers offline, said once each): that
    says nothing about them, so the events kept wait at our reconnect for them once more (one fresh
    grace) and reach a receiver that is back only after us (seen at N = 100 on a loaded ejabberd)."""
    caller, sink, tel, _ = await _start(outage_backend, grace=60.0)
    await seen(sink.comm, "caller")
    sink.comm.peer_grace = 0.5
    at_sink = EventWatch()
    await at_sink.attach(sink.comm)
    restarted: Comm | None = None
    try:
        await outage_backend.cut()
        await eventually(lambda: not sink.comm.connected, timeout=RECONNECT, what="the sink noticing the loss")
        await asyncio.wait_for(caller.close(), 10.0)  # the receiver comes back only after the sink
        await eventually(
            lambda: sorted(at_sink.closed) == ["caller", "telescope"], what="the sink's grace ending while it is down"
        )
        for name in ("/during-1.fits", "/during-2.fits"):
            await sink.comm.send_event(NewImageEvent(name))
        sink.comm.peer_grace = 60.0  # the fresh grace after the reconnect (bounds the wait for the receiver)
        await outage_backend.restore()
        await eventually(lambda: sink.comm.connected, timeout=RECONNECT, what="the sink reconnecting")
        await eventually(lambda: "telescope" in sink.comm.clients, timeout=RECONNECT, what="the telescope back")
        assert sink.comm.outbox.waiting == 2  # kept for the receiver not back yet

        again = EventWatch()
        restarted = outage_backend.comm("caller")
        await again.attach(restarted, images=True)
        await restarted.open()
        await eventually(lambda: len(again.images) == 2, timeout=RECONNECT, what="the kept events at the receiver")
        assert again.images == ["sink:/during-1.fits", "sink:/during-2.fits"]
        assert sink.comm.outbox.waiting == 0
    finally:
        await _close(*(c for c in (restarted,) if c is not None), tel, sink)


async def test_events_kept_for_a_peer_not_back_go_out_with_a_warning(
    outage_backend: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A receiver that is not back within the fresh grace after our reconnect: the events kept go out
    to the others, and the sender says once, naming it, that they went out without it."""
    caller, sink, tel, _ = await _start(outage_backend, grace=60.0)
    await seen(sink.comm, "caller")
    sink.comm.peer_grace = 0.5
    try:
        await outage_backend.cut()
        await eventually(lambda: not sink.comm.connected, timeout=RECONNECT, what="the sink noticing the loss")
        await asyncio.wait_for(caller.close(), 10.0)  # the receiver does not come back
        await eventually(lambda: sink.comm.clients == [], what="the sink's grace ending while it is down")
        await sink.comm.send_event(NewImageEvent("/during.fits"))
        sink.comm.peer_grace = 1.0
        with caplog.at_level("WARNING", logger="pyobs.comm.comm"):
            await outage_backend.restore()
            await eventually(lambda: sink.comm.outbox.waiting == 0, timeout=RECONNECT, what="the kept event sent")
        warned = [r.getMessage() for r in caplog.records if "go out without" in r.getMessage()]
        assert len(warned) == 1 and "without caller" in warned[0], warned
    finally:
        await _close(tel, sink)
