"""The LocalComm shortcut (pyobs/comm/local/inprocess.py, and the core's ``_Resume`` in
``Comm._call``): a callee that does not wait finishes in the caller's task without a deadline or a
task; one that waits goes on in a task of its own. Its cancel, throw and close paths, on real
LocalComms (bench/README.md "Cost on a plain call" says why the shortcut stays)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from abc import abstractmethod
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pyobs.comm.calls import Call, CancelOutcome
from pyobs.comm.local import LocalComm, LocalNetwork
from pyobs.interfaces.interface import Interface
from pyobs.modules import Module
from pyobs.utils.exceptions import RemoteError, RemoteTimeoutError

#: set by the callee's methods: must never be seen by the caller
MARK: contextvars.ContextVar[str | None] = contextvars.ContextVar("test_inprocess_mark", default=None)
#: generous bound for a cancel or a close to reach the callee on a loaded machine [s]
BOUND = 5.0


class IShortcut(Interface):
    @abstractmethod
    async def at_once(self, value: int, **kwargs: Any) -> int: ...
    @abstractmethod
    async def waits(self, seconds: float, **kwargs: Any) -> int: ...
    @abstractmethod
    async def fails_at_once(self, **kwargs: Any) -> int: ...
    @abstractmethod
    async def fails_later(self, **kwargs: Any) -> int: ...


class Shortcut(Module, IShortcut):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tasks: list[asyncio.Task[Any] | None] = []
        self.started = asyncio.Event()
        self.cleaned = asyncio.Event()
        self.finished = asyncio.Event()
        self.cancelled = False

    async def at_once(self, value: int, **kwargs: Any) -> int:
        self.tasks.append(asyncio.current_task())
        MARK.set("callee")
        return value + 1

    async def waits(self, seconds: float, **kwargs: Any) -> int:
        self.tasks.append(asyncio.current_task())
        MARK.set("callee")
        self.started.set()
        try:
            await asyncio.sleep(seconds)
            self.tasks.append(asyncio.current_task())
            self.finished.set()
            return 7
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        finally:
            self.cleaned.set()

    async def fails_at_once(self, **kwargs: Any) -> int:
        raise ValueError("refused at once")

    async def fails_later(self, **kwargs: Any) -> int:
        await asyncio.sleep(0)
        raise ValueError("refused after a wait")


@contextlib.asynccontextmanager
async def shortcut_pair(timeout: float = 10.0) -> AsyncIterator[tuple[Shortcut, Any]]:
    """An open callee module and a proxy to it from a caller with the given call deadline [s]."""
    network = LocalNetwork()
    callee = Shortcut(comm=LocalComm("callee", network=network))
    await callee.open()
    caller = LocalComm("caller", network=network, timeout=timeout)
    await caller.open()
    try:
        yield callee, await caller.proxy("callee", IShortcut)
    finally:
        await caller.close()
        await callee.close()


@pytest.fixture
async def pair() -> AsyncIterator[tuple[Shortcut, Any]]:
    async with shortcut_pair() as callee_and_proxy:
        yield callee_and_proxy


async def _ended(event: asyncio.Event) -> None:
    await asyncio.wait_for(event.wait(), BOUND)


async def test_a_callee_that_does_not_wait_finishes_in_the_callers_task(pair: Any) -> None:
    callee, proxy = pair
    assert await proxy.at_once(41) == 42
    assert callee.tasks == [asyncio.current_task()]  # no task of its own
    assert MARK.get() is None  # ran in a copy of our context
    assert callee.comm.serving == 0


async def test_a_callee_that_waits_goes_on_in_a_task_of_its_own(pair: Any) -> None:
    callee, proxy = pair
    assert await proxy.waits(0.01) == 7
    first, after = callee.tasks
    assert first is asyncio.current_task()  # its first step ran here ...
    assert after is not None and after is not first  # ... the rest in its own task
    assert MARK.get() is None
    assert callee.comm.serving == 0


async def test_cancel_path_cancelling_the_caller_cancels_the_callee_through_the_cancel(pair: Any) -> None:
    callee, proxy = pair
    call = proxy.waits(30.0)
    task = asyncio.create_task(call)
    await _ended(callee.started)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # the caller's CancelledError was thrown into the waiting shortcut; the callee got a cancel
    assert callee.cleaned.is_set() and callee.cancelled
    assert call.cancel_outcome is CancelOutcome.CANCELLED
    assert callee.comm.serving == 0
    assert await proxy.at_once(1) == 2


async def test_throw_path_an_exception_in_the_first_step_is_rebuilt_for_the_caller(pair: Any) -> None:
    callee, proxy = pair
    with pytest.raises(ValueError, match="refused at once"):
        await proxy.fails_at_once()
    assert callee.comm.serving == 0


async def test_throw_path_an_exception_after_a_wait_is_rebuilt_for_the_caller(pair: Any) -> None:
    callee, proxy = pair
    with pytest.raises(ValueError, match="refused after a wait"):
        await proxy.fails_later()
    assert callee.comm.serving == 0


async def test_throw_path_the_deadline_thrown_into_a_waiting_call_cancels_the_callee() -> None:
    async with shortcut_pair(timeout=0.2) as (callee, proxy):
        call = proxy.waits(30.0)
        with pytest.raises(RemoteTimeoutError, match=r"callee\.waits\(\) timed out"):
            await call
        assert callee.cleaned.is_set() and callee.cancelled
        assert call.cancel_outcome is CancelOutcome.CANCELLED


async def test_throw_path_any_exception_thrown_into_the_call_reaches_the_caller(pair: Any) -> None:
    callee, proxy = pair
    call: Call = proxy.waits(0.05)
    pending = call.send(None)  # driven by hand, as a task would: the callee waits
    assert isinstance(pending, asyncio.Future)
    with pytest.raises(KeyError, match="thrown in"):
        call.throw(KeyError("thrown in"))
    # not a cancel: the callee is not told, and finishes in its own task
    await _ended(callee.finished)
    assert not callee.cancelled
    assert call.cancel_outcome is None


async def test_close_path_a_closed_call_leaves_the_callee_to_finish(pair: Any) -> None:
    callee, proxy = pair
    call: Call = proxy.waits(0.05)
    call.send(None)
    call.close()  # the caller's coroutine goes away without a cancel
    await _ended(callee.finished)
    assert not callee.cancelled
    assert await proxy.at_once(1) == 2


async def test_close_path_a_call_closed_before_it_started_never_runs(pair: Any) -> None:
    callee, proxy = pair
    call: Call = proxy.waits(0.05)
    call.close()
    assert await proxy.at_once(1) == 2
    assert len(callee.tasks) == 1  # only the at_once call ran
    assert not callee.started.is_set()


async def test_close_path_closing_the_callee_ends_a_waiting_in_process_call(pair: Any) -> None:
    callee, proxy = pair
    task = asyncio.create_task(proxy.waits(30.0))
    await _ended(callee.started)
    await callee.close()  # its served call's own task is cancelled (the fixture closes it again)
    with pytest.raises(RemoteError):
        await asyncio.wait_for(task, BOUND)
    assert callee.cleaned.is_set() and callee.cancelled
