"""The Comm core's policies against an in-memory fake transport: deadlines, de-duplication,
peer-gone aborts and the connectivity policy (grace, NotConnected, state subscribed again)."""

from __future__ import annotations

import asyncio
import time
from abc import abstractmethod
from typing import Any

import pytest
from backends.base import eventually
from event_watch import EventWatch
from fake_transport import FakeNetwork, FakeTransport

from pyobs.comm import Comm
from pyobs.comm.backoff import backoff
from pyobs.comm.transport import NotConnected
from pyobs.events import Event
from pyobs.interfaces import IMotion
from pyobs.interfaces.interface import Interface
from pyobs.interfaces.types import MotionState
from pyobs.modules import Module, timeout
from pyobs.utils.enums import MotionStatus
from pyobs.utils.exceptions import RemoteError, RemoteTimeoutError


class PolicyEvent(Event):
    """An event for the de-duplication tests."""

    number: int = 0


class ISlow(Interface):
    @abstractmethod
    async def wait(self, seconds: float, **kwargs: Any) -> float: ...
    @abstractmethod
    async def wait_announced(self, seconds: float, announced: float, **kwargs: Any) -> float: ...
    @abstractmethod
    async def silent(self, **kwargs: Any) -> None: ...


class Slow(Module, ISlow, IMotion):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.started = asyncio.Event()

    async def open(self) -> None:
        await super().open()
        await self.comm.set_state(IMotion, MotionState(status=MotionStatus.IDLE))

    async def wait(self, seconds: float, **kwargs: Any) -> float:
        self.started.set()
        await asyncio.sleep(seconds)
        return seconds

    @timeout(lambda self, seconds, announced: announced)
    async def wait_announced(self, seconds: float, announced: float, **kwargs: Any) -> float:
        self.started.set()
        await asyncio.sleep(seconds)
        return seconds

    async def silent(self, **kwargs: Any) -> None:
        return None

    async def init(self, **kwargs: Any) -> None:
        return None

    async def park(self, **kwargs: Any) -> None:
        return None

    async def stop_motion(self, device: str | None = None, **kwargs: Any) -> None:
        return None

    async def is_ready(self, **kwargs: Any) -> bool:
        return True


class Pair:
    """A callee module ``slow`` and a plain caller comm on one fake network."""

    def __init__(self, timeout: float = 5.0, grace: float = 5.0) -> None:
        self.network = FakeNetwork()
        self.callee = Slow(comm=Comm(FakeTransport("slow", self.network), timeout=timeout, peer_grace=grace))
        self.transport = FakeTransport("caller", self.network)
        self.caller = Comm(self.transport, timeout=timeout, peer_grace=grace)
        #: the caller's ModuleOpened/ModuleClosed events
        self.watch = EventWatch()
        self.opened = self.watch.opened
        self.closed = self.watch.closed

    async def __aenter__(self) -> Pair:
        await self.watch.attach(self.caller)
        await self.callee.open()
        await self.caller.open()
        await eventually(lambda: self.caller.is_online("slow"), what="callee seen")
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.caller.close()
        await self.callee.close()


# ---------------------------------------------------------------------------------- deadlines


async def test_a_call_that_is_never_answered_ends_once_at_its_deadline() -> None:
    async with Pair(timeout=0.3) as pair:
        pair.transport.unanswered.add("silent")
        proxy = await pair.caller.proxy("slow", ISlow)
        start = time.monotonic()
        with pytest.raises(RemoteTimeoutError, match="deadline passed"):
            await proxy.silent()
        elapsed = time.monotonic() - start
        assert 0.29 <= elapsed < 1.5
        # the transport's call was cancelled by the core's deadline, exactly once, and nothing is left
        assert pair.transport.calls_started == 1 and pair.transport.calls_cancelled == 1
        assert not any(pair.caller._inflight.values())


async def test_the_callee_announced_duration_extends_the_deadline() -> None:
    async with Pair(timeout=0.2) as pair:
        proxy = await pair.caller.proxy("slow", ISlow)
        # 0.5 s of work, announced as 0.6 s: beyond the 0.2 s default deadline, within the announced one
        assert await proxy.wait_announced(0.5, 0.6) == 0.5
        # without an announcement the default deadline holds
        with pytest.raises(RemoteTimeoutError):
            await proxy.wait(0.5)


async def test_an_announced_duration_is_a_deadline_too() -> None:
    async with Pair(timeout=0.2) as pair:
        proxy = await pair.caller.proxy("slow", ISlow)
        start = time.monotonic()
        with pytest.raises(RemoteTimeoutError):
            await proxy.wait_announced(30.0, 0.1)  # announced 0.1 s (+1 s margin for the answer), takes 30 s
        assert time.monotonic() - start < 3.0


