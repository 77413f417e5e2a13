from __future__ import annotations

import uuid
from typing import Any

from pyobs.events.event import Event
from pyobs.interfaces.interface import MethodSpec
from pyobs.utils.exceptions import RemoteError

from ..calls import Call
from ..comm import Comm
from ..transport import Announcement, Extend, Transport, TransportHandler


class NullTransport(Transport):
    """No network: nobody is ever online, events go nowhere."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def open(self, handler: TransportHandler) -> None:
        return None

    async def announce(self, info: Announcement) -> None:
        return None

    async def close(self) -> None:
        return None

    async def call(
        self, peer: str, method: MethodSpec, args: list[Any], extend: Extend, control: Call | None = None
    ) -> Any:
        raise RemoteError(f"cannot call {peer}.{method.name}(): a DummyComm has no peers")

    async def publish_event(self, event: Event) -> None:
        return None  # nobody to deliver to: by design, not an error

    async def publish_state(self, interface: str, state: Any) -> None:
        return None

    async def subscribe_state(self, peer: str, interface: str) -> Any:
        raise RemoteError(f"module '{peer}' is not reachable from a DummyComm")


class DummyComm(Comm):
    """No-op comm used when none is configured: no peers, ``proxy()`` raises ValueError."""

    def __init__(self, name: str | None = None, timeout: float = 10.0) -> None:
        super().__init__(NullTransport(name or f"dummy-{uuid.uuid4().hex[:8]}"), timeout=timeout)
