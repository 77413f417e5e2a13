"""Node squatting: another account creates one of a module's pubsub nodes before it.

With the server settings of docs/xmpp.md ("Node ownership": prosody's mod_pyobs_nodes, ejabberd's
node_pyobs; the session's test servers have them) the server refuses that. Without them, at open()
the module either takes the node back (prosody, where every pyobs account is a pubsub admin) or
fails with a clear error naming the owner (ejabberd, where only the owner may touch it); it never
runs with nodes it does not own.
"""

from __future__ import annotations

from typing import Any

import pytest
from backends.xmpp import XmppBackend, new_server
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


def _create(node: str, server: Any) -> str:
    return (
        f'<iq type="set" id="{{id}}" to="{server.pubsub}"><pubsub xmlns="{PUBSUB}"><create node="{node}"/>'
        "</pubsub></iq>"
    )


def _forbidden(reply: Any) -> bool:
    stanzas = "{urn:ietf:params:xml:ns:xmpp-stanzas}"
    return reply.get("type") == "error" and reply.find(f"{{jabber:client}}error/{stanzas}forbidden") is not None


async def test_the_documented_server_settings_stop_squatting(xmpp_backend: XmppBackend) -> None:
    """prosody (mod_pyobs_nodes): no account creates or publishes to another module's nodes;
    ejabberd 23.01 (no check by node name possible): tool accounts create no nodes at all."""
    server: Any = xmpp_backend.server
    tool = await RawClient(server, "tool", xmpp_backend.resource + "sq").login()
    squatter = await RawClient(server, "caller", xmpp_backend.resource + "sq").login()
    try:
        for node in ("pyobs:state:worker:IMotion:1", "pyobs:event:worker:ProbeEvent:1"):
            reply = await tool.request(_create(node, server))
            assert _forbidden(reply), f"{server.kind} let the tool account create {node}: {reply}"
        if server.kind == "prosody":
            for node in ("pyobs:state:worker:IMotion:1", "pyobs:event:worker:ProbeEvent:1"):
                assert _forbidden(await squatter.request(_create(node, server))), f"caller created {node}"
            # publishing to another module's node (which would auto-create it) is refused too
            reply = await squatter.request(
                f'<iq type="set" id="{{id}}" to="{server.pubsub}"><pubsub xmlns="{PUBSUB}">'
                '<publish node="pyobs:state:worker:IMotion:1"><item><x xmlns="urn:x"/></item></publish></pubsub></iq>'
            )
            assert _forbidden(reply)
            # its own nodes an account creates as before
            reply = await squatter.request(_create(f"pyobs:event:caller:Own{xmpp_backend.resource}:1", server))
            assert reply.get("type") == "result", reply
        # and the real module opens with nodes of its own
        module = EventProbe(comm=xmpp_backend.comm("worker"))
        await module.open()
        try:
            as_owner = await RawClient(server, "worker", xmpp_backend.resource + "own").login()
            try:
                affiliations = await _affiliations(as_owner, server.pubsub, "pyobs:event:worker:ProbeEvent:1")
            finally:
                await as_owner.close()
            assert affiliations.get(server.jid("worker")) == "owner"
        finally:
            await module.close()
    finally:
        await squatter.close()
        await tool.close()


@pytest.mark.parametrize("kind", ["state", "event"])
async def test_a_squatted_node_is_taken_back_or_named(xmpp_kind: str, kind: str) -> None:
    # a server without the settings of docs/xmpp.md: squatting is possible
    async with new_server(xmpp_kind, ["caller", "worker", "publisher"], restrict_nodes=False) as server:
        await _squat(XmppBackend(server), kind)


async def _squat(xmpp_backend: XmppBackend, kind: str) -> None:
    server: Any = xmpp_backend.server
    # a fresh module name per test (nodes outlive the test on the session's server)
    victim = "worker" if kind == "state" else "publisher"
    node = f"pyobs:state:{victim}:IMotion:1" if kind == "state" else f"pyobs:event:{victim}:ProbeEvent:1"
    squatter = await RawClient(server, "caller", xmpp_backend.resource + "sq").login()
    try:
        reply = await squatter.request(_create(node, server))
        assert reply.get("type") == "result", f"the squatter could not create {node}: {reply}"
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
        await squatter.close()
