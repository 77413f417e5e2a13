"""A test helper (not part of the shipped package): what module lifecycle events, and if asked new
images, one comm dispatched to its handlers, in order of arrival. Works on every transport and on the
core tests' fake one, as it only uses ``Comm.register_event``."""

from __future__ import annotations

import time
from typing import NamedTuple

from pyobs.comm import Comm
from pyobs.events import ModuleClosedEvent, ModuleOpenedEvent, NewImageEvent


class Arrival(NamedTuple):
    """One ModuleOpenedEvent or ModuleClosedEvent as it arrived."""

    #: "opened" or "closed"
    kind: str
    module: str | None
    sender: str
    #: time.monotonic() when the handler ran
    at: float


class EventWatch:
    """ModuleOpened/ModuleClosed events (and NewImage events, if asked) a comm dispatched, in order."""

    def __init__(self) -> None:
        #: the ``module`` of each ModuleOpenedEvent, and of each ModuleClosedEvent
        self.opened: list[str | None] = []
        self.closed: list[str | None] = []
        #: ``"sender:filename"`` of each NewImageEvent (only with ``attach(..., images=True)``)
        self.images: list[str] = []
        #: every ModuleOpened/ModuleClosed event, with its sender and arrival time
        self.arrivals: list[Arrival] = []

    async def attach(self, comm: Comm, images: bool = False) -> None:
        """Register the handlers on ``comm`` (opened or not yet)."""

        async def on_opened(event: ModuleOpenedEvent, sender: str) -> bool:
            self.opened.append(event.module)
            self.arrivals.append(Arrival("opened", event.module, sender, time.monotonic()))
            return True

        async def on_closed(event: ModuleClosedEvent, sender: str) -> bool:
            self.closed.append(event.module)
            self.arrivals.append(Arrival("closed", event.module, sender, time.monotonic()))
            return True

        async def on_image(event: NewImageEvent, sender: str) -> bool:
            self.images.append(f"{sender}:{event.filename}")
            return True

        await comm.register_event(ModuleOpenedEvent, on_opened)
        await comm.register_event(ModuleClosedEvent, on_closed)
        if images:
            await comm.register_event(NewImageEvent, on_image)

    def first(self, kind: str) -> Arrival:
        """The first arrival of ``kind`` ("opened" or "closed"); fails the test if there is none."""
        found = [a for a in self.arrivals if a.kind == kind]
        assert found, f"no Module{kind.capitalize()}Event arrived"
        return found[0]

    def __repr__(self) -> str:
        return f"EventWatch(opened={self.opened}, closed={self.closed}, images={len(self.images)})"
