"""A two-node ejabberd cluster (join_cluster, own cookie, node names and epmd, loopback ports):
modules on different nodes work together; a node dies, the others are told, its modules fail over.

ejabberd sends no "unavailable" presence for the sessions of a node that dies (measured with 23.01:
none after SIGKILL, none after SIGTERM), so the comm's peer check (a ping per peer every
``peer_check_interval`` s, answered ``service-unavailable`` by the server at once) is what reports
them offline.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from backends.base import eventually
from backends.xmpp import server_kinds
from xmpp_helpers import IProbe, Probe, ProbeEvent

from pyobs.comm.xmpp import XmppComm
from pyobs.interfaces import IMotion
from pyobs.modules import Module
from pyobs.testing.ejabberd_server import EjabberdTestServer, available
from pyobs.utils.enums import MotionStatus

USERS = ["ma", "mb", "mc", "md"]

_why_not = available()
if "ejabberd" not in server_kinds():
    _why_not = "PYOBS_XMPP_SERVERS does not include ejabberd"
    pytestmark = pytest.mark.skip(reason=_why_not)
else:
    pytestmark = pytest.mark.skipif(
        _why_not is not None and not os.environ.get("PYOBS_REQUIRE_XMPP"), reason=f"no ejabberd: {_why_not}"
    )


async def _cluster() -> tuple[EjabberdTestServer, EjabberdTestServer]:
    first = EjabberdTestServer(USERS)
    await first.start()
    second = EjabberdTestServer(cluster_of=first)
    try:
        await second.start()
    except BaseException:
        await first.stop()
        first.cleanup()
        raise
    return first, second


async def _stop(*nodes: EjabberdTestServer) -> None:
    for node in reversed(nodes):
        await asyncio.to_thread(node.stop_blocking)
        node.cleanup()


@pytest.fixture
async def cluster() -> AsyncIterator[tuple[EjabberdTestServer, EjabberdTestServer]]:
    nodes = await _cluster()
    try:
        yield nodes
    finally:
        await _stop(*nodes)


def _comm(node: EjabberdTestServer, name: str, server: str | list[str] | None = None) -> XmppComm:
    return XmppComm(jid=node.jid(name), password=node.password, server=server or node.address, timeout=5.0)


async def test_two_node_cluster_discovery_calls_events_and_state(cluster: Any) -> None:
    first, second = cluster
    assert sorted(first.api("list_cluster", {})) == sorted([first.node, second.node])  # type: ignore[arg-type]
    got: list[tuple[str, ProbeEvent]] = []

    async def on_event(event: ProbeEvent, sender: str) -> bool:
        got.append((sender, event))
        return True

    probe = Probe(comm=_comm(first, "ma"))
    client = Module(comm=_comm(second, "mb"))
    await probe.open()
    await client.open()
    try:
        await client.comm.register_event(ProbeEvent, on_event)
        # discovery across nodes: the one opened last knows the other when open() returns; the other
        # learns of it from its presence a moment later
        assert "ma" in client.comm.clients
        await eventually(lambda: "mb" in probe.comm.clients, timeout=5.0, what="ma sees mb")
        proxy = await client.proxy("ma", IProbe)
        assert await proxy.add(2, 3.0) == 5.0
        state = await client.comm.get_state("ma", IMotion)
        assert state is not None and state.status is MotionStatus.IDLE
        await probe.comm.register_event(ProbeEvent)
        await probe.comm.send_event(ProbeEvent(message="across", number=7))
        await eventually(lambda: got, timeout=5.0, what="an event from the other node")
        assert got[0][0] == "ma" and got[0][1].number == 7
    finally:
        await client.close()
        await probe.close()


async def test_a_dying_node_is_noticed_and_its_modules_fail_over() -> None:
    first, second = await _cluster()
    watcher = Module(comm=_comm(first, "ma"))
    stranded = Probe(comm=_comm(second, "mb"))  # only knows the node that dies
    mover = Probe(comm=_comm(second, "mc", server=[second.address, first.address]))
    modules = [watcher, stranded, mover]
    try:
        for m in modules:
            await m.open()
        await eventually(lambda: {"mb", "mc"} <= set(watcher.comm.clients), timeout=5.0, what="watcher sees both")
        assert await (await watcher.proxy("mc", IProbe)).add(1, 1.0) == 2.0

        await second.kill()  # SIGKILL: no word to anybody
        killed = time.monotonic()

        async def mover_callable() -> bool:
            if "mc" not in watcher.comm.clients:
                return False
            try:
                return await (await watcher.proxy("mc", IProbe)).add(2, 2.0) == 4.0
            except Exception:
                return False

        # both within 5 s of the death, measured side by side
        detected = failed_over = None
        while detected is None or failed_over is None:
            now = time.monotonic() - killed
            assert now < 5.0, f"after 5 s: mb offline after {detected} s, mc callable after {failed_over} s"
            if detected is None and "mb" not in watcher.comm.clients:
                detected = now
            if failed_over is None and mover.comm.xmpp.connected and await mover_callable():
                failed_over = time.monotonic() - killed
            await asyncio.sleep(0.02)
        assert mover.comm.xmpp.address == first.address
        # and it calls the others again (after waiting up to 5 s for peers of its node to come back)
        await eventually(lambda: "ma" in mover.comm.clients, timeout=6.0, what="mover sees the watcher")
        print(f"\nnode death: offline after {detected:.2f} s; failover callable after {failed_over:.2f} s")
    finally:
        for m in reversed(modules):
            try:
                await m.close()
            except Exception as exc:  # closing must not hide the test's own failure
                print(f"closing {m!r}: {exc!r}")
        await _stop(first, second)