# ---------------------------------------------------------------------------------- peers


async def test_a_peer_that_goes_away_ends_the_calls_to_it_at_once() -> None:
    async with Pair(timeout=10.0) as pair:
        proxy = await pair.caller.proxy("slow", ISlow)
        call = asyncio.ensure_future(proxy.wait(30.0))
        await asyncio.wait_for(pair.callee.started.wait(), 5.0)
        start = time.monotonic()
        await pair.callee.close()
        with pytest.raises(RemoteError, match="went offline"):
            await call
        assert time.monotonic() - start < 1.0
        assert pair.closed == ["slow"]


# ---------------------------------------------------------------------------------- events


async def test_duplicates_are_dropped_within_the_window_and_the_window_is_bounded() -> None:
    async with Pair() as pair:
        got: list[int] = []

        async def handler(event: Any, sender: str) -> bool:
            got.append(event.number)
            return True

        await pair.caller.register_event(PolicyEvent, handler)
        first = PolicyEvent(number=-1)
        pair.caller.event_received("slow", first)
        pair.caller.event_received("slow", first)  # a retried publish
        await eventually(lambda: len(got) == 1, what="first event")
        for i in range(1024):  # fills the window: the first uuid falls out of it
            pair.caller.event_received("slow", PolicyEvent(number=i))
        await eventually(lambda: len(got) == 1025, what="the other events")
        assert len(pair.caller._seen) == 1024
        pair.caller.event_received("slow", first)  # remembered no longer: delivered again
        await eventually(lambda: len(got) == 1026, what="the replay")
        assert got.count(-1) == 2


# ---------------------------------------------------------------------------------- connectivity


async def test_while_our_link_is_down_peers_stay_and_calls_fail_at_once() -> None:
    async with Pair(timeout=10.0, grace=5.0) as pair:
        proxy = await pair.caller.proxy("slow", ISlow)
        pending = asyncio.ensure_future(proxy.wait(30.0))
        await asyncio.wait_for(pair.callee.started.wait(), 5.0)
        start = time.monotonic()
        pair.network.cut("server restarting")
        with pytest.raises(NotConnected, match="connection was lost"):
            await pending
        with pytest.raises(NotConnected, match=r"not connected .*server restarting"):
            await proxy.wait(0.0)
        assert time.monotonic() - start < 1.0
        assert pair.caller.is_online("slow") and pair.caller._peers["slow"].stale
        assert pair.closed == []
        # the last state we had stays readable (the proxy subscribed to it)
        assert (await pair.caller.get_state("slow", IMotion)).status is MotionStatus.IDLE


async def test_peers_seen_again_within_the_grace_stay_and_their_state_is_subscribed_again() -> None:
    async with Pair(grace=5.0) as pair:
        states: list[MotionStatus] = []

        async def on_state(state: Any, sender: str) -> None:
            states.append(state.status)

        await pair.caller.subscribe_state("slow", IMotion, on_state)
        assert (await pair.caller.get_state("slow", IMotion)).status is MotionStatus.IDLE
        subscribes = len(pair.transport.subscribes)
        pair.network.cut()
        # changed while we were away: the new value is read when subscribing again
        await pair.callee.comm.set_state(IMotion, MotionState(status=MotionStatus.SLEWING))
        pair.network.restore()
        await eventually(lambda: len(pair.transport.subscribes) > subscribes, what="subscribed again")
        await eventually(
            lambda: pair.caller._state_cache[("slow", "IMotion")].status is MotionStatus.SLEWING,
            what="the state changed meanwhile",
        )
        await eventually(lambda: MotionStatus.SLEWING in states, what="handlers told of the change meanwhile")
        await pair.callee.comm.set_state(IMotion, MotionState(status=MotionStatus.TRACKING))
        await eventually(lambda: MotionStatus.TRACKING in states, what="a change after the reconnect")
        assert not pair.caller._peers["slow"].stale
        assert pair.closed == [] and pair.opened == ["slow"]  # one ModuleOpened, no ModuleClosed
        proxy = await pair.caller.proxy("slow", ISlow)
        assert await proxy.wait(0.0) == 0.0


async def test_peers_not_seen_again_within_the_grace_after_the_reconnect_go_offline() -> None:
    async with Pair(grace=0.3) as pair:
        pair.network.cut()
        pair.network.restore(back=["caller"])  # the callee did not come back
        assert pair.caller.is_online("slow")  # for the grace
        start = time.monotonic()
        await eventually(lambda: pair.closed == ["slow"], what="ModuleClosedEvent after the grace")
        assert time.monotonic() - start >= 0.25
        assert not pair.caller.is_online("slow")


