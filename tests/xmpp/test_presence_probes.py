"""Going online learns who is online from the server's answers to its presence probes, and pings
only the contacts that gave none (issue 18: a ping to every contact was N² for the server at a
fleet's start, ~45 % of prosody's CPU at N = 100).

What the servers answer (checked here, so that a server update that changes it fails a test):
prosody 0.12 answers the probe of a contact without a session at once with an unavailable
presence from its bare JID, so nobody is pinged; ejabberd 23.01 sends nothing for such a contact
(ejabberd_sm routes a presence to a bare JID to the sessions there are, none), so it is pinged,
while contacts online answer with their presence on both.
"""

from __future__ import annotations

import logging

import pytest
from backends.xmpp import new_server

from pyobs.comm.xmpp import XmppComm
from pyobs.modules import Module

FLEET = [f"p{i}" for i in range(8)]


def _comm(server: object, name: str) -> XmppComm:
    return XmppComm(jid=server.jid(name), password=server.password, server=server.address)  # type: ignore[attr-defined]


async def test_going_online_pings_only_contacts_the_server_said_nothing_about(
    xmpp_kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pyobs")
    async with new_server(xmpp_kind, FLEET) as server:
        modules: list[Module] = []
        pinged: list[int] = []
        try:
            for i, name in enumerate(FLEET):
                module = Module(comm=_comm(server, name))
                await module.open()
                modules.append(module)
                pinged.append(module.comm.xmpp.peers.pinged)  # type: ignore[attr-defined]
                # open() knows everyone online when it returns (the guarantee the pings used to give)
                assert set(module.comm.clients) == set(FLEET[:i]), f"{name} after open(): {module.comm.clients}"
            offline = [len(FLEET) - 1 - i for i in range(len(FLEET))]  # contacts not yet online per open()
            if xmpp_kind == "prosody":
                assert pinged == [0] * len(FLEET), f"contacts pinged per open(), offline ones {offline}: {pinged}"
            else:
                # the modules online answered with presence; only those without a session were pinged
                assert pinged == offline, f"contacts pinged per open() on ejabberd: {pinged}"
            # the unavailable answers for contacts never seen are taken quietly
            noisy = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
            assert noisy == []
        finally:
            for module in modules:
                await module.close()
