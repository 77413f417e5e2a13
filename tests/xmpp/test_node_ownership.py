"""Node squatting: another account created one of a module's pubsub nodes before it.

At open() the module either takes the node back (prosody, where every pyobs account is a pubsub
admin) or fails with a clear error naming the owner (ejabberd, where only the owner may touch it);
it never runs with nodes it does not own.
"""

from __future__ import annotations

from typing import Any

import pytest
from backends.xmpp import XmppBackend
from xmpp_helpers import Probe, ProbeEvent, RawClient

from pyobs.comm.xmpp import XmppNodeOwnershipError

PUBSUB = "http://jabber.org/protocol/pubsub"
OWNER = "http://jabber.org/protocol/pubsub#owner"


class EventProbe(Probe):
    async def open(self) -> None:
        await super().open()
        await self.comm.register_event(ProbeEvent)


async def _affiliations(client: RawClient, pubsub: str, node: str) -> dict[str, str]:
    reply = await client.request(
        f'<iq type="get" id="{{id}}" to="{pubsub}"><pubsub xmlns="{OWNER}"><affiliations node="{node}"/></pubsub></iq>'
    )
    assert reply.get("type") == "result", reply
    return {a.get("jid", ""): a.get("affiliation", "") for a in reply.iter(f"{{{OWNER}}}affiliation")}


@pytest.mark.parametrize("kind", ["state", "event"])
async def test_a_squatted_node_is_taken_back_or_named(xmpp_backend: XmppBackend, kind: str) -> None:
    server: Any = xmpp_backend.server
    # a fresh module name per test (nodes outlive the test on the session's server)
    victim = "worker" if kind == "state" else "publisher"
    node = f"pyobs:state:{victim}:IMotion:1" if kind == "state" else f"pyobs:event:{victim}:ProbeEvent:1"
    squatter = await RawClient(server, "caller", xmpp_backend.resource + "sq").login()
    try:
        reply = await squatter.request(
            f'<iq type="set" id="{{id}}" to="{server.pubsub}"><pubsub xmlns="{PUBSUB}"><create node="{node}"/>'
            "</pubsub></iq>"
        )
        if reply.get("type") != "result":  # the server refuses the squat (e.g. docs/xmpp.md's settings)
            pytest.fail(f"the test server refused the squatter's node: {reply}")
        module = EventProbe(comm=xmpp_backend.comm(victim))
        try:
            await module.open()
        except XmppNodeOwnershipError as exc:
            # ejabberd: only the owner may change a node; the error names node and owner
            assert server.kind == "ejabberd"
            assert exc.node == node and server.jid("caller") in exc.owners
            assert node in str(exc) and server.jid("caller") in str(exc)
            return
        try:
            # prosody: every pyobs account is a pubsub admin, so the module took the node back
            assert server.kind == "prosody"
            affiliations = await _affiliations(squatter, server.pubsub, node)
            assert affiliations.get(server.jid(victim)) == "owner"
            assert affiliations.get(server.jid("caller"), "none") == "none"
        finally:
            await module.close()
    finally:
        # remove the node (as its owner, whoever that is now) for later tests on this server
        for who in ("caller", victim):
            cleaner = squatter if who == "caller" else await RawClient(server, who, "cleanup").login()
            await cleaner.request(
                f'<iq type="set" id="{{id}}" to="{server.pubsub}"><pubsub xmlns="{OWNER}"><delete node="{node}"/>'
                "</pubsub></iq>"
            )
            if cleaner is not squatter:
                await cleaner.close()
        await squatter.close()
