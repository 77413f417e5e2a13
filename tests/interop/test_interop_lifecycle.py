"""Module life cycle across the two: error state (presence) and restarts (subscriptions survive)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from harness import Core, Ours, eventually
from ours import FlapMoved, OurTelescope
from support import IKitchenSink

from pyobs.utils.exceptions import ModuleError

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_calls_to_a_module_in_error_fail_alike(ours: Ours, core: Core) -> None:
    # pyobs-core module in error: our call gets pyobs-core's ModuleError
    await core.sink.result("set_module_state", state="error", error="sink broken")
    try:
        sink = await ours.probe.proxy("coresink", IKitchenSink)
        with pytest.raises(ModuleError):
            await sink.echo_int(1)
        assert await sink.reset_error() is True  # IModule methods stay callable
        assert await sink.echo_int(2) == 2
    finally:
        await core.sink.result("set_module_state", state="ready")
    # our module in error: pyobs-core's call gets our ModuleError
    ours.sink.set_error("sink broken")
    try:
        error = await core.sink.call_fails("oursink", "IKitchenSink", "echo_int", 1)
        assert error["type"] == "pyobs.utils.exceptions.ModuleError"
        assert await core.sink.call("oursink", "IModule", "reset_error") is True
        assert await core.sink.call("oursink", "IKitchenSink", "echo_int", 2) == 2
    finally:
        await ours.sink.reset_error()


async def test_pyobs_core_sees_our_modules_ready(ours: Ours, core: Core) -> None:
    assert await core.sink.result("client_state", module="oursink") == ["ready", ""]
    assert await core.sink.result("client_state", module="corescope") == ["ready", ""]


async def _client_state_becomes(core: Core, module: str, expected: list[str], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while (state := await core.sink.result("client_state", module=module)) != expected:
        assert loop.time() < end, f"pyobs-core sees {module} as {state}, expected {expected}"
        await asyncio.sleep(0.2)


async def test_pyobs_core_sees_our_module_in_error_and_back(ours: Ours, core: Core) -> None:
    # spec §3.2: error -> presence <show>dnd</show><status>text</status>; ready -> plain presence
    ours.sink.set_error("sink broken")
    try:
        await _client_state_becomes(core, "oursink", ["error", "sink broken"])
    finally:
        await ours.sink.reset_error()
    await _client_state_becomes(core, "oursink", ["ready", ""])
    assert await core.sink.call("oursink", "IKitchenSink", "echo_int", 3) == 3


async def test_pyobs_core_module_restart_keeps_its_events_coming(ours: Ours, core: Core) -> None:
    probe = ours.probe

    def flaps(text: str) -> list[Any]:
        return [e for e in probe.events(FlapMoved, "corerestart") if e.flap == text]

    first = core.peers.make("corerestart", "peer.probe.CoreSink").start()
    try:
        await first.wait_started()
        await eventually(lambda: probe.comm.is_online("corerestart"), 30.0, "corerestart online")
        await first.wait_record("sees ourprobe", 30.0, kind="event", type="ModuleOpenedEvent", sender="ourprobe")
        await first.result("send_event", event="FlapMoved", kwargs={"flap": "before", "angle": 1.0})
        await eventually(lambda: flaps("before"), 20.0, "FlapMoved before the restart")
        first.kill()  # no clean logout: the server notices the closed connection
    finally:
        first.stop()
    await eventually(lambda: not probe.comm.is_online("corerestart"), 30.0, "corerestart offline")
    second = core.peers.make("corerestart", "peer.probe.CoreSink").start()
    try:
        await second.wait_started()
        await eventually(lambda: probe.comm.is_online("corerestart"), 30.0, "corerestart online again")
        await second.wait_record("sees ourprobe", 30.0, kind="event", type="ModuleOpenedEvent", sender="ourprobe")
        await second.result("send_event", event="FlapMoved", kwargs={"flap": "after", "angle": 2.0})
        await eventually(lambda: flaps("after"), 20.0, "FlapMoved after the restart")
        await asyncio.sleep(1.0)
        assert len(flaps("after")) == 1 and len(flaps("before")) == 1
    finally:
        second.stop()


async def test_our_module_restart_keeps_pyobs_core_subscribed(ours: Ours, core: Core) -> None:
    sink = core.sink

    def opened() -> int:
        return len(sink.find(kind="event", type="ModuleOpenedEvent", sender="ourrestart"))

    def tracking_events() -> int:
        return len(sink.find(kind="event", type="MotionStatusChangedEvent", sender="ourrestart"))

    def at(ra: float) -> Any:
        return lambda r: r["state"]["fields"]["ra"] == ra

    seen_before = opened()
    scope = OurTelescope(comm=ours.server.our_comm("ourrestart"))
    await scope.open()
    try:
        await eventually(lambda: opened() > seen_before, 30.0, "pyobs-core sees ourrestart")
        await sink.result("subscribe_state", module="ourrestart", interface="IPointingRaDec")
        await scope.move_radec(111.0, 1.0)
        await sink.wait_record("state ra=111", 20.0, kind="state", module="ourrestart", predicate=at(111.0))
        await eventually(lambda: tracking_events() >= 1, 20.0, "MotionStatusChangedEvent before the restart")
    finally:
        await scope.close()
    await sink.wait_record("ourrestart closed", 30.0, kind="event", type="ModuleClosedEvent", sender="ourrestart")
    events_before = tracking_events()
    opened_before = opened()
    scope = OurTelescope(comm=ours.server.our_comm("ourrestart"))
    await scope.open()
    try:
        await eventually(lambda: opened() > opened_before, 30.0, "pyobs-core sees ourrestart again")
        await scope.move_radec(222.0, 2.0)
        # pyobs-core's proxy follows our new session's state (its comm.subscribe_state callbacks do not
        # survive a peer's restart, not even of a pyobs-core peer), and events flow again
        end = asyncio.get_running_loop().time() + 20.0
        while True:
            state = await sink.result("get_state", module="ourrestart", interface="IPointingRaDec")
            if state is not None and state["fields"]["ra"] == 222.0:
                break
            assert asyncio.get_running_loop().time() < end, f"pyobs-core still reads {state}"
            await asyncio.sleep(0.2)
        await eventually(lambda: tracking_events() > events_before, 20.0, "MotionStatusChangedEvent after restart")
        await asyncio.sleep(1.0)
        assert tracking_events() == events_before + 1, "one event sent, one received"
    finally:
        await scope.close()
