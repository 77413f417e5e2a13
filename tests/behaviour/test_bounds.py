"""Bounds a peer cannot push: call durations it announces, calls it makes at once, events it sends
faster than a handler works. Implemented in the core, so the same on every transport."""

from __future__ import annotations

import asyncio
import logging
from abc import abstractmethod
from typing import Any

import pytest
from backends.base import eventually
from support import IKitchenSink, KitchenSink, opened, seen

from pyobs.events import Event
from pyobs.interfaces.interface import Interface
from pyobs.modules import Module, timeout
from pyobs.utils.exceptions import ModuleBusyError, RemoteTimeoutError


class ILongWinded(Interface):
    """Announces whatever duration it is asked to (as a hostile or broken callee would)."""

    @abstractmethod
    async def hang(self, announce: float, **kwargs: Any) -> None: ...


class LongWinded(Module, ILongWinded):
    @timeout(lambda self, announce: announce)
    async def hang(self, announce: float, **kwargs: Any) -> None:
        await asyncio.sleep(3600)


class BoundsEvent(Event):
    """An event only these tests use."""

    number: int = 0


@pytest.mark.parametrize("announced", [float("inf"), 1e308, 86400.0, float("nan")])
async def test_an_announced_duration_is_capped_by_max_call_timeout(backend: Any, announced: float) -> None:
    callee = await opened(LongWinded(comm=backend.comm("callee")))
    caller = backend.comm("caller", timeout=1.0, max_call_timeout=1.5)
    await caller.open()
    try:
        await seen(caller, "callee")
        proxy = await caller.proxy("callee", ILongWinded)
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(RemoteTimeoutError):
            # bounded here too, so that a broken cap fails the test instead of hanging it
            await asyncio.wait_for(proxy.hang(announced), 15)
        # cut to max_call_timeout plus the margin for the answer (1 s), or not extended at all (NaN)
        assert loop.time() - start < 1.5 + 1.0 + 2.0
    finally:
        await caller.close()
        await callee.close()


async def test_calls_past_max_calls_get_a_busy_fault(backend: Any) -> None:
    sink = await opened(KitchenSink(comm=backend.comm("sink", max_calls=3)))
    caller = backend.comm("caller")
    await caller.open()
    try:
        await seen(caller, "sink")
        proxy = await caller.proxy("sink", IKitchenSink)
        slow = [asyncio.ensure_future(proxy.sleep(1.0)) for _ in range(3)]
        await eventually(lambda: sink.comm.serving == 3, what="three calls being served")
        with pytest.raises(ModuleBusyError, match=r"busy.*max_calls"):
            await proxy.echo_int(1)
        assert sink.comm.busy_refusals == 1
        assert await asyncio.gather(*slow) == [1.0, 1.0, 1.0]
        assert await proxy.echo_int(7) == 7  # served again once below the cap
        assert sink.comm.serving == 0
    finally:
        await caller.close()
        await sink.close()


async def test_a_slow_handler_works_on_a_bounded_number_of_events(
    backend: Any, caplog: pytest.LogCaptureFixture
) -> None:
    receiver = backend.comm("receiver", max_handler_tasks=2, handler_queue_size=3)
    sender = backend.comm("sender")
    release = asyncio.Event()
    running = 0
    handled: list[int] = []

    async def handler(event: BoundsEvent, sender_name: str) -> bool:
        nonlocal running
        running += 1
        try:
            await release.wait()
        finally:
            running -= 1
        handled.append(event.number)
        return True

    await receiver.open()
    await receiver.register_event(BoundsEvent, handler)
    await sender.open()
    await sender.register_event(BoundsEvent)
    try:
        await seen(sender, "receiver")
        await seen(receiver, "sender")
        with caplog.at_level(logging.WARNING, logger="pyobs.comm"):
            for i in range(10):
                await sender.send_event(BoundsEvent(number=i))
            # 2 run, 3 wait, the 5 oldest waiting ones were dropped (counted, one log line)
            await eventually(lambda: receiver.dropped_events == 5, what="five dropped events")
        await eventually(lambda: running == 2, what="two handlers running")
        assert caplog.text.count("is behind") == 1
        release.set()
        await eventually(lambda: len(handled) == 5, what="the kept events handled")
        assert sorted(handled) == [0, 1, 7, 8, 9]
        assert running == 0
    finally:
        await sender.close()
        await receiver.close()
