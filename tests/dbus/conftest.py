"""D-Bus specific tests share the behaviour suite's modules (``support``), a foreign client and a
KitchenSink module."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from backends.dbus import DbusBackend
from dbus_fast.aio import MessageBus

_BEHAVIOUR = str(Path(__file__).parent.parent / "behaviour")
if _BEHAVIOUR not in sys.path:
    sys.path.insert(0, _BEHAVIOUR)

from support import KitchenSink, opened  # noqa: E402 (found through the path above)


@pytest.fixture
async def raw(dbus_bus: str) -> AsyncIterator[MessageBus]:
    """A foreign D-Bus client that speaks raw dbus-fast messages."""
    bus = await MessageBus(bus_address=dbus_bus).connect()
    yield bus
    bus.disconnect()


@pytest.fixture
async def sink(dbus_backend: DbusBackend) -> AsyncIterator[KitchenSink]:
    module = await opened(KitchenSink(comm=dbus_backend.comm("sink")))
    yield module
    await module.close()
