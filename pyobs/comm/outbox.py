"""Where an outgoing event waits until it is sent: the Comm core's outbox, one for every transport.

``Comm.send_event()`` hands every event to :class:`Outbox`. When the module is announced and its
transport connected and nothing is waiting, the event goes straight to the transport (the fast
path: one check, no task, no copy). Otherwise it waits here, in the order it was sent:

* before the module is announced (peers cannot subscribe to a module they do not know yet), e.g.
  a LogEvent of a module that logs in ``open()``;
* while the transport has reported its connection lost
  (:meth:`~pyobs.comm.transport.TransportHandler.connection_changed`);
* after a publish the transport refused with :class:`~pyobs.comm.transport.NotConnected`.

Waiting events go out, oldest first, as soon as the module is announced, as soon as the connection
is back, and — so that no event ever waits for a report that may never come — on a retry timer with
backoff while the module is announced and connected but the transport still says "not connected".

Bounded: at most ``capacity`` events wait; beyond that the oldest are dropped, counted, and
reported in one warning per :data:`WARN_INTERVAL` seconds. ``close()`` delivers what waits within
:data:`CLOSE_GRACE` seconds when the transport can; only what is left after that is reported as
"N queued events not sent before closing".

A transport that writes an event and learns later whether the server took it (XMPP publishes
confirmed by an IQ result) keeps the unconfirmed ones itself; after a reconnect the core has them
written again (``Transport.resend_unconfirmed``) right before this outbox flushes: so they still go
out before anything that waited here, and the order holds. The core connects this outbox again
only once the peers it knew are back or their grace ended (``Comm.connection_changed``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterator

from pyobs.events.event import Event

from .backoff import backoff
from .transport import NotConnected

log = logging.getLogger(__name__)

#: default number of events that may wait
CAPACITY = 10000
#: the first retry after NotConnected, and the longest pause between retries [s]
RETRY_MIN = 0.05
RETRY_MAX = 2.0
#: how long close() tries to deliver what waits [s]
CLOSE_GRACE = 3.0
#: at most one "queue full" warning per this many seconds [s]
WARN_INTERVAL = 10.0


class Outbox:
    """The bounded, ordered queue of one module's outgoing events, and its counters.

    Args:
        owner: the module name (for log messages).
        publish: the transport's ``publish_event``.
        capacity: how many events may wait at most.
    """

    def __init__(self, owner: str, publish: Callable[[Event], Awaitable[None]], capacity: int = CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("the event queue needs room for at least one event")
        self.owner = owner
        self.capacity = int(capacity)
        self._publish = publish
        self._queue: deque[Event] = deque()
        self._sent: dict[type[Event], int] = {}  # per class: the cheapest count on the hot path
        #: events dropped because the queue was full
        self.dropped = 0
        #: events the transport refused for another reason than the connection (logged each)
        self.refused = 0
        #: events still waiting when the outbox was closed
        self.unsent = 0
        self._announced = False
        self._connected = False
        self._ready = False  # announced and connected: may send
        self._busy = False  # a direct publish is under way (a second sender must queue behind it)
        self._flusher: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()  # ends a retry pause early (the connection is reported back)
        self._warned_at = float("-inf")
        self._dropped_since_warning = 0
        self._closed = False

    # ------------------------------------------------------------------ state

    def open(self) -> None:
        """(Re)start after :meth:`close`: not announced, not connected yet; counters are kept."""
        self._closed = False
        self._announced = self._connected = self._ready = False

    @property
    def sent(self) -> Counter[str]:
        """Events handed to the transport, per event type name."""
        return Counter({cls.__name__: n for cls, n in self._sent.items()})

    @property
    def waiting(self) -> int:
        """How many events wait to be sent."""
        return len(self._queue)

    def set_announced(self, announced: bool) -> None:
        self._announced = announced
        self._update()

    def set_connected(self, connected: bool) -> None:
        self._connected = connected
        self._update()

    def _update(self) -> None:
        self._ready = self._announced and self._connected and not self._closed
        if self._ready and self._queue:
            self._wake.set()
            self._kick()

    # ------------------------------------------------------------------ sending

    async def send(self, event: Event) -> None:
        """Send ``event`` now if possible, else queue it (never blocks for long, never raises for
        connectivity; a transport's other errors, e.g. a value it cannot encode, are raised)."""
        if self._closed:
            raise RuntimeError(f"cannot send {type(event).__name__}: comm of '{self.owner}' is closed")
        if self._ready and not self._queue and not self._busy:
            self._busy = True
            try:
                await self._publish(event)
            except NotConnected:
                self._queue.appendleft(event)  # nothing else waits: it is the oldest
                self._kick()
                return
            finally:
                self._busy = False
            sent, cls = self._sent, type(event)
            sent[cls] = sent.get(cls, 0) + 1
            if self._queue:  # others queued behind us meanwhile
                self._kick()
            return
        self._put(event)
        if self._ready and not self._busy:  # a running direct publish kicks the flush when it is done
            self._kick()

    def _put(self, event: Event) -> None:
        queue = self._queue
        queue.append(event)
        if len(queue) <= self.capacity:
            return
        queue.popleft()
        self.dropped += 1
        self._dropped_since_warning += 1
        now = time.monotonic()
        if now - self._warned_at >= WARN_INTERVAL:
            log.warning(
                "%s: cannot send events (not connected) and the event queue is full (%d): dropped the %d oldest "
                "event(s) since the last warning, %d in total",
                self.owner, self.capacity, self._dropped_since_warning, self.dropped,
            )  # fmt: skip
            self._warned_at = now
            self._dropped_since_warning = 0

    def _kick(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        """Send what waits, in order, while ready; retry with backoff when the transport says
        it is not connected (until it reports the connection lost, or the queue is empty)."""
        pauses: Iterator[float] | None = None  # retry pacing, started by the first NotConnected
        queue = self._queue
        while queue and self._ready:
            event = queue[0]
            try:
                await self._publish(event)
            except NotConnected:
                self._wake.clear()
                if pauses is None:
                    pauses = backoff(RETRY_MIN, RETRY_MAX)
                try:  # a pause, unless the transport reports the connection back meanwhile
                    await asyncio.wait_for(self._wake.wait(), next(pauses))
                except TimeoutError:
                    pass
                continue
            except Exception as exc:  # not a connection problem: retrying cannot help
                self.refused += 1
                log.error("%s: the transport refused a queued %s, dropped: %s", self.owner, type(event).__name__, exc)
            else:
                cls = type(event)
                self._sent[cls] = self._sent.get(cls, 0) + 1
                pauses = None
            if queue and queue[0] is event:
                queue.popleft()

    # ------------------------------------------------------------------ closing

    async def close(self, grace: float = CLOSE_GRACE) -> int:
        """Deliver what waits (within ``grace`` seconds, if the module is announced), then stop.

        Returns how many events were left unsent (also kept in :attr:`unsent`), with one warning.
        """
        if self._queue and self._announced:
            loop = asyncio.get_running_loop()
            end = loop.time() + grace
            while self._queue and loop.time() < end:
                if self._ready:
                    self._kick()
                flusher = self._flusher
                if flusher is not None and not flusher.done():
                    await asyncio.wait({flusher}, timeout=max(0.0, end - loop.time()))
                else:  # not connected: the transport reconnects by itself; look again soon
                    await asyncio.sleep(min(RETRY_MIN, max(0.0, end - loop.time())))
        self._closed = True
        self._ready = False
        flusher, self._flusher = self._flusher, None
        if flusher is not None and not flusher.done():
            flusher.cancel()
            await asyncio.gather(flusher, return_exceptions=True)
        self.unsent = len(self._queue)
        if self._queue:
            why = "not connected" if self._announced else "the module never went online"
            log.warning("%s: %d queued events not sent before closing (%s)", self.owner, len(self._queue), why)
            self._queue.clear()
        return self.unsent

    def summary(self) -> str:
        """One line for the log at exit: what was sent, per type, and what was lost."""
        sent = ", ".join(f"{name}={n}" for name, n in sorted(self.sent.items())) or "none"
        return (
            f"events sent: {sent}; {sum(self.sent.values())} in total, "
            f"{self.dropped} dropped, {self.refused} refused, {self.unsent} unsent"
        )
