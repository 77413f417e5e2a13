"""Long calls: cancellation that travels to the callee, and progress, the same on every transport."""

from __future__ import annotations

import asyncio
import contextlib
import time
from abc import abstractmethod
from typing import Any

import pytest
from backends.base import eventually
from support import module_and_caller

from pyobs.comm.calls import Call, CancelOutcome, Progress
from pyobs.interfaces.interface import Interface
from pyobs.modules import Module, not_cancellable, timeout
from pyobs.utils.exceptions import RemoteTimeoutError

#: the caller's await must end this soon after a cancel the callee obeys (measured: a few ms
#: in-process, ~1-3 ms over XMPP and D-Bus; generous for loaded CI machines)
CLEANUP_BOUND = 1.5


class ILongCalls(Interface):
    """Methods that take their time."""

    @abstractmethod
    async def expose(self, seconds: float, **kwargs: Any) -> str: ...
    @abstractmethod
    async def close_roof(self, seconds: float, **kwargs: Any) -> str: ...
    @abstractmethod
    async def stubborn(self, seconds: float, **kwargs: Any) -> str: ...
    @abstractmethod
    async def steps(self, count: int, pause: float, **kwargs: Any) -> int: ...
    @abstractmethod
    async def announced_steps(self, count: int, pause: float, **kwargs: Any) -> int: ...
    @abstractmethod
    async def helped(self, **kwargs: Any) -> int: ...
    @abstractmethod
    async def at_once(self, **kwargs: Any) -> int: ...


class LongCalls(Module, ILongCalls):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.started = asyncio.Event()
        self.cleaned_at: float | None = None
        self.finished_at: float | None = None
        self.cancelled = False
        self.go_late = asyncio.Event()
        self.late_task: asyncio.Task[None] | None = None
        self.late_told: bool | None = None

    async def expose(self, seconds: float, **kwargs: Any) -> str:
        self.started.set()
        try:
            await asyncio.sleep(seconds)
            return "done"
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        finally:
            self.cleaned_at = time.monotonic()

    @not_cancellable
    async def close_roof(self, seconds: float, **kwargs: Any) -> str:
        self.started.set()
        try:
            await asyncio.sleep(seconds)
            self.finished_at = time.monotonic()
            return "closed"
        except asyncio.CancelledError:
            self.cancelled = True
            raise

    async def stubborn(self, seconds: float, **kwargs: Any) -> str:
        """Ignores cancels (bounded: ends after ``seconds`` whatever happens)."""
        self.started.set()
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while (left := end - loop.time()) > 0:
            try:
                await asyncio.sleep(left)
            except asyncio.CancelledError:
                self.cancelled = True
        self.finished_at = time.monotonic()
        return "ignored"

    async def steps(self, count: int, pause: float, **kwargs: Any) -> int:
        for i in range(1, count + 1):
            await asyncio.sleep(pause)
            self.report_progress(i / count, f"step {i} of {count}")
        return count

    async def helped(self, **kwargs: Any) -> int:
        """Reports before its first wait, from a task it starts, and after; the task it leaves
        behind reports once the call is over (``late_told``: what report_progress answered)."""
        self.report_progress(0.0, "starting")

        async def helper() -> None:
            await asyncio.sleep(0)
            self.report_progress(0.5, "helper")

        async def late() -> None:
            await self.go_late.wait()
            self.late_told = self.report_progress(1.0, "late")

        self.late_task = asyncio.create_task(late())
        await asyncio.create_task(helper())
        self.report_progress(1.0, "done")
        return 3

    async def at_once(self, **kwargs: Any) -> int:
        """Reports and ends without waiting (in-process: within the caller's first step)."""
        self.report_progress(1.0, "at once")
        return 1

    @timeout(lambda self, count, pause, **kw: count * pause + 2.0)
    async def announced_steps(self, count: int, pause: float, **kwargs: Any) -> int:
        return await self.steps(count, pause)


