"""The module the fuzz suite attacks: a few ordinary methods, a slow event handler, and its own
counters (what the attacks must move, or must not)."""

from __future__ import annotations

import asyncio
from abc import abstractmethod
from typing import Any

from pyobs.events import Event
from pyobs.interfaces.interface import Interface
from pyobs.modules import Module


class FuzzEvent(Event):
    """An event the target handles slowly."""

    message: str = ""


class IFuzzTarget(Interface):
    @abstractmethod
    async def add(self, a: int, b: float, **kwargs: Any) -> float: ...
    @abstractmethod
    async def echo(self, value: str, **kwargs: Any) -> str: ...
    @abstractmethod
    async def count(self, values: list[int], **kwargs: Any) -> int: ...
    @abstractmethod
    async def sleep(self, seconds: float, **kwargs: Any) -> float: ...
    @abstractmethod
    async def stats(self, **kwargs: Any) -> dict[str, Any]: ...


class FuzzTarget(Module, IFuzzTarget):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.handled: list[str] = []

    async def open(self) -> None:
        await super().open()
        await self.comm.register_event(FuzzEvent, self._on_event)

    async def _on_event(self, event: FuzzEvent, sender: str) -> bool:
        await asyncio.sleep(0.5)
        self.handled.append(f"{sender}:{event.message}")
        return True

    async def add(self, a: int, b: float, **kwargs: Any) -> float:
        return a + b

    async def echo(self, value: str, **kwargs: Any) -> str:
        return value

    async def count(self, values: list[int], **kwargs: Any) -> int:
        return len(values)

    async def sleep(self, seconds: float, **kwargs: Any) -> float:
        await asyncio.sleep(min(seconds, 30.0))
        return seconds

    async def stats(self, **kwargs: Any) -> dict[str, Any]:
        comm = self.comm
        return {
            "handled": len(self.handled),
            "senders": sorted({h.partition(":")[0] for h in self.handled}),
            "clients": sorted(comm.clients),
            "dropped_events": comm.dropped_events,
            "busy_refusals": comm.busy_refusals,
            "serving": comm.serving,
        }
