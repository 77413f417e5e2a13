"""Log records as LogEvents, the way pyobs-core modules publish them."""

from __future__ import annotations

import asyncio
import collections
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pyobs.events import LogEvent

if TYPE_CHECKING:
    from .module import Module

#: records waiting to be sent; beyond this the oldest are dropped (a log flood must not grow memory)
QUEUE_SIZE = 1000
#: loggers whose records are never sent: the comm's own (sending them could loop) and libraries'
_IGNORED = ("pyobs.comm", "slixmpp", "dbus_fast", "asyncio")


#: the publishers of this process: a MultiModule runs several modules, each with one on the root
#: logger, and a record must go out once, not once per module
_PUBLISHERS: list[LogPublisher] = []


def _owner(record: logging.LogRecord) -> LogPublisher | None:
    """The publisher that sends ``record``: the module its message names (``"camera: ..."``, the
    convention of pyobs modules), else the only module whose class is defined where the record's
    logger is (``logging.getLogger(__name__)``), else the first one of the process."""
    if len(_PUBLISHERS) == 1:
        return _PUBLISHERS[0]
    message = record.getMessage()
    for publisher in _PUBLISHERS:
        name = publisher._module.comm.name
        if message.startswith(name) and message[len(name) : len(name) + 1] == ":":
            return publisher
    by_logger = [p for p in _PUBLISHERS if type(p._module).__module__ == record.name]
    if len(by_logger) == 1:
        return by_logger[0]
    return _PUBLISHERS[0] if _PUBLISHERS else None


class LogPublisher(logging.Handler):
    """A logging handler that queues INFO+ records and sends them from a background task.

    ``emit`` never blocks and never awaits: logging must not wait for the network.
    """

    def __init__(self, module: Module, level: int = logging.INFO) -> None:
        super().__init__(level)
        self._module = module
        self._queue: collections.deque[LogEvent] = collections.deque(maxlen=QUEUE_SIZE)
        self._wakeup = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())
        _PUBLISHERS.append(self)

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(_IGNORED) or _owner(record) is not self:
            return
        try:
            when = datetime.fromtimestamp(record.created, tz=UTC)
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
            while self._queue:
                event = self._queue.popleft()
                try:
                    await comm.send_event(event)
                except Exception as exc:  # the comm is closing or down: drop, say so once
                    logging.getLogger("pyobs.comm").debug("LogEvent not sent: %s", exc)

    async def stop(self) -> None:
        if self in _PUBLISHERS:
            _PUBLISHERS.remove(self)
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
