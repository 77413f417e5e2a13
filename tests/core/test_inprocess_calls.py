"""The LocalComm shortcut (``LocalTransport.call_inline``, pyobs/comm/local/inprocess.py, and the
core's ``Waiting`` in ``Comm._send``): a callee that does not wait finishes in the caller's task
without a deadline or a task; one that waits goes on in a task of its own. Its cancel, throw and close paths, on real
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
from pyobs.comm.comm import Peer
from pyobs.comm.local import LocalComm, LocalNetwork
from pyobs.interfaces.interface import Interface
from pyobs.modules import Module
from pyobs.utils.exceptions import RemoteError, RemoteTimeoutError
from pyobs.utils.owner import current_owner

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
    @abstractmethod
    async def context_seen(self, **kwargs: Any) -> str: ...
    @abstractmethod
    async def returns_none(self, **kwargs: Any) -> int: ...
    @abstractmethod
    async def returns_value(self, **kwargs: Any) -> None: ...


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

    async def context_seen(self, **kwargs: Any) -> str:
        owner = current_owner.get()
        return f"{MARK.get()} {owner.name if owner is not None else None}"

    async def returns_none(self, **kwargs: Any) -> int:
        return None  # type: ignore[return-value]  # a bug the cast must still catch

    async def returns_value(self, **kwargs: Any) -> None:
        return 5  # type: ignore[return-value]  # a bug the cast must still catch


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


async def test_the_callee_runs_in_a_copy_of_its_modules_context_not_the_callers(pair: Any) -> None:
    callee, proxy = pair
    token = MARK.set("caller")
    try:
        # as in another process: none of the caller's context variables, and the callee's code
        # runs as its own module (its log records are its own, pyobs.utils.owner)
        assert await proxy.context_seen() == f"None {callee.name}"
    finally:
        MARK.reset(token)


async def test_only_a_call_that_waits_gets_a_wire_id(pair: Any) -> None:
    _, proxy = pair
    at_once: Call = proxy.at_once(1)
    assert await at_once == 2
    assert at_once.wire_id is None  # it ended in its first step: nothing to cancel
    waits: Call = proxy.waits(0.01)
    assert await waits == 7
    assert waits.wire_id is not None  # what a cancel would have named


async def test_a_void_or_none_result_is_still_checked_against_the_declaration(pair: Any) -> None:
    _, proxy = pair
    with pytest.raises(Exception, match="expected int, got NoneType"):
        await proxy.returns_none()
    with pytest.raises(Exception, match="expected None, got int"):
        await proxy.returns_value()


async def test_a_proxy_makes_the_same_call_as_the_class_does(pair: Any) -> None:
    _, proxy = pair
    from_proxy: Call = proxy.at_once(1)
    by_class = Call(proxy._comm, proxy._peer, from_proxy._spec, (1,), {})
    slots = [s for s in Call.__slots__ if s != "__dict__"]
    assert {s: getattr(from_proxy, s) for s in slots} == {s: getattr(by_class, s) for s in slots}
    assert isinstance(from_proxy._peer, Peer)
    assert await from_proxy == 2 and await by_class == 2


async def test_a_call_is_run_once(pair: Any) -> None:
    _, proxy = pair
    call: Call = proxy.at_once(1)
    assert await call == 2
    with pytest.raises(RuntimeError, match="awaited already"):
        await call
    followed: Call = proxy.waits(0.01)
    progress = followed.progress()  # starts the call in a task of its own
    with pytest.raises(RuntimeError, match="already runs in a task"):
        followed.send(None)
    assert [p async for p in progress] == []
    assert await followed == 7  # the await waits for that task


async def test_the_transports_own_coroutine_call_runs_the_same_call(pair: Any) -> None:
    # LocalTransport.call (the Transport contract) for code that drives a transport itself; the
    # core uses call_inline
    callee, proxy = pair
    transport = proxy._comm.transport
    at_once, waits, fails = (callee.comm.method(name) for name in ("at_once", "waits", "fails_later"))
    announced: list[float] = []
    assert await transport.call("callee", at_once, [41], announced.append) == 42
    assert await transport.call("callee", waits, [0.01], announced.append) == 7
    with pytest.raises(ValueError, match="refused after a wait"):
        await transport.call("callee", fails, [], announced.append)
    assert callee.comm.serving == 0 and announced == []
