"""ACLs both ways: a pyobs-core caller denied by our module, ours denied by a pyobs-core module; each
side receives ``pyobs.utils.exceptions.ForbiddenError`` and asks ``get_permitted_methods`` per caller."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from harness import Core, CorePeer, Ours, RawClient, eventually
from support import IKitchenSink, KitchenSink

from pyobs.interfaces import IModule
from pyobs.utils.exceptions import ForbiddenError, RemoteError

pytestmark = pytest.mark.asyncio(loop_scope="session")

FORBIDDEN = "pyobs.utils.exceptions.ForbiddenError"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def our_acl_module(ours: Ours, core: Core) -> AsyncIterator[KitchenSink]:
    """Our IKitchenSink that lets only our probe call it, and pyobs-core's sink only IModule's methods."""
    acl = {"allow": {"ourprobe": "*", "coresink": ["IModule"]}}
    module = KitchenSink(comm=ours.server.our_comm("ouracl"), acl=acl)
    await module.open()
    try:
        await core.sink.wait_record("sees ouracl", 60.0, kind="event", type="ModuleOpenedEvent", sender="ouracl")
        yield module
    finally:
        await module.close()


@pytest.fixture(scope="module")
def core_acl_module(ours: Ours, core: Core) -> Iterator[CorePeer]:
    """pyobs-core's IKitchenSink configured with ``acl: {deny: [ourprobe]}``, started by its own CLI."""
    peer = core.peers.make("coreacl", "peer.probe.CoreSink", acl={"deny": ["ourprobe"]}).start()
    try:
        yield peer
    finally:
        peer.stop()


async def test_pyobs_core_caller_is_denied_by_our_module(our_acl_module: KitchenSink, core: Core) -> None:
    error = await core.sink.call_fails("ouracl", "IKitchenSink", "whoami")
    assert error["type"] == FORBIDDEN, error
    assert "pyobs.utils.exceptions.RemoteError" in error["mro"]  # their ForbiddenError, not a fallback
    assert "Caller 'coresink' is not permitted to invoke 'whoami'" in error["message"], error
    # allowed by interface name: IModule's methods
    assert await core.sink.call("ouracl", "IModule", "reset_error") is True
    assert await core.sink.call("ouracl", "IModule", "get_permitted_methods") == [
        "get_permitted_methods",
        "reset_error",
    ]


async def test_our_allowed_caller_still_gets_through(our_acl_module: KitchenSink, ours: Ours) -> None:
    sink = await ours.probe.proxy("ouracl", IKitchenSink)
    assert await sink.whoami() == "ourprobe"
    permitted = await (await ours.probe.proxy("ouracl", IModule)).get_permitted_methods()
    assert "whoami" in permitted and "reset_error" in permitted


async def test_our_caller_is_denied_by_a_pyobs_core_module(core_acl_module: CorePeer, ours: Ours, core: Core) -> None:
    await core_acl_module.wait_started(90.0)
    await eventually(lambda: ours.probe.comm.is_online("coreacl"), 60.0, "ourprobe sees coreacl")
    sink = await ours.probe.proxy("coreacl", IKitchenSink)
    with pytest.raises(ForbiddenError, match="Caller 'ourprobe' is not permitted to invoke 'whoami'") as raised:
        await sink.whoami()
    assert type(raised.value) is ForbiddenError and isinstance(raised.value, RemoteError)
    # pyobs-core answers get_permitted_methods per caller: nothing for us, everything for its own sink
    assert await (await ours.probe.proxy("coreacl", IModule)).get_permitted_methods() == []
    theirs = await core.sink.call("coreacl", "IModule", "get_permitted_methods")
    assert "whoami" in theirs and "reset_error" in theirs
    assert await core.sink.call("coreacl", "IKitchenSink", "whoami") == "coresink"


async def test_a_forged_from_does_not_make_a_caller_somebody_else(our_acl_module: KitchenSink, ours: Ours) -> None:
    """The server stamps ``from``: an account that writes another's JID there is not taken for it."""
    client = RawClient(ours.server, "ourforger")
    stream_errors: list[str] = []
    client.client.add_event_handler("stream_error", lambda err: stream_errors.append(str(err["condition"])))
    await client.connect()
    try:
        from xml.etree import ElementTree

        iq = client.client.make_iq(
            ito=f"{ours.server.jid('ouracl')}/pyobs", itype="set", ifrom=f"{ours.server.jid('ourprobe')}/pyobs"
        )
        iq.append(
            ElementTree.fromstring(
                '<query xmlns="jabber:iq:rpc"><methodCall><methodName>whoami</methodName><params/></methodCall></query>'
            )
        )
        ident = iq["id"]
        iq.send()
        await eventually(lambda: client.replies.get(ident) or stream_errors, 20.0, "an answer to the forged call")
        if stream_errors:
            # ejabberd does not rewrite a forged from: it ends the forger's stream, nothing is delivered
            assert ours.server.kind == "ejabberd" and stream_errors == ["invalid-from"], stream_errors
            assert not client.replies.get(ident)
            return
        (reply,) = client.replies[ident]
        text = ElementTree.tostring(reply, encoding="unicode")
        # prosody replaces the forged from with the sender's own JID: ouracl denies the real sender
        assert "pyobs.utils.exceptions.ForbiddenError" in text, text
        assert "Caller 'ourforger' is not permitted to invoke 'whoami'." in text, text
    finally:
        client.disconnect()
