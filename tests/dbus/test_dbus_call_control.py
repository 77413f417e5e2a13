"""Cancel and progress as D-Bus sees them (org.pyobs.Module.Cancel, CallProgress), from a raw client."""

from __future__ import annotations

import asyncio

from backends.dbus import DbusBackend
from dbus_fast import MessageType
from dbus_fast.aio import MessageBus
from dbus_fast.introspection import Node
from support import KitchenSink

MODULE = "org.pyobs.Module"


async def test_cancel_and_progress_are_in_the_introspection(
    dbus_backend: DbusBackend, raw: MessageBus, sink: KitchenSink
) -> None:
    reply = await raw.call(dbus_backend.message("sink", "org.freedesktop.DBus.Introspectable", "Introspect"))
    assert reply is not None
    iface = next(i for i in Node.parse(reply.body[0]).interfaces if i.name == MODULE)
    cancel = next(m for m in iface.methods if m.name == "Cancel")
    assert [a.signature for a in cancel.in_args] == ["u", "d"] and [a.signature for a in cancel.out_args] == ["s"]
    progress = next(s for s in iface.signals if s.name == "CallProgress")
    assert [a.signature for a in progress.args] == ["u", "u", "d", "s"]


async def test_a_foreign_client_cancels_its_own_call(
    dbus_backend: DbusBackend, raw: MessageBus, sink: KitchenSink
) -> None:
    call = dbus_backend.message("sink", "org.pyobs.IKitchenSink", "sleep", "d", [30.0])
    pending = asyncio.ensure_future(raw.call(call))
    await asyncio.wait_for(sink.started.wait(), 5.0)
    # a cancel of a call that is not ours names nothing
    other = await raw.call(dbus_backend.message("sink", MODULE, "Cancel", "ud", [call.serial + 1000, 1.0]))
    assert other is not None and other.body == ["unknown"]
    answer = await raw.call(dbus_backend.message("sink", MODULE, "Cancel", "ud", [call.serial, 2.0]))
    assert answer is not None and answer.message_type is MessageType.METHOD_RETURN and answer.body == ["cancelled"]
    reply = await asyncio.wait_for(pending, 5.0)
    assert reply is not None and reply.message_type is MessageType.ERROR
    assert reply.error_name == "org.pyobs.Error.pyobs.comm.calls.CallCancelledError"


async def test_a_bad_cancel_is_invalid_args(dbus_backend: DbusBackend, raw: MessageBus, sink: KitchenSink) -> None:
    reply = await raw.call(dbus_backend.message("sink", MODULE, "Cancel", "ud", [1, -1.0]))
    assert reply is not None and reply.error_name == "org.freedesktop.DBus.Error.InvalidArgs"
    assert "wait" in reply.body[0]
    echo = await raw.call(dbus_backend.message("sink", "org.pyobs.IKitchenSink", "echo_int", "x", [5]))
    assert echo is not None and echo.body == [5]  # still serving
