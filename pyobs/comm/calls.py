"""Long calls: a handle for each outgoing call (progress, how a cancel ended) and the callee's
book-keeping of the calls it serves (who may cancel them, rate-limited progress).

Caller side: a proxy method returns a :class:`Call`. ``await proxy.method()`` reads as before (a
``Call`` is a coroutine, so ``asyncio.create_task`` and ``gather`` take it too); the handle adds
progress::

    call = camera.grab_data()
    call.on_progress(lambda p: print(p.fraction, p.message))    # a callback ...
    async for p in call.progress():                             # ... or an async iterator
        print(p.fraction, p.message)
    filename = await call

Cancelling the task that awaits a call, or the call's deadline passing, sends a cancel to the
callee (the core does it, :meth:`pyobs.comm.Comm._cancel_remote`); :attr:`Call.cancel_outcome`
then says what became of it.

Callee side: the core registers every call it serves (``Incoming``, a tuple) under the
transport's key for it, so a cancel finds its task; a method reports progress with
:func:`report_progress`, which finds the call it belongs to through a context variable (so helpers
and sub-tasks the method starts report for it too, and a method called directly in-process reports
to nobody). The book-keeping a cancel or progress needs (:class:`Serving`) is made only when it
is needed: a plain call that never reports progress and is never cancelled pays for none of it.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Generator, Hashable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from pyobs.interfaces.interface import MethodSpec

    from .comm import Comm, Peer
    from .proxy import Proxy

log = logging.getLogger(__name__)

#: longest progress message sent (longer ones are cut, with an ellipsis)
MAX_PROGRESS_MESSAGE = 200
#: notices kept per progress iterator that is not read fast enough (older ones are skipped:
#: progress is a "latest value", the iterator always ends with the newest)
PROGRESS_BUFFER = 64
#: a callee waits at most this long for a cancelled method to end before it answers, whatever
#: the caller asks for
MAX_CANCEL_WAIT = 30.0


class CancelOutcome(StrEnum):
    """What became of a cancel (also the word on the wire, see docs/cancel.md)."""

    #: the callee's method ended after the cancel: its cleanup (``finally``) ran
    CANCELLED = "cancelled"
    #: the method is marked ``@not_cancellable``: it goes on
    NOT_CANCELLABLE = "not-cancellable"
    #: the method got the cancel but had not ended when the callee answered
    RUNNING = "running"
    #: the callee runs no such call (it had just finished, or never arrived)
    UNKNOWN = "unknown"
    #: the peer cannot be cancelled (a pyobs-core module): nothing was sent, it goes on
    UNSUPPORTED = "unsupported"
    #: no answer within the caller's ``cancel_grace``
    UNCONFIRMED = "unconfirmed"
    #: the call had not left yet: nothing runs
    NOT_SENT = "not-sent"


class CallCancelledError(Exception):
    """The answer a callee gives to a call its caller cancelled (the caller no longer waits for it)."""


@dataclass(frozen=True)
class Progress:
    """One progress notice of a call."""

    #: done so far, 0..1 (None: the method does not know)
    fraction: float | None
    #: what it is doing, e.g. "exposing" (at most MAX_PROGRESS_MESSAGE characters)
    message: str
    #: 1, 2, ... in the order the callee reported them
    seq: int


ProgressCallback = Callable[[Progress], Any]
#: progress callbacks that are coroutines, running (a task needs a reference until it is done)
_CALLBACK_TASKS: set[asyncio.Future[Any]] = set()
#: the transport's way to send a progress notice to the caller: (seq, fraction, message)
ProgressSink = Callable[[int, float | None, str], None]


def check_progress(fraction: Any, message: Any) -> tuple[float | None, str]:
    """Validate a progress report (ValueError/TypeError naming the problem); cut long messages."""
    if fraction is not None:
        if isinstance(fraction, bool) or not isinstance(fraction, int | float):
            raise TypeError(f"progress fraction must be a number in 0..1 or None, not {type(fraction).__name__}")
        fraction = float(fraction)
        if not (math.isfinite(fraction) and 0.0 <= fraction <= 1.0):
            raise ValueError(f"progress fraction must be within 0..1, got {fraction}")
    if not isinstance(message, str):
        raise TypeError(f"progress message must be a str, not {type(message).__name__}")
    if len(message) > MAX_PROGRESS_MESSAGE:
        message = message[: MAX_PROGRESS_MESSAGE - 1] + "…"
    return fraction, message


# ==================================================================================== caller side


class Call(Coroutine[Any, Any, Any]):
    """One outgoing call: awaitable like the coroutine it wraps, plus progress and cancel outcome.

    Created by proxy methods and :meth:`pyobs.comm.Comm.execute`; it starts when it is awaited,
    wrapped in a task, or when :meth:`progress` is first iterated.
    """

    # what every call sets lives in slots; the rest are class-level defaults, set on the
    # instance (in a __dict__ made then) only by calls that use them: the handle is made for
    # every call (hot path)
    __slots__ = ("__dict__", "_args", "_began", "_comm", "_ended", "_kwargs", "_peer", "_spec", "wire_id")

    #: what became of a cancel of this call (None: it was not cancelled)
    cancel_outcome: CancelOutcome | None = None
    #: the newest progress notice
    latest: Progress | None = None
    #: the task progress() started the call in (an ``await`` then waits for it)
    _task: asyncio.Future[Any] | None = None
    #: the run of the call that send/throw/close drive (create_task, gather, or that task)
    _gen: Generator[Any, None, Any] | None = None
    _callbacks: list[ProgressCallback] | None = None
    _followers: list[_Follower] | None = None
    # the deadline book-keeping (Comm._wait): the timer is armed only once the call has to wait,
    # so a call that completes without suspending (in-process) costs none
    #: the armed deadline
    _deadline: asyncio.Timeout | None = None
    #: when the call ends at the latest, as the callee announced it (before the deadline is armed)
    _until: float | None = None
    #: the peer went offline (or our comm closed) while the call waited
    _gone = False
    #: why our own link went, if that ended the call
    _lost: str | None = None
    #: a tool's ``deadline_observer`` (pyobs.comm.comm), told the seconds to the deadline on announcements
    _observer: Callable[[float], None] | None = None

    def __init__(self, comm: Comm, peer: Peer, spec: MethodSpec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        # proxy_method() fills the same slots without this frame: keep the two in step
        self._comm = comm
        self._peer = peer
        self._spec = spec
        self._args = args
        self._kwargs = kwargs
        #: the transport's id of the call on the wire (set once it waits for the answer; what a cancel names)
        self.wire_id: Hashable | None = None
        self._began = False
        self._ended = False

    @property
    def module(self) -> str:
        return self._peer.name

    @property
    def method(self) -> str:
        return self._spec.name

    def __repr__(self) -> str:
        return f"<Call {self.module}.{self.method}()>"

    # -- the deadline (the caller's core keeps it here: one object per call on the hot path)

    def _extend(self, seconds: float) -> None:
        """The callee announced how long the call takes (the transport's announce callback)."""
        comm = self._comm
        limit = comm.max_call_timeout
        # a peer must not hold us longer than max_call_timeout, nor forever
        if not (isinstance(seconds, int | float) and math.isfinite(seconds)) or seconds < 0:
            comm._limited.warning(
                "bad-extend",
                "ignored a call duration of %r announced by %s (not a finite number >= 0)", seconds, self.module,
            )  # fmt: skip
            return
        if seconds > limit:
            comm._limited.warning(
                "long-extend", "%s announced a call duration of %.0f s; waiting at most max_call_timeout=%.0f s",
                self.module, seconds, limit,
            )  # fmt: skip
            seconds = limit
        # the callee's estimate plus a margin for the answer to travel back
        seconds += max(1.0, 0.1 * seconds)
        until = asyncio.get_running_loop().time() + seconds
        if self._observer is not None:
            self._observer(seconds)
        if self._deadline is None:
            self._until = until
        else:
            self._deadline.reschedule(until)

    def _abort(self, lost: str | None = None) -> None:
        """The peer went offline, our comm closed, or (``lost``: why) our link went: the waiting call ends now."""
        self._gone = True
        self._lost = lost
        if self._deadline is not None:
            self._deadline.reschedule(asyncio.get_running_loop().time())

    # -- running the call: ``await call`` is this one generator (the cheapest awaitable there is:
    # a plain call's whole caller side is one frame); what it does is the core's (Comm._send,
    # Comm._wait, Comm._cast_result)

    def __await__(self, driven: bool = False) -> Generator[Any, None, Any]:
        # driven: this run is the one send/throw/close drive (_started), not an ``await``
        if self._task is not None and not driven:  # progress() started it in a task: wait for that
            return (yield from self._task)
        if self._began:
            raise RuntimeError(f"{self!r} is awaited already")
        self._began = True
        comm = self._comm
        try:
            if self._spec is None:  # a NamedCall: the peer and its method are looked up now
                self._peer, self._spec = yield from comm._lookup(self.module, self.method).__await__()
            result = comm._send(self)
            if type(result) is Waiting:  # it has to wait for the answer: under its deadline
                result = yield from comm._wait(self._peer, self._spec, result.answer, self).__await__()
        finally:
            self._ended = True  # late progress notices are dropped
            if self._followers is not None:
                self.ended()
        if comm._transport.typed_values:
            return result  # cast by the callee against this very MethodSpec
        return comm._cast_result(self._peer, self._spec, result)

    # -- the coroutine protocol (create_task, gather: they drive the call with send/throw/close)

    def _started(self) -> Generator[Any, None, Any]:
        gen = self._gen
        if gen is None:
            gen = self._gen = self.__await__(True)
        elif self._task is not None and self._task is not asyncio.current_task():
            raise RuntimeError(f"{self!r} already runs in a task: await the call instead")
        return gen

    def send(self, value: Any) -> Any:
        return self._started().send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        if val is None and tb is None:
            return self._started().throw(typ)
        return self._started().throw(typ, val, tb)

    def close(self) -> None:
        if self._gen is not None:
            self._gen.close()

    # -- progress

    def on_progress(self, callback: ProgressCallback) -> Call:
        """Call ``callback(progress)`` for every progress notice (a coroutine function is run as a
        task); returns the call, so ``await proxy.method().on_progress(show)`` reads in one line."""
        if self._callbacks is None:
            self._callbacks = []
        self._callbacks.append(callback)
        return self

    def progress(self) -> AsyncIterator[Progress]:
        """The call's progress notices as they arrive; ends when the call ends (it is started in
        a task of its own if it is not running yet; ``await`` the call for its result)."""
        follower = _Follower()
        if self._followers is None:
            self._followers = []
        self._followers.append(follower)
        if self._ended:
            follower.ended = True
        elif not self._began and self._gen is None:
            self._gen = self.__await__(True)  # what the task drives (through send/throw)
            self._task = asyncio.ensure_future(self)
        return follower.iterate()

    def progress_received(self, seq: int, fraction: float | None, message: str) -> None:
        """A notice arrived (from the transport). Older or repeated ones and bad values are dropped."""
        latest = self.latest
        if self._ended or (latest is not None and seq <= latest.seq):
            return
        try:
            fraction, message = check_progress(fraction, message)
        except (TypeError, ValueError) as exc:
            log.warning("dropped a progress notice of %s.%s(): %s", self.module, self.method, exc)
            return
        progress = self.latest = Progress(fraction, message, seq)
        if self._callbacks:
            for callback in self._callbacks:
                try:
                    result = callback(progress)
                    if asyncio.iscoroutine(result):
                        task = asyncio.ensure_future(result)
                        _CALLBACK_TASKS.add(task)  # referenced until done
                        task.add_done_callback(self._callback_done)
                except Exception:
                    log.exception("progress callback %r of %s.%s() failed", callback, self.module, self.method)
        if self._followers:
            for follower in self._followers:
                follower.push(progress)

    def _callback_done(self, task: asyncio.Future[Any]) -> None:
        _CALLBACK_TASKS.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a progress callback of %s.%s() failed", self.module, self.method, exc_info=task.exception())

    def ended(self) -> None:
        """The call is over (the core calls this): progress iterators stop, late notices are dropped."""
        self._ended = True
        for follower in self._followers or ():
            follower.end()


def proxy_method(spec: MethodSpec) -> Callable[..., Call]:
    """The function a proxy class has for the remote method ``spec``: returns the :class:`Call`.

    It fills the new Call's slots itself, as ``Call.__init__`` does (keep the two in step): every
    proxy call makes one, and a class call with its ``__init__`` frame costs ~0.6k instructions
    more (bench/README.md "Cost on a plain call").
    """
    new = object.__new__

    def method(proxy: Proxy, *args: Any, **kwargs: Any) -> Call:
        call: Call = new(Call)
        call._comm = proxy._comm
        call._peer = proxy._peer
        call._spec = spec
        call._args = args
        call._kwargs = kwargs
        call.wire_id = None
        call._began = False
        call._ended = False
        return call

    return method


class Waiting:
    """A call sent that has to wait for its answer (``Comm._send``; an in-process transport's
    ``call_inline`` when the callee's first step did not finish it): the answer to await, under
    the call's deadline (``Comm._wait``)."""

    __slots__ = ("answer",)

    def __init__(self, answer: Awaitable[Any]) -> None:
        self.answer = answer


class NamedCall(Call):
    """A call by module and method name (:meth:`pyobs.comm.Comm.execute`): the peer is looked up when it starts."""

    __slots__ = ("_method", "_module")

    def __init__(self, comm: Comm, module: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        super().__init__(comm, None, None, args, kwargs)  # type: ignore[arg-type]  # looked up when it starts
        self._module = module
        self._method = method

    @property
    def module(self) -> str:
        return self._module

    @property
    def method(self) -> str:
        return self._method


class _Follower:
    """One ``async for`` over a call's progress."""

    __slots__ = ("ended", "queue", "wake")

    def __init__(self) -> None:
        self.queue: deque[Progress] = deque(maxlen=PROGRESS_BUFFER)
        self.wake = asyncio.Event()
        self.ended = False

    def push(self, progress: Progress) -> None:
        self.queue.append(progress)
        self.wake.set()

    def end(self) -> None:
        self.ended = True
        self.wake.set()

    async def iterate(self) -> AsyncIterator[Progress]:
        while True:
            if self.queue:
                yield self.queue.popleft()
                continue
            if self.ended:
                return
            self.wake.clear()
            await self.wake.wait()


# ==================================================================================== callee side


#: A call the core serves, as it knows it from the start: a plain tuple (building a named tuple or
#: an object costs every served call ~1.5k instructions more), read by the indices below. What only
#: some calls need (the task, the cancel flag, rate-limited progress) is a :class:`Serving`
#: record, made on demand.
Incoming = tuple["Comm", Hashable, str, str, bool, "ProgressSink | None", Any]
#: the serving Comm (it keeps the records)
IN_COMM: Final = 0
#: the transport's id of the call (what a cancel names), or the method's coroutine when it has none
IN_KEY: Final = 1
IN_SENDER: Final = 2
IN_METHOD: Final = 3
IN_CANCELLABLE: Final = 4
#: sends a progress notice to the caller (None: the caller cannot receive them)
IN_SINK: Final = 5
#: the method's coroutine (what a cancel looks for among the tasks, see task_awaiting)
IN_CORO: Final = 6

#: the call being served in this context (set by the core around the method)
CURRENT_CALL: contextvars.ContextVar[Incoming | None] = contextvars.ContextVar("pyobs_current_call", default=None)


class Serving:
    """What the core keeps of a served call beyond its ``Incoming``, made only when needed (the
    method reports progress, a cancel comes, or the in-process call goes on in a task of its own):
    its task (what a cancel cancels) and its rate-limited progress."""

    __slots__ = ("cancel_requested", "entry", "interval", "last_sent", "pending", "seq", "sink", "task", "timer")

    def __init__(self, entry: Incoming, interval: float) -> None:
        self.entry = entry
        self.interval = interval
        #: the task running the method (found when a cancel comes, or set by continue_in_task)
        self.task: asyncio.Task[Any] | None = None
        self.cancel_requested = False
        self.seq = 0
        self.last_sent = -math.inf
        self.pending: tuple[float | None, str] | None = None
        self.timer: asyncio.TimerHandle | None = None
        #: None once the method ended: no more notices
        self.sink: ProgressSink | None = entry[IN_SINK]

    def report(self, fraction: float | None, message: str) -> None:
        """Send now, or (within ``interval`` of the last notice) keep the newest and send it when
        the interval is over: at most one notice per interval leaves, and the last one always does."""
        if self.sink is None:
            return
        if self.timer is not None:
            self.pending = (fraction, message)
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        if now - self.last_sent >= self.interval:
            self._send(fraction, message, now)
        else:
            self.pending = (fraction, message)
            self.timer = loop.call_at(self.last_sent + self.interval, self._flush)

    def _flush(self) -> None:
        self.timer = None
        pending, self.pending = self.pending, None
        if pending is not None and self.sink is not None:
            self._send(pending[0], pending[1], asyncio.get_running_loop().time())

    def _send(self, fraction: float | None, message: str, now: float) -> None:
        assert self.sink is not None
        self.seq += 1
        self.last_sent = now
        try:
            self.sink(self.seq, fraction, message)
        except Exception as exc:  # progress is advisory: a closed connection must not fail the method
            log.debug("progress of %s() not sent: %s", self.entry[IN_METHOD], exc)

    def finish(self) -> None:
        """The method ended: the newest pending notice leaves now (before the answer), then no more."""
        if self.timer is not None:
            self.timer.cancel()
            self._flush()
        self.sink = None


def report_progress(fraction: float | None = None, message: str = "") -> bool:
    """Report the progress of the call being served (from inside a module's method, or a task it
    started). ``fraction`` is 0..1 or None; ``message`` says what is going on.

    Rate-limited on the wire (the comm's ``progress_interval``); the newest report always reaches
    the caller before the answer. Returns False when there is no remote caller to tell (the
    method was called directly, or by a pyobs-core module), True otherwise.
    """
    fraction, message = check_progress(fraction, message)
    entry = CURRENT_CALL.get()
    if entry is None or entry[IN_SINK] is None:
        return False
    serving = entry[IN_COMM]._record(entry)
    if serving is None or serving.sink is None:
        return False  # the call is over (a sub-task of the method reports late)
    serving.report(fraction, message)
    return True


def not_cancellable(func: Any) -> Any:
    """Mark a module's method as not cancellable (e.g. closing a roof must finish): a caller's
    cancel is answered with ``not-cancellable`` and the method goes on."""
    func.__pyobs_cancellable__ = False
    return func


def task_awaiting(coro: Any, depth: int = 64) -> asyncio.Task[Any] | None:
    """The task whose chain of awaits reaches ``coro`` (None if none does). Looked up only when a
    cancel comes, so a served call that is never cancelled costs no task lookup."""
    if coro is None:
        return None
    for task in asyncio.all_tasks():
        link: Any = task.get_coro()
        for _ in range(depth):
            if link is None:
                break
            if link is coro:
                return task
            link = getattr(link, "cr_await", None) or getattr(link, "gi_yieldfrom", None)
    return None


class _Continue:
    """Awaitable that continues a coroutine which already yielded ``first``."""

    __slots__ = ("coro", "first")

    def __init__(self, coro: Coroutine[Any, Any, Any], first: Any) -> None:
        self.coro = coro
        self.first = first

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, pending = self.coro, self.first
        while True:
            try:
                sent = yield pending
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:
                try:
                    pending = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    pending = coro.send(sent)
                except StopIteration as stop:
                    return stop.value
