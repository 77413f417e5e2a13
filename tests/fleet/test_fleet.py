"""A fleet of 50 modules on one prosody, each with its own connection: the full mesh, one event
to all, and a server restart, with nothing lost. Correctness only; speed is bench/run --fleet."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from typing import Any

import pytest
from backends.base import eventually

from pyobs.comm.xmpp import XmppComm
from pyobs.events import NewImageEvent
from pyobs.modules import Module
from pyobs.testing.xmpp_server import PROSODY, TestServer

N = 50
NAMES = [f"fleet{i:02d}" for i in range(N)]
PUBLISHER = NAMES[0]

pytestmark = pytest.mark.skipif(shutil.which(PROSODY) is None, reason=f"'{PROSODY}' is not installed")


class Member(Module):
    """Module 0 sends NewImageEvent, the others handle it (and do not send it)."""

    def __init__(self, name: str, got: dict[str, list[str]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fleet_name = name
        self.got = got

    async def open(self) -> None:
        await super().open()
        if self.fleet_name == PUBLISHER:
            await self.comm.register_event(NewImageEvent)
        else:
            await self.comm.register_event(NewImageEvent, self._on_image)

    async def _on_image(self, event: NewImageEvent, sender: str) -> bool:
        if sender == PUBLISHER:
            self.got[self.fleet_name].append(event.filename)
        return True


def _mesh(modules: list[Member]) -> Callable[[], bool]:
    everyone = set(NAMES)
    return lambda: all(set(m.comm.clients) == everyone - {m.fleet_name} for m in modules)


def _pinged(modules: list[Member]) -> int:
    """Roster contacts the modules pinged when going online, in all."""
    return sum(m.comm.xmpp.peers.pinged for m in modules)  # type: ignore[attr-defined]


@pytest.mark.timeout(240)
async def test_fleet_of_50_meshes_gets_every_event_and_survives_a_server_restart() -> None:
    got: dict[str, list[str]] = {n: [] for n in NAMES[1:]}
    async with TestServer(users=NAMES) as server:
        modules = [
            Member(n, got, comm=XmppComm(jid=server.jid(n), password=server.password, server=server.address))
            for n in NAMES
        ]
        publisher = modules[0]
        try:
            results = await asyncio.gather(*(m.open() for m in modules), return_exceptions=True)
            assert [r for r in results if isinstance(r, BaseException)] == []
            await eventually(_mesh(modules), timeout=90, what="every module seeing the other 49")
            # who is online came from the server's answers to the presence probes: no contact pinged
            # (a ping to every contact was N² for the server)
            assert _pinged(modules) == 0
            # handlers do not advertise sending: only the publisher is known to send the event
            receiver = modules[1].comm
            assert "NewImageEvent" in receiver._peers[PUBLISHER].sends
            assert all("NewImageEvent" not in receiver._peers[n].sends for n in NAMES[2:])

            await publisher.comm.send_event(NewImageEvent("before"))
            await eventually(lambda: all(g == ["before"] for g in got.values()), timeout=30, what="one event to all")

            await server.stop()
            await eventually(lambda: not any(m.comm.connected for m in modules), timeout=30, what="all disconnected")
            await publisher.comm.send_event(NewImageEvent("while away"))  # queued until the server is back
            await server.start()
            await eventually(lambda: all(m.comm.connected for m in modules), timeout=90, what="all reconnected")
            await eventually(_mesh(modules), timeout=60, what="the full mesh again")
            assert _pinged(modules) == 0  # reconnecting at once: answered by presence as well
            await publisher.comm.send_event(NewImageEvent("after"))
            want = ["before", "while away", "after"]
            await eventually(
                lambda: all(g == want for g in got.values()), timeout=60, what="both events to all 49, once each"
            )
            assert all(g == want for g in got.values()), {n: g for n, g in got.items() if g != want}
        finally:
            await asyncio.gather(*(m.close() for m in modules), return_exceptions=True)
