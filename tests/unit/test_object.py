"""Object lifecycle: background tasks, going online after the outermost open()."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pyobs.comm.local import LocalComm, LocalNetwork
from pyobs.events import NewImageEvent
from pyobs.modules import Module
from pyobs.object import Object


async def test_background_tasks_run_crashes_are_logged_and_close_cancels(caplog: Any) -> None:
    runs: list[int] = []
    cancelled = asyncio.Event()

    async def crashing() -> None:
        runs.append(1)
        raise RuntimeError("boom in background")

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    obj = Object()
    obj.add_background_task(crashing, restart=False)
    obj.add_background_task(forever)
    caplog.set_level(logging.ERROR)
    await obj.open()
    await asyncio.sleep(0.05)
    assert runs == [1]
    assert "crashing" in caplog.text and "boom in background" in caplog.text
    await obj.close()
    assert cancelled.is_set()


async def test_module_goes_online_only_after_its_open_finished() -> None:
    net = LocalNetwork()
    watcher = LocalComm("watcher", net)
    await watcher.open()
    seen_during_open: list[bool] = []

    class Slow(Module):
        async def open(self) -> None:
            await super().open()
            await self.comm.register_event(NewImageEvent)
            seen_during_open.append("slow" in watcher.clients)

    module = Slow(comm=LocalComm("slow", net))
    await module.open()
    try:
        assert seen_during_open == [False]
        assert "slow" in watcher.clients
        assert watcher._peers["slow"].sends >= {"NewImageEvent"}
    finally:
        await module.close()
        await watcher.close()
    assert "slow" not in watcher.clients


async def test_module_implements_imodule_and_iconfig() -> None:
    from pyobs.interfaces import IConfig, IModule
    from pyobs.utils.exceptions import InvalidArgumentError

    net = LocalNetwork()
    module = Module(comm=LocalComm("mod", net), label="My Module")
    values = {"gain": 1.5}
    module.add_config("gain", lambda: values["gain"], lambda v: values.__setitem__("gain", v))
    caller = LocalComm("caller", net)
    await module.open()
    await caller.open()
    try:
        proxy = await caller.proxy("mod", IConfig)
        assert isinstance(proxy, IModule)
        assert await proxy.get_config_value("gain") == 1.5
        await proxy.set_config_value("gain", 2.5)
        assert values["gain"] == 2.5
        try:
            await proxy.get_config_value("nope")
        except InvalidArgumentError as exc:
            assert "nope" in str(exc)
        else:
            raise AssertionError("expected InvalidArgumentError")
        assert "get_config_value" in await proxy.get_permitted_methods()
        assert await proxy.reset_error() is True
        assert module.label == "My Module"
    finally:
        await caller.close()
        await module.close()


async def test_module_in_error_state_only_answers_imodule_methods() -> None:
    from pyobs.interfaces import IConfig
    from pyobs.utils.exceptions import ModuleError

    net = LocalNetwork()
    module = Module(comm=LocalComm("mod", net))
    caller = LocalComm("caller", net)
    await module.open()
    await caller.open()
    try:
        proxy = await caller.proxy("mod", IConfig)
        module.set_error("camera not connected")
        try:
            await proxy.get_config_value("x")
        except ModuleError as exc:
            assert "error state" in str(exc)
        else:
            raise AssertionError("expected ModuleError")
        assert await proxy.reset_error() is True
        assert module.module_state == "ready"
    finally:
        await caller.close()
        await module.close()


async def test_module_log_records_are_sent_as_log_events() -> None:
    from pyobs.events import LogEvent

    net = LocalNetwork()
    received: list[LogEvent] = []

    async def on_log(event: LogEvent, sender: str) -> bool:
        received.append(event)
        return True

    listener = LocalComm("listener", net)
    await listener.register_event(LogEvent, on_log)
    await listener.open()
    module = Module(comm=LocalComm("talker", net))
    await module.open()
    try:
        logging.getLogger("my.device").warning("lamp %d is out", 3)
        logging.getLogger("my.device").debug("too chatty to send")
        for _ in range(100):
            if received:
                break
            await asyncio.sleep(0.01)
        assert [(e.level, e.message, e.sender) for e in received] == [("WARNING", "lamp 3 is out", "talker")]
        assert received[0].function == "test_module_log_records_are_sent_as_log_events"
    finally:
        await module.close()
        await listener.close()
    logging.getLogger("my.device").warning("after close")  # the handler is gone: nothing breaks


async def test_module_announces_iconfig_capabilities() -> None:
    from pyobs.interfaces import IConfig
    from pyobs.interfaces.types import ConfigCapabilities

    net = LocalNetwork()
    module = Module(comm=LocalComm("mod", net))
    module.add_config("gain", lambda: 1.0, lambda v: None)
    module.add_config("serial", lambda: "abc")
    caller = LocalComm("caller", net)
    await module.open()
    await caller.open()
    try:
        proxy = await caller.proxy("mod", IConfig)
        caps = await proxy.wait_for_capabilities(IConfig)
        assert caps == ConfigCapabilities(caps={"gain": (True, True, False), "serial": (True, False, False)})
        assert module.comm.connected
    finally:
        await caller.close()
        await module.close()
    assert not module.comm.connected