def _pair(backend: Any, timeout: float = 10.0) -> contextlib.AbstractAsyncContextManager[tuple[LongCalls, Any, Any]]:
    """An open LongCalls ``callee`` and a ``caller`` comm with this call deadline: (callee, caller, proxy)."""
    return module_and_caller(backend, LongCalls, "callee", ILongCalls, timeout=timeout)


async def test_cancelling_the_caller_cancels_the_callee(backend: Any) -> None:
    async with _pair(backend) as (callee, _caller, proxy):
        call = proxy.expose(30.0)
        assert isinstance(call, Call)
        task = asyncio.create_task(call)  # a Call is a coroutine: tasks take it
        await asyncio.wait_for(callee.started.wait(), 5.0)
        start = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        ended = time.monotonic()
        # the caller's await ended only after the callee's cleanup had run
        assert callee.cancelled and callee.cleaned_at is not None
        assert start <= callee.cleaned_at <= ended
        assert ended - start < CLEANUP_BOUND
        assert call.cancel_outcome is CancelOutcome.CANCELLED
        assert await proxy.steps(1, 0.0) == 1  # both go on working


async def test_the_deadline_cancels_the_callee(backend: Any) -> None:
    async with _pair(backend, timeout=0.5) as (callee, _caller, proxy):
        call = proxy.expose(30.0)
        start = time.monotonic()
        with pytest.raises(RemoteTimeoutError, match=r"callee\.expose\(\) timed out") as info:
            await call
        ended = time.monotonic()
        assert "goes on" not in str(info.value)
        assert callee.cancelled and callee.cleaned_at is not None and callee.cleaned_at <= ended
        assert 0.4 < ended - start < 0.5 + CLEANUP_BOUND
        assert call.cancel_outcome is CancelOutcome.CANCELLED


async def test_a_method_that_is_not_cancellable_goes_on_and_the_caller_is_told(backend: Any) -> None:
    async with _pair(backend) as (callee, caller, proxy):
        call = proxy.close_roof(0.8)
        task = asyncio.ensure_future(call)
        await asyncio.wait_for(callee.started.wait(), 5.0)
        start = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError, match="does not allow cancelling close_roof"):
            await task
        assert time.monotonic() - start < CLEANUP_BOUND
        assert call.cancel_outcome is CancelOutcome.NOT_CANCELLABLE
        # the roof closes all the same
        await eventually(lambda: callee.finished_at is not None, 5.0, "the method to finish")
        assert not callee.cancelled

        # the deadline likewise: the caller gets its timeout, told that the method goes on
        callee.finished_at = None
        caller.timeout = 0.3
        with pytest.raises(RemoteTimeoutError, match=r"does not allow cancelling close_roof.*goes on"):
            await proxy.close_roof(0.8)
        await eventually(lambda: callee.finished_at is not None, 5.0, "the method to finish")
        assert not callee.cancelled


async def test_a_callee_that_ignores_the_cancel_does_not_hold_up_the_caller(backend: Any) -> None:
    async with _pair(backend) as (callee, caller, proxy):
        caller.cancel_grace = 0.5
        call = proxy.stubborn(1.5)
        task = asyncio.ensure_future(call)
        await asyncio.wait_for(callee.started.wait(), 5.0)
        start = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        elapsed = time.monotonic() - start
        assert elapsed < 0.5 + CLEANUP_BOUND
        assert callee.cancelled  # it was told
        assert callee.finished_at is None  # and still runs
        assert call.cancel_outcome in (CancelOutcome.RUNNING, CancelOutcome.UNCONFIRMED)
        await eventually(lambda: callee.finished_at is not None, 5.0, "the method to finish")