async def test_all_peers_go_offline_when_our_link_stays_down_past_the_grace() -> None:
    async with Pair(grace=0.3) as pair:
        start = time.monotonic()
        pair.network.cut()
        await eventually(lambda: pair.closed == ["slow"], what="ModuleClosedEvent after the grace")
        assert time.monotonic() - start >= 0.25
        assert pair.caller.clients == []
        pair.network.restore()  # back later: a new ModuleOpenedEvent
        await eventually(lambda: pair.opened == ["slow", "slow"], what="seen again")


async def test_events_sent_while_the_link_is_down_wait_in_the_outbox_and_arrive_in_order() -> None:
    async with Pair(grace=5.0) as pair:
        got: list[int] = []

        async def handler(event: Any, sender: str) -> bool:
            got.append(event.number)
            return True

        await pair.caller.register_event(PolicyEvent, handler)
        sender = pair.callee.comm
        await sender.register_event(PolicyEvent)
        await sender.send_event(PolicyEvent(number=0))
        await eventually(lambda: got == [0], what="an event before the cut")
        pair.network.cut()
        for i in (1, 2, 3):
            await sender.send_event(PolicyEvent(number=i))  # neither raises nor blocks
        assert sender.outbox.waiting == 3 and got == [0]
        pair.network.restore()
        await eventually(lambda: got == [0, 1, 2, 3], what="the kept events, in order")
        assert sender.outbox.waiting == 0


# ---------------------------------------------------------------------------------- the grace after a reconnect


class Fleet:
    """A plain ``sender`` comm and modules ``a`` and ``b`` that handle PolicyEvent, on one fake network;
    ``sender`` records ModuleOpened/Closed events and ``a``/``b`` the PolicyEvents that reach them."""

    def __init__(self, grace: float) -> None:
        self.network = FakeNetwork()
        self.transport = FakeTransport("sender", self.network)
        self.sender = Comm(self.transport, peer_grace=grace)
        self.modules = {n: Slow(comm=Comm(FakeTransport(n, self.network), peer_grace=grace)) for n in ("a", "b")}
        self.got: dict[str, list[int]] = {"a": [], "b": []}
        #: the sender's ModuleOpened/ModuleClosed events
        self.watch = EventWatch()
        self.opened = self.watch.opened
        self.closed = self.watch.closed

    async def open_module(self, name: str) -> None:
        got = self.got[name]

        async def on_event(event: Any, sender: str) -> bool:
            got.append(event.number)
            return True

        module = self.modules[name]
        await module.comm.register_event(PolicyEvent, on_event)
        await module.open()

    async def __aenter__(self) -> Fleet:
        await self.watch.attach(self.sender)
        await self.sender.register_event(PolicyEvent)
        for name in self.modules:
            await self.open_module(name)
        await self.sender.open()
        await eventually(lambda: sorted(self.sender.clients) == ["a", "b"], what="a and b seen")
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.sender.close()
        for module in self.modules.values():
            await module.close()

    async def send(self, *numbers: int) -> None:
        for number in numbers:
            await self.sender.send_event(PolicyEvent(number=number))


async def test_events_kept_during_an_outage_wait_for_the_peers_that_come_back_within_the_grace() -> None:
    async with Fleet(grace=5.0) as fleet:
        fleet.network.cut()
        await fleet.send(1, 2)
        fleet.transport.unconfirmed = [PolicyEvent(number=0)]  # written before the cut, never confirmed
        fleet.network.restore(later=["b"])  # a is back with us, b reconnects later
        assert fleet.sender.connected and fleet.sender.stale == ["b"]
        proxy = await fleet.sender.proxy("a", ISlow)
        assert await proxy.wait(0.0) == 0.0  # calls work at once
        await fleet.send(3)  # behind the kept ones
        assert fleet.sender.outbox.waiting == 3 and fleet.transport.resends == 0  # held for b
        assert fleet.got["a"] == []
        fleet.network.rejoin("b")
        for name in ("a", "b"):
            await eventually(lambda n=name: fleet.got[n] == [0, 1, 2, 3], what=f"the kept events at {name}, in order")
        assert fleet.transport.resends == 1 and fleet.sender.outbox.waiting == 0
        assert fleet.closed == [] and fleet.transport.forgotten == []
        assert fleet.sender.stale == []


