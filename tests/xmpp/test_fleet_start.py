"""A fleet's first start: many modules opening at once on a fresh server, and proxy() right after open().

On ejabberd concurrent node creations abort each other (answered internal-server-error or
item-not-found) and the presence of the peers online arrives after the answer to our next IQ; on
prosody neither happens. Both must work on both servers.
"""

from __future__ import annotations

import asyncio
from typing import Any

from backends.base import eventually
from backends.xmpp import XmppBackend, new_server
from xmpp_helpers import IProbe, Probe, ProbeEvent

from pyobs.comm.xmpp import XmppComm
from pyobs.interfaces import IMotion
from pyobs.modules import Module
from pyobs.utils.enums import MotionStatus

FLEET = [f"f{i:02d}" for i in range(20)]


class FleetModule(Probe):
    """Creates an event node and publishes state while opening, as a focuser does."""

    async def open(self) -> None:
        await super().open()
        await self.comm.register_event(ProbeEvent)


def _comm(server: Any, name: str) -> XmppComm:
    return XmppComm(jid=server.jid(name), password=server.password, server=server.address, timeout=10.0)


async def test_twenty_modules_open_at_once_on_a_fresh_server(xmpp_kind: str) -> None:
    async with new_server(xmpp_kind, FLEET) as server:
        modules = [FleetModule(comm=_comm(server, name)) for name in FLEET]
        results = await asyncio.gather(*(m.open() for m in modules), return_exceptions=True)
        try:
            failed = {name: repr(r) for name, r in zip(FLEET, results, strict=True) if isinstance(r, BaseException)}
            assert not failed, f"{len(failed)} of {len(FLEET)} open() failed on {xmpp_kind}: {failed}"
            everyone = set(FLEET)

            def all_see_all() -> bool:
                return all(set(m.comm.clients) >= everyone - {m.comm.name} for m in modules)

            await eventually(all_see_all, timeout=20.0, what="every module sees the 19 others")
            first = modules[0]
            for name in FLEET[1:]:
                state = await first.comm.get_state(name, IMotion)
                assert state is not None and state.status is MotionStatus.IDLE, f"state of {name}: {state}"
            # events flow from every module (their event nodes exist and are ours)
            got: set[str] = set()

            async def on_event(event: ProbeEvent, sender: str) -> bool:
                got.add(sender)
                return True

            await first.comm.register_event(ProbeEvent, on_event)
            for m in modules[1:]:
                await m.comm.send_event(ProbeEvent(message="hello", number=1))
            await eventually(lambda: got >= everyone - {first.comm.name}, timeout=10.0, what="an event from each")
        finally:
            await asyncio.gather(*(m.close() for m in modules if m.comm.opened), return_exceptions=True)


async def test_proxy_right_after_open_in_ten_of_ten_rounds(xmpp_server: Any) -> None:
    failures = []
    for round_ in range(10):
        backend = XmppBackend(xmpp_server)  # a fresh resource: nobody of the earlier rounds is seen
        greeter = Probe(comm=backend.comm("callee"))
        caller = Module(comm=backend.comm("caller"))
        try:
            await greeter.open()
            await caller.open()
            try:
                proxy = await caller.proxy("callee", IProbe)
                assert await proxy.add(round_, 1.0) == round_ + 1.0
            except ValueError as exc:
                failures.append(f"round {round_}: {exc}")
        finally:
            await caller.close()
            await greeter.close()
            await backend.close()
    assert not failures, f"proxy() right after open() failed on {xmpp_server.kind}: {failures}"
