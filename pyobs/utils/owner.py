"""Which module's code is running, so that in a process with several modules (a MultiModule) each log
record becomes a LogEvent of the module that logged it, not of every module in the process.

Set while an object's ``open()``/``close()`` runs (tasks started there inherit it), while a comm runs
an incoming call, and in the tasks of a comm's event handlers.
"""

from __future__ import annotations

from contextvars import Context, ContextVar, copy_context
from typing import Any

#: the module (or other Object) whose code runs in this context; None: nobody's in particular
current_owner: ContextVar[Any] = ContextVar("pyobs_current_owner", default=None)


class Publishers:
    """How many modules of this process publish their log records: telling them apart matters only
    with two or more, so the hot path of an in-process call skips it otherwise."""

    count = 0


def context_of(owner: Any) -> Context:
    """A context in which ``owner``'s code runs (for tasks created on its behalf)."""
    ctx = copy_context()
    ctx.run(current_owner.set, owner)
    return ctx
