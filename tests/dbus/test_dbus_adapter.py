"""dbus-fast's private API that pyobs/comm/dbus/link.py relies on (and nothing else does): fails
loudly, naming what changed, when a dbus-fast release moves it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import tempfile
from pathlib import Path
from typing import Any

import pytest
from backends.dbus import DbusBackend, DbusDaemon
from dbus_fast import Message
from dbus_fast.aio import MessageBus

from pyobs.comm.dbus import DbusTransport
from pyobs.comm.dbus.link import _wait_on_full_socket


async def test_reply_handlers_are_kept_by_serial_and_called_with_the_reply(dbus_bus: str) -> None:
    bus = await MessageBus(bus_address=dbus_bus).connect()
    try:
        handlers = getattr(bus, "_method_return_handlers", None)
        assert isinstance(handlers, dict), "MessageBus._method_return_handlers is no dict: update link.py"
        got: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        msg = Message(
            destination="org.freedesktop.DBus",
            path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus",
            member="GetId",
            serial=bus.next_serial(),
        )
        handlers[msg.serial] = lambda reply, err: got.set_result(reply)
        await bus.send(msg)
        reply = await asyncio.wait_for(got, 5.0)
        assert reply.reply_serial == msg.serial and isinstance(reply.body[0], str)
        assert msg.serial not in handlers, "dbus-fast no longer removes a reply handler once it was called"
    finally:
        bus.disconnect()


async def test_reply_handlers_hear_of_a_lost_connection(dbus_bus: str) -> None:
    bus = await MessageBus(bus_address=dbus_bus).connect()
    errors: list[Exception | None] = []
    bus._method_return_handlers[10**6] = lambda reply, err: errors.append(err)
    bus.disconnect()
    await asyncio.wait_for(bus.wait_for_disconnect(), 5.0)
    assert len(errors) == 1, "dbus-fast no longer calls pending reply handlers when the connection ends"


async def test_a_write_on_a_socket_the_daemon_closed_leaves_its_future_where_the_link_finds_it() -> None:
    with tempfile.TemporaryDirectory(prefix="pyobs-dbus-") as tmp:
        daemon = DbusDaemon(Path(tmp))
        daemon.start()
        bus = await MessageBus(bus_address=daemon.address).connect()
        daemon.stop(signal.SIGKILL)
        msg = Message.new_signal("/org/pyobs/test", "org.pyobs.Test", "Ping", "s", ["x" * 100000])
        try:
            fut = bus.send(msg)
        except OSError:  # dbus-fast 2.x-5.x: the failed write's future stays only in the writer
            fut = bus._writer.fut
            assert isinstance(fut, asyncio.Future), "MessageBus._writer.fut is gone: update link._dropped_write"
            assert fut.done() and isinstance(fut.exception(), OSError)
        else:  # fixed in dbus-fast: the future is ours; link._dropped_write is then never needed
            with pytest.raises(Exception):  # noqa: B017 (the error of a broken socket, whatever its class)
                await asyncio.wait_for(fut, 5.0)
        finally:
            bus.disconnect()
            with contextlib.suppress(Exception):  # the broken connection's error, retrieved
                await asyncio.wait_for(bus.wait_for_disconnect(), 5.0)


async def test_a_request_given_up_leaves_no_reply_handler_behind(dbus_backend: DbusBackend, raw: MessageBus) -> None:
    """link.roundtrip removes the handler it put into dbus-fast when its waiter stops waiting (dbus-fast
    would keep it until the connection ends): here a peer that takes the call and never answers."""
    raw.add_message_handler(lambda msg: True if msg.member == "Never" else None)  # taken, never answered
    comm = dbus_backend.comm("asker")
    await comm.open()
    try:
        transport = comm.transport
        assert isinstance(transport, DbusTransport)
        handlers = transport.link._bus._method_return_handlers  # type: ignore[union-attr]
        before = set(handlers)
        for _ in range(3):
            with pytest.raises(TimeoutError, match="did not answer"):
                await transport.link.request(raw.unique_name, "/org/pyobs/test", "org.pyobs.Test", "Never", timeout=0.1)
        assert set(handlers) == before
    finally:
        await comm.close()


class _FullCounter:
    """dbus-fast's socket, counting the sends that found it full."""

    def __init__(self, sock: Any) -> None:
        self.sock, self.full = sock, 0

    def send(self, data: Any) -> int:
        try:
            return int(self.sock.send(data))
        except BlockingIOError:
            self.full += 1
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["sock"], name)


async def test_a_full_socket_makes_the_writer_wait_instead_of_ending_the_connection() -> None:
    """link._wait_on_full_socket: a peer that makes us write faster than the daemon reads (a flood
    of calls we answer at once) must not end our connection. The daemon is stopped (SIGSTOP) while
    we write ~8 MB, so the socket is full for sure; then it reads again and gets everything."""
    with tempfile.TemporaryDirectory(prefix="pyobs-dbus-") as tmp:
        daemon = DbusDaemon(Path(tmp))
        daemon.start()
        bus = await MessageBus(bus_address=daemon.address).connect()
        counter = _FullCounter(bus._writer.sock)
        bus._writer.sock = counter
        _wait_on_full_socket(bus)
        pid = daemon.pid
        assert pid is not None
        futures: list[asyncio.Future[None]] = []
        os.kill(pid, signal.SIGSTOP)
        try:
            for i in range(800):
                msg = Message.new_signal("/org/pyobs/test", "org.pyobs.Test", "Ping", "s", [f"{i}" + "x" * 10000])
                futures.append(bus.send(msg))
                await asyncio.sleep(0)  # the writer runs between our sends, as in a module
            assert bus.connected, "the connection ended on a full socket"
            assert counter.full > 0, "the socket never got full: the test tests nothing"
        finally:
            os.kill(pid, signal.SIGCONT)
        try:
            await asyncio.wait_for(asyncio.gather(*futures), 20.0)
            assert bus.connected and all(f.exception() is None for f in futures)
        finally:
            bus.disconnect()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(bus.wait_for_disconnect(), 5.0)
            daemon.stop()
