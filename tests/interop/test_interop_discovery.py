"""Discovery both ways: clients_with_interface, ModuleOpenedEvent / ModuleClosedEvent."""

from __future__ import annotations

import pytest
from harness import Core, Ours, eventually
from support import IKitchenSink

from pyobs.events import ModuleClosedEvent, ModuleOpenedEvent
from pyobs.interfaces import ICamera, IFocuser, IPointingRaDec, ITelescope

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_we_list_pyobs_core_modules(ours: Ours, core: Core) -> None:
    comm = ours.probe.comm
    assert "coresink" in await comm.clients_with_interface(IKitchenSink)
    assert "corecam" in await comm.clients_with_interface(ICamera)
    assert "corescope" in await comm.clients_with_interface(ITelescope)
    assert "corescope" in await comm.clients_with_interface(IPointingRaDec)
    assert "corescope" in await comm.clients_with_interface(IFocuser)
    assert "corecam" not in await comm.clients_with_interface(ITelescope)
    assert {"coresink", "corescope", "corecam"} <= set(comm.clients)


async def test_pyobs_core_lists_our_modules(ours: Ours, core: Core) -> None:
    assert "oursink" in await core.sink.result("clients_with_interface", interface="IKitchenSink")
    assert "ourcam" in await core.sink.result("clients_with_interface", interface="ICamera")
    scopes = await core.sink.result("clients_with_interface", interface="ITelescope")
    assert "ourscope" in scopes and "ourcam" not in scopes
    assert "ourscope" in await core.sink.result("clients_with_interface", interface="IPointingRaDec")
    assert "ourfocus" in await core.sink.result("clients_with_interface", interface="IFocuser")
    clients = await core.sink.result("clients")
    assert {"oursink", "ourscope", "ourfocus", "ourcam", "ourprobe"} <= set(clients)


async def test_pyobs_core_module_comes_and_goes(ours: Ours, core: Core) -> None:
    probe = ours.probe
    late = core.peers.make("corelate", "peer.probe.CoreSink").start()
    try:
        await late.wait_started()

        def opened() -> bool:
            return any(
                getattr(e, "module", None) == "corelate" or s == "corelate"
                for e, s in probe.received
                if isinstance(e, ModuleOpenedEvent)
            )

        await eventually(opened, 30.0, "ModuleOpenedEvent for corelate")
        assert "corelate" in await probe.comm.clients_with_interface(IKitchenSink)
        # and the newcomer discovers us (its own ModuleOpenedEvent per module of ours)
        await late.wait_record("sees ourprobe", 30.0, kind="event", type="ModuleOpenedEvent", sender="ourprobe")
        late.stop()
        assert late.proc is not None and late.proc.returncode is not None

        def closed() -> bool:
            return any(
                getattr(e, "module", None) == "corelate" or s == "corelate"
                for e, s in probe.received
                if isinstance(e, ModuleClosedEvent)
            )

        await eventually(closed, 30.0, "ModuleClosedEvent for corelate")
        assert "corelate" not in await probe.comm.clients_with_interface(IKitchenSink)
        assert not probe.comm.is_online("corelate")
    finally:
        late.stop()


async def test_our_module_comes_and_goes(ours: Ours, core: Core) -> None:
    from ours import OurTelescope

    scope = OurTelescope(comm=ours.server.our_comm("ourlate"))
    await scope.open()
    try:
        await core.sink.wait_record(
            "ModuleOpenedEvent for ourlate", 30.0, kind="event", type="ModuleOpenedEvent", sender="ourlate"
        )
        assert "ourlate" in await core.sink.result("clients_with_interface", interface="ITelescope")
    finally:
        await scope.close()
    await core.sink.wait_record(
        "ModuleClosedEvent for ourlate", 30.0, kind="event", type="ModuleClosedEvent", sender="ourlate"
    )
    assert "ourlate" not in await core.sink.result("clients_with_interface", interface="ITelescope")
