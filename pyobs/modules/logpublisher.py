"""Log records as LogEvents, the way pyobs-core modules publish them."""

from __future__ import annotations

import asyncio
import collections
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pyobs.events import LogEvent
from pyobs.utils.owner import Publishers, current_owner

if TYPE_CHECKING:
    from .module import Module

#: records waiting to be sent; beyond this the oldest are dropped (a log flood must not grow memory)
QUEUE_SIZE = 1000
#: loggers whose records are never sent: the comm's own (sending them could loop) and libraries'
_IGNORED = ("pyobs.comm", "slixmpp", "dbus_fast", "asyncio")


def _is_module(obj: object) -> bool:
    from .module import Module

    return isinstance(obj, Module)


class LogPublisher(logging.Handler):
    """A logging handler that queues INFO+ records and sends them from a background task.

    ``emit`` never blocks and never awaits: logging must not wait for the network.
    """

    def __init__(self, module: Module, level: int = logging.INFO) -> None:
        super().__init__(level)
        self._module = module
        self._queue: collections.deque[LogEvent] = collections.deque(maxlen=QUEUE_SIZE)
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._overflow = 0  # records dropped because the queue was full (reported by the task)
        self._task = asyncio.get_running_loop().create_task(self._run())
        Publishers.count += 1

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(_IGNORED):
            return
        owner = current_owner.get()
        if owner is not None and owner is not self._module and _is_module(owner):
            return  # another module of this process logged it: that one sends it
        try:
            when = datetime.fromtimestamp(record.created, tz=UTC)
            if len(self._queue) == QUEUE_SIZE:
                self._overflow += 1  # the deque drops the oldest
            self._queue.append(
                LogEvent(
                    time=when.strftime("%Y-%m-%dT%H:%M:%S.%f"),
                    level=record.levelname,
                    filename=record.pathname,
                    function=record.funcName,
                    line=record.lineno,
                    message=record.getMessage(),
                    sender=self._module.comm.name,
                )
            )
            self._wakeup.set()
        except Exception:
            self.handleError(record)

    async def _run(self) -> None:
        comm = self._module.comm
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if self._overflow:
                logging.getLogger("pyobs.comm").warning(
                    "%s: %d log records not sent as LogEvent: more than %d at once",
                    comm.name, self._overflow, QUEUE_SIZE,
                )  # fmt: skip
                self._overflow = 0
            while self._queue:
                event = self._queue.popleft()
                try:
                    # the comm's outbox keeps it while it cannot be sent: this raises only for a
                    # comm that is closed (or an event it cannot encode)
                    await comm.send_event(event)
                except Exception as exc:
                    logging.getLogger("pyobs.comm").warning("LogEvent not sent: %s", exc)
            if self._stopping:
                return

    async def stop(self, timeout: float = 5.0) -> None:
        """Hand what is queued to the comm (whose close() delivers it), then end the task."""
        if not self._stopping:
            Publishers.count -= 1
        self._stopping = True
        self._wakeup.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except TimeoutError:
            self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
