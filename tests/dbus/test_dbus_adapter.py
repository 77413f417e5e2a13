"""dbus-fast's private API that pyobs/comm/dbus/link.py relies on (and nothing else does): fails
loudly, naming what changed, when a dbus-fast release moves it."""

from __future__ import annotations

import asyncio

from dbus_fast import Message
from dbus_fast.aio import MessageBus


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
