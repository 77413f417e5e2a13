"""The link of a D-Bus module to its bus: connecting, watching the connection, reconnecting.

Owns: the :class:`~dbus_fast.aio.MessageBus` (None while down), whether we are closing, and the
watcher task that notices the bus going and reconnects with :func:`~pyobs.comm.backoff.backoff`.
Reports only "lost" and "back" (the core decides what that means for peers and calls). Everything
else talks to the bus through the link: sends, the transport's own requests, and the calls of
:mod:`.calls`. It is also the one module that uses dbus-fast's private API: the reply handlers by
serial (``MessageBus._method_return_handlers``), so a call answers through a callback without a
future and a task per call, and a call we stop waiting for leaves nothing behind;
``tests/dbus/test_dbus_adapter.py`` fails loudly when dbus-fast changes it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from dbus_fast import BusType, Message, MessageFlag
from dbus_fast.aio import MessageBus

from pyobs.utils.exceptions import RemoteError

from ..backoff import RECONNECT_CAP, RECONNECT_FIRST, backoff
from ..transport import NotConnected
from .wire import DBUS_NAME, DBUS_PATH, ERROR, sent

log = logging.getLogger(__name__)

#: flow control of signal bursts: a round trip to the bus daemon after this many signals sent less
#: than BURST_WINDOW [s] apart (dbus-fast takes a full socket for a broken connection)
BURST = 32
BURST_WINDOW = 0.05


class Link:
    """One module's connection to the bus.

    Args:
        owner: the module name (for messages).
        bus: ``"session"``, ``"system"`` or an address such as ``"unix:path=/tmp/bus"``.
        timeout: deadline of the link's own requests (connecting, the bus's methods).
        on_message: handler of every incoming message (dbus-fast's message handler protocol).
        setup: run on every (re)connection before it counts as up (match rules, name, discovery).
        on_lost: the connection went, with a reason; we reconnect by ourselves.
        on_back: reconnected (``setup`` done); awaited before the link counts as back.
    """

    def __init__(
        self,
        owner: str,
        bus: str,
        timeout: float,
        on_message: Callable[[Message], Message | bool | None],
        setup: Callable[[], Awaitable[None]],
        on_lost: Callable[[str], None],
        on_back: Callable[[], Awaitable[None]],
    ) -> None:
        if bus == "session":
            self._bus_type, self._address = BusType.SESSION, None
        elif bus == "system":
            self._bus_type, self._address = BusType.SYSTEM, None
        elif isinstance(bus, str) and ":" in bus:
            self._bus_type, self._address = BusType.SESSION, bus
        else:
            raise ValueError(
                f"invalid bus {bus!r}: expected 'session', 'system' or an address like 'unix:path=/tmp/bus'"
            )
        self.owner = owner
        self.description = bus
        self.timeout = timeout
        self._on_message = on_message
        self._setup = setup
        self._on_lost = on_lost
        self._on_back = on_back
        self._bus: MessageBus | None = None
        self._closing = False
        self._watch: asyncio.Task[None] | None = None
        self._burst = 0
        self._burst_start = 0.0

    @property
    def up(self) -> bool:
        return self._bus is not None

    @property
    def unique_name(self) -> str | None:
        """Our connection's unique name (``:1.42``), None while down."""
        bus = self._bus
        return bus.unique_name if bus is not None else None

    # ------------------------------------------------------------------ connecting

    async def open(self) -> None:
        self._closing = False
        await self._connect()
        self._watch = asyncio.get_running_loop().create_task(self._watch_connection())

    async def _connect(self) -> None:
        try:
            bus = MessageBus(bus_address=self._address, bus_type=self._bus_type)  # finds the address
            async with asyncio.timeout(self.timeout):
                await bus.connect()
        except TimeoutError:
            raise ConnectionError(f"{self.owner}: connecting to the D-Bus bus ({self.description}) timed out") from None
        except Exception as exc:
            where = f"the D-Bus bus ({self.description})"
            raise ConnectionError(f"{self.owner}: cannot connect to {where}: {exc}") from None
        _wait_on_full_socket(bus)
        bus.add_message_handler(self._on_message)
        self._bus = bus
        try:
            await self._setup()
        except BaseException:
            self._bus = None
            bus.disconnect()
            raise

    async def _watch_connection(self) -> None:
        """Reconnect when the bus goes away, until closed."""
        while not self._closing:
            bus = self._bus
            if bus is None:
                return
            # a task of its own: cancelling this watcher must not cancel the bus's disconnect future
            disconnected = asyncio.ensure_future(bus.wait_for_disconnect())  # type: ignore[no-untyped-call]
            await asyncio.wait({disconnected})
            exc = None if disconnected.cancelled() else disconnected.exception()
            if exc is None:
                reason = "the bus closed the connection"
            else:
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if self._closing:
                return
            self._bus = None
            self._on_lost(f"D-Bus bus ({self.description}) lost: {reason}; reconnecting")
            for pause in backoff(RECONNECT_FIRST, RECONNECT_CAP):
                await asyncio.sleep(pause)
                if self._closing:
                    return
                try:
                    await self._connect()
                except ValueError as exc:  # our name was taken meanwhile
                    log.warning("%s: reconnected, but cannot go online again: %s", self.owner, exc)
                    continue
                except Exception as exc:
                    log.debug("%s: reconnecting to the D-Bus bus failed: %s", self.owner, exc)
                    continue
                await self._on_back()
                break

    async def close(self) -> None:
        self._closing = True
        if self._watch is not None:
            self._watch.cancel()
        bus, self._bus = self._bus, None
        if bus is None:
            return
        bus.disconnect()
        disconnected = asyncio.ensure_future(bus.wait_for_disconnect())  # type: ignore[no-untyped-call]
        await asyncio.wait({disconnected}, timeout=2.0)
        if not disconnected.done():
            disconnected.cancel()
        elif not disconnected.cancelled():
            disconnected.exception()

    # ------------------------------------------------------------------ sending

    def write(self, msg: Message) -> asyncio.Future[None]:
        """Send ``msg``; the future is done once dbus-fast wrote it into the socket (its failure is
        retrieved already). Raises NotConnected while down or when the socket breaks under this
        write, and at once if ``msg`` cannot be marshalled."""
        bus = self._bus
        if bus is None:
            raise NotConnected(f"'{self.owner}' is not connected to the D-Bus bus ({self.description})")
        try:
            fut: asyncio.Future[None] = bus.send(msg)
        except OSError as exc:
            _dropped_write(bus)
            raise NotConnected(f"the connection to the D-Bus bus failed: {exc}") from None
        sent(fut)
        return fut

    def send(self, msg: Message) -> bool:
        """Send without waiting; False if the link is down (or just broke: the loss handling follows).
        Raises at once if ``msg`` cannot be marshalled (a value D-Bus cannot carry)."""
        try:
            self.write(msg)
        except NotConnected:
            return False
        return True

    def burst_full(self) -> bool:
        """Count a signal sent; True after :data:`BURST` in quick succession: its sender lets the
        socket drain with a round trip to the bus daemon (which answers once it has read all before)."""
        now = asyncio.get_running_loop().time()
        if now - self._burst_start > BURST_WINDOW:
            self._burst_start, self._burst = now, 0
        self._burst += 1
        if self._burst < BURST:
            return False
        self._burst_start, self._burst = now, 0
        return True

    async def request(
        self,
        destination: str,
        path: str,
        interface: str,
        member: str,
        signature: str = "",
        body: list[Any] | None = None,
        timeout: float | None = None,
    ) -> Message:
        """A method call of the transport's own; ``timeout`` only where nobody else bounds the wait."""
        msg = Message(
            destination=destination,
            path=path,
            interface=interface,
            member=member,
            signature=signature,
            body=body or [],
            flags=MessageFlag.NO_AUTOSTART,
        )
        try:
            async with asyncio.timeout(timeout):
                return await self.roundtrip(msg)
        except TimeoutError:
            raise TimeoutError(f"{destination} did not answer {interface}.{member} within {timeout} s") from None
        except NotConnected:
            raise
        except Exception as exc:  # a body that does not fit the signature
            raise RemoteError(f"{interface}.{member} to {destination} failed: {exc}") from None

    async def bus_request(
        self, member: str, signature: str = "", body: list[Any] | None = None, timeout: float | None = None
    ) -> list[Any]:
        """A method of the bus daemon itself (AddMatch, RequestName, ListNames ...)."""
        reply = await self.request(DBUS_NAME, DBUS_PATH, DBUS_NAME, member, signature, body, timeout)
        if reply.message_type is ERROR:
            text = reply.body[0] if reply.body else ""
            raise RemoteError(f"the bus refused {member}: {reply.error_name}: {text}")
        return list(reply.body)

    async def add_match(self, rule: str, timeout: float | None = None) -> None:
        await self.bus_request("AddMatch", "s", [rule], timeout)

    async def remove_match(self, rule: str) -> None:
        """Failures are only logged: a rule the bus no longer has harms nobody."""
        try:
            await self.bus_request("RemoveMatch", "s", [rule], self.timeout)
        except RemoteError as exc:
            log.debug("%s: %s", self.owner, exc)

    # ------------------------------------------------------------------ calls (dbus-fast's private API, here only)

    def next_serial(self) -> int:
        bus = self._bus
        return bus.next_serial() if bus is not None else 0  # 0: roundtrip raises NotConnected

    async def roundtrip(self, msg: Message) -> Message:
        """Send a method call and wait for its reply (or an error reply), without a deadline of its
        own. NotConnected if the link is down or goes before the reply; a body that does not fit the
        signature raises at once. The reply handler by serial answers through a callback, without a
        task per call, and a call we stop waiting for (cancelled) leaves nothing behind."""
        bus = self._bus
        if bus is None:
            raise NotConnected(f"'{self.owner}' is not connected to the D-Bus bus ({self.description})")
        if not msg.serial:
            msg.serial = bus.next_serial()
        fut: asyncio.Future[Message] = asyncio.get_running_loop().create_future()

        def on_reply(reply: Message | None, err: Exception | None) -> None:
            if fut.done():
                return
            if reply is not None:
                fut.set_result(reply)
            else:
                fut.set_exception(NotConnected(f"connection to the D-Bus bus lost ({err})"))
                fut.exception()  # retrieved: the waiter may be gone (cancelled) by now

        # the reply handler goes in first: the reply may arrive before send() returns
        handlers = bus._method_return_handlers
        handlers[msg.serial] = on_reply
        try:
            self.write(msg)  # marshals now: raises if the body does not fit
            return await fut
        finally:
            # not sent, or we stopped waiting (then fut is cancelled too): dbus-fast would keep the
            # handler until the link ends; after a reply it has removed it already
            handlers.pop(msg.serial, None)


def _dropped_write(bus: MessageBus) -> None:
    """The socket broke under a write: dbus-fast set the write's future failed, then raised (closing
    the socket, it cannot wait for it to be writable) and dropped that future. Retrieve its exception,
    or asyncio logs "Future exception was never retrieved" whenever it is collected."""
    fut = getattr(getattr(bus, "_writer", None), "fut", None)
    if isinstance(fut, asyncio.Future) and fut.done() and not fut.cancelled():
        fut.exception()


class _SocketThatWaits:
    """The socket as dbus-fast's writer sees it: a full send buffer writes nothing (the writer then
    waits until the socket is writable, as after a partial write) instead of raising
    BlockingIOError, which dbus-fast takes for a broken connection. Without this, a peer flooding
    us with calls it makes us answer at once (busy, unknown method) ended our connection."""

    __slots__ = ("_sock",)

    def __init__(self, sock: Any) -> None:
        self._sock = sock

    def send(self, data: Any) -> int:
        try:
            return int(self._sock.send(data))
        except BlockingIOError:
            return 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _wait_on_full_socket(bus: MessageBus) -> None:
    """Give dbus-fast's writer (``MessageBus._writer.sock``) a socket that waits when it is full."""
    writer = getattr(bus, "_writer", None)
    sock = getattr(writer, "sock", None)
    if sock is None or isinstance(sock, _SocketThatWaits):
        raise RuntimeError("dbus-fast's MessageBus._writer.sock is gone: update pyobs/comm/dbus/link.py")
    writer.sock = _SocketThatWaits(sock)  # type: ignore[union-attr]
