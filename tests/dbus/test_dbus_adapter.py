"""dbus-fast's private API that pyobs/comm/dbus/link.py relies on (and nothing else does): fails
loudly, naming what changed, when a dbus-fast release moves it."""

from __future__ import annotations

import inspect

from dbus_fast.aio import MessageBus


def test_message_bus_still_has_the_private_call_api_the_link_uses() -> None:
    call = getattr(MessageBus, "_call", None)
    assert callable(call), "dbus_fast.aio.MessageBus._call is gone: update pyobs/comm/dbus/link.py (call_nowait)"
    params = list(inspect.signature(call).parameters)
    assert params[:3] == ["self", "msg", "callback"], f"MessageBus._call takes {params} now: update link.py"


async def test_message_bus_keeps_reply_handlers_by_serial(dbus_bus: str) -> None:
    bus = await MessageBus(bus_address=dbus_bus).connect()
    try:
        handlers = getattr(bus, "_method_return_handlers", None)
        assert isinstance(handlers, dict), "MessageBus._method_return_handlers is no dict: update link.py"
    finally:
        bus.disconnect()
