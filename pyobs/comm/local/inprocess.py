"""The in-process call: how a LocalComm caller runs its callee's ``handle_call``.

The callee's first step runs at once (``LocalTransport.call_inline``, a plain function the core
calls), in the caller's task but in a copy of the callee module's own context (``owner_context``):
a method that does not wait finishes there, with no task, no coroutine of the transport and no
event-loop round (the fast path, see bench/README.md "Cost on a plain call"). A method that waits
goes on in a task of its own, in that context, as it would in another process: a caller's cancel
reaches it only through the cancel path (``Comm.cancel_call``), never by accident of sharing the
caller's task; it sees none of the caller's context variables, and its own never leak into the
caller.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Coroutine
from typing import Any

from pyobs.utils.exceptions import RemoteError

from ..calls import CURRENT_CALL, IN_COMM, _Continue
from ..errors import describe, rebuild


def continue_in_task(coro: Coroutine[Any, Any, Any], first: Any, ctx: contextvars.Context) -> asyncio.Task[Any]:
    """Continue an incoming call's ``handle_call`` coroutine, whose first step ran in ``ctx`` and
    yielded ``first``, as a task of its own in ``ctx``, which becomes the call's task (what a
    cancel from the caller cancels, see ``Comm.cancel_call``)."""
    task = asyncio.get_running_loop().create_task(_resume(coro, first), context=ctx)
    entry = ctx.get(CURRENT_CALL)
    if entry is not None and entry is not CURRENT_CALL.get():
        # the callee's own call (set in its first step) runs in this task: what a cancel cancels
        serving = entry[IN_COMM]._record(entry)
        if serving is not None:
            serving.task = task
    return task


async def _resume(coro: Coroutine[Any, Any, Any], first: Any) -> Any:
    return await _Continue(coro, first)


def answer_of(answer: asyncio.Future[Any], task: asyncio.Task[Any], where: str) -> None:
    """Hand a callee task's outcome to the waiting caller (if it still waits)."""
    if answer.done():  # the caller stopped waiting: the outcome is nobody's (marked as read)
        if not task.cancelled():
            task.exception()
        return
    if task.cancelled():
        answer.set_exception(RemoteError(f"{where} was cancelled at the callee"))
        return
    exc = task.exception()
    if exc is not None:
        answer.set_exception(rebuild(describe(exc), where))
    else:
        answer.set_result(task.result())