async def test_peers_not_back_within_the_grace_go_offline_once_each_and_the_kept_events_go_out() -> None:
    grace = 0.4
    async with Fleet(grace=grace) as fleet:
        fleet.network.cut()
        await fleet.send(1, 2)
        fleet.network.restore(later=["b"])
        start = time.monotonic()
        assert fleet.sender.outbox.waiting == 2 and fleet.closed == []
        await eventually(lambda: fleet.closed == ["b"], what="b reported gone after the grace")
        assert time.monotonic() - start >= grace - 0.05
        await eventually(lambda: fleet.got["a"] == [1, 2], what="the kept events, at the end of the grace")
        assert fleet.transport.forgotten == ["b"] and fleet.sender.clients == ["a"]
        # b comes back later: a new peer, once
        fleet.network.rejoin("b")
        await eventually(lambda: fleet.opened == ["a", "b", "b"], what="b seen again as a new peer")
        await fleet.send(3)
        await eventually(lambda: fleet.got["b"] == [3], what="an event to b")
        assert fleet.closed == ["b"] and fleet.transport.forgotten == ["b"]  # exactly once


async def test_a_second_drop_during_the_grace_starts_it_again() -> None:
    grace = 1.2
    loop = asyncio.get_running_loop()
    async with Fleet(grace=grace) as fleet:
        fleet.network.cut()
        await fleet.send(1)
        fleet.network.restore(later=["b"])
        restored = loop.time()
        proxy = await fleet.sender.proxy("a", ISlow)
        assert await proxy.wait(0.0) == 0.0  # a round trip: the loop ran, and the event still waits for b
        assert fleet.sender.outbox.waiting == 1
        await asyncio.sleep(grace / 2)  # the scenario: the link goes again half-way through the grace
        fleet.network.cut()  # everybody stale again, a fresh grace
        cut = loop.time()
        assert sorted(fleet.sender.stale) == ["a", "b"]
        await fleet.send(2)
        # past the end of the first grace, within the second: nobody may be reported gone
        await asyncio.sleep(max(0.0, restored + 1.25 * grace - loop.time()))
        assert fleet.closed == [] and fleet.sender.outbox.waiting == 2
        assert loop.time() < cut + grace, "the machine was too slow for this check to mean anything"
        fleet.network.restore(later=["b"])
        fleet.network.rejoin("b")
        for name in ("a", "b"):
            await eventually(lambda n=name: fleet.got[n] == [1, 2], what=f"the kept events at {name}")
        assert fleet.closed == [] and fleet.sender.stale == []
        await asyncio.sleep(grace)  # past every grace armed: still nobody gone
        assert fleet.closed == [] and fleet.transport.forgotten == []


async def test_closing_during_the_grace_sends_what_waits_to_the_peers_back_and_reports_nobody_gone() -> None:
    grace = 1.0
    async with Fleet(grace=grace) as fleet:
        fleet.network.cut()
        await fleet.send(1, 2)
        fleet.network.restore(later=["b"])
        start = time.monotonic()
        await fleet.sender.close()
        assert time.monotonic() - start < grace  # does not wait for the grace
        assert fleet.sender.outbox.unsent == 0 and fleet.got["a"] == [1, 2]
        await asyncio.sleep(grace)  # past the grace: its timer went with close()
        assert fleet.closed == [] and fleet.transport.forgotten == []


async def test_a_peer_gone_just_before_our_link_went_is_waited_for_too() -> None:
    async with Fleet(grace=5.0) as fleet:
        await fleet.modules["b"].close()  # e.g. the server ended its session just before ours
        await eventually(lambda: fleet.closed == ["b"], what="b gone")
        fleet.network.cut()
        await fleet.send(1)
        fleet.network.restore()
        proxy = await fleet.sender.proxy("a", ISlow)
        assert await proxy.wait(0.0) == 0.0  # a round trip: the loop ran, and the event still waits for b
        assert fleet.sender.outbox.waiting == 1  # b may come back with the server
        fleet.modules["b"] = Slow(comm=Comm(FakeTransport("b", fleet.network), peer_grace=5.0))
        await fleet.open_module("b")
        for name in ("a", "b"):
            await eventually(lambda n=name: fleet.got[n] == [1], what=f"the kept event at {name}")
        assert fleet.opened == ["a", "b", "b"] and fleet.closed == ["b"]


# ---------------------------------------------------------------------------------- backoff


def test_backoff_grows_to_its_cap_with_jitter_below_each_step() -> None:
    pauses = list(backoff(0.1, 1.0, jitter=0.2, attempts=8))
    assert len(pauses) == 8
    steps = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0]
    assert all(0.8 * s - 1e-9 <= p <= s + 1e-9 for p, s in zip(pauses, steps, strict=True))
    assert list(backoff(0.1, 0.1, jitter=0.0, attempts=3)) == [0.1, 0.1, 0.1]
    assert list(backoff(1.0, 0.5, jitter=0.0, attempts=2)) == [1.0, 1.0]  # a first pause above the cap
    with pytest.raises(ValueError, match="first pause > 0"):
        next(backoff(0.0, 0.5))