async def test_progress_arrives_in_order_by_callback_and_iterator(backend: Any) -> None:
    async with _pair(backend) as (callee, _caller, proxy):
        callee.comm.progress_interval = 0.0  # every notice leaves (the rate limit has its own test)
        seen_by_callback: list[Progress] = []
        call = proxy.steps(20, 0.005).on_progress(seen_by_callback.append)
        followed = [p async for p in call.progress()]  # starts the call; ends when it ends
        assert await call == 20
        for notices in (seen_by_callback, followed):
            assert [p.seq for p in notices] == list(range(1, 21))
            assert [p.fraction for p in notices] == [i / 20 for i in range(1, 21)]
            assert notices[-1].message == "step 20 of 20"
        assert call.latest == followed[-1]


async def test_progress_from_the_first_step_and_from_a_task_the_method_started(backend: Any) -> None:
    async with _pair(backend) as (callee, _caller, proxy):
        callee.comm.progress_interval = 0.0
        notices: list[Progress] = []
        assert await proxy.helped().on_progress(notices.append) == 3
        assert [p.message for p in notices] == ["starting", "helper", "done"]
        # the task it left behind reports after the call is over: to nobody
        callee.go_late.set()
        assert callee.late_task is not None
        await asyncio.wait_for(callee.late_task, 5.0)
        assert callee.late_told is False
        notices.clear()
        assert await proxy.at_once().on_progress(notices.append) == 1
        assert [(p.fraction, p.message) for p in notices] == [(1.0, "at once")]


async def test_progress_is_rate_limited_and_the_last_notice_always_arrives(backend: Any) -> None:
    async with _pair(backend) as (callee, _caller, proxy):
        callee.comm.progress_interval = 0.1
        notices: list[Progress] = []
        start = time.monotonic()
        assert await proxy.steps(60, 0.005).on_progress(notices.append) == 60
        elapsed = time.monotonic() - start
        # at most one per interval (plus the first and the flushed last one), in order, last = 60/60
        assert 2 <= len(notices) <= elapsed / 0.1 + 2
        assert [p.seq for p in notices] == list(range(1, len(notices) + 1))
        fractions = [p.fraction for p in notices]
        assert fractions == sorted(fractions) and fractions[-1] == 1.0


async def test_progress_and_the_timeout_announcement_work_together(backend: Any) -> None:
    async with _pair(backend, timeout=0.3) as (callee, _caller, proxy):
        callee.comm.progress_interval = 0.0
        notices: list[Progress] = []
        # 0.8 s, beyond the caller's 0.3 s: the @timeout announcement extends the deadline
        assert await proxy.announced_steps(8, 0.1).on_progress(notices.append) == 8
        assert [p.seq for p in notices] == list(range(1, 9))


async def test_report_progress_outside_a_remote_call_and_bad_values(backend: Any) -> None:
    async with _pair(backend) as (callee, _caller, _):
        assert callee.report_progress(0.5, "nobody asked") is False
        assert await callee.steps(2, 0.0) == 2  # called directly: reports go nowhere, no error
        with pytest.raises(ValueError, match=r"within 0\.\.1"):
            callee.report_progress(1.5)
        with pytest.raises(TypeError, match="number"):
            callee.report_progress("half")  # type: ignore[arg-type]


async def test_progress_with_a_coroutine_callback_and_cancel_of_a_call_by_name(backend: Any) -> None:
    async with _pair(backend) as (callee, caller, proxy):
        callee.comm.progress_interval = 0.0
        got: list[int] = []

        async def on_progress(p: Progress) -> None:
            got.append(p.seq)

        call = proxy.steps(3, 0.01)
        assert await call.on_progress(on_progress) == 3
        await eventually(lambda: len(got) == 3, 5.0, "the callbacks to run")
        assert sorted(got) == [1, 2, 3]
        assert [p async for p in call.progress()] == []  # the call is over: nothing more comes
        assert call.latest is not None and call.latest.fraction == 1.0

        # execute() by name stays a coroutine (as in pyobs-core); cancelling it cancels the call
        callee.started.clear()
        task = asyncio.ensure_future(caller.execute("callee", "expose", 30.0))
        await asyncio.wait_for(callee.started.wait(), 5.0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert callee.cancelled and callee.cleaned_at is not None
