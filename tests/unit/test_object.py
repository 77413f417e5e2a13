"""Object lifecycle: background tasks, going online after the outermost open()."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import abstractmethod
from collections.abc import AsyncIterator
from typing import Any

import pytest
from backends.base import eventually

from pyobs.comm.local import LocalComm, LocalNetwork
from pyobs.events import NewImageEvent
from pyobs.interfaces import IStartStop
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


async def test_a_crashing_background_task_is_restarted_with_backoff(caplog: pytest.LogCaptureFixture) -> None:
    runs: list[float] = []

    async def crashing() -> None:
        runs.append(asyncio.get_running_loop().time())
        raise RuntimeError("boom again")

    obj = Object()
    obj.add_background_task(crashing)
    caplog.set_level(logging.ERROR)
    await obj.open()
    try:
        # paced by backoff(): restarted after about 0.2 s, then 0.4 s (1 s each before: 2 s in all)
        await eventually(lambda: len(runs) >= 3, timeout=1.8, what="two restarts")
        assert "crashing" in caplog.text and "restarting" in caplog.text
        assert runs[1] - runs[0] >= 0.15 and runs[2] - runs[1] >= 0.3  # paused, not restarted at once
    finally:
        await obj.close()


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


@contextlib.asynccontextmanager
async def talker_and_listener() -> AsyncIterator[list[Any]]:
    """A module ``talker`` and a comm ``listener`` on one LocalNetwork: the LogEvents it receives."""
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
        yield received
    finally:
        await module.close()
        await listener.close()


async def test_module_log_records_are_sent_as_log_events() -> None:
    async with talker_and_listener() as received:
        logging.getLogger("my.device").warning("lamp %d is out", 3)
        logging.getLogger("my.device").debug("too chatty to send")
        await eventually(lambda: received, what="the log event")
        assert [(e.level, e.message, e.sender) for e in received] == [("WARNING", "lamp 3 is out", "talker")]
        assert received[0].function == "test_module_log_records_are_sent_as_log_events"
    logging.getLogger("my.device").warning("after close")  # the handler is gone: nothing breaks


device = logging.getLogger("my.device")


class Lamp(Module, IStartStop):
    """Logs in open(), in a background task, in an event handler and in a method."""

    async def open(self) -> None:
        await super().open()
        await self.comm.register_event(NewImageEvent, self._on_image)
        self.add_background_task(self._tick, restart=False)
        device.info("%s: opening", self.name)

    async def _tick(self) -> None:
        device.info("%s: ticking", self.name)

    async def _on_image(self, event: NewImageEvent, sender: str) -> bool:
        device.info("%s: got %s", self.name, event.filename)
        return True

    async def start(self, **kwargs: Any) -> None:
        device.info("%s: start() called", self.name)

    async def stop(self, **kwargs: Any) -> None: ...


async def test_in_one_process_each_log_record_is_sent_once_by_the_module_that_logged_it(caplog: Any) -> None:
    """Two modules of one process (a MultiModule) share the root logger; a record goes out once,
    as a LogEvent of the module whose code logged it: in open(), in a method another module
    called in-process, in an event handler, in a background task."""
    from pyobs.events import LogEvent
    from pyobs.modules import MultiModule

    caplog.set_level(logging.INFO)

    received: list[tuple[str, str]] = []

    async def on_log(event: LogEvent, sender: str) -> bool:
        if event.message.startswith(("a:", "b:")):
            received.append((sender, event.message))
        return True

    fleet = MultiModule({"a": {"class": f"{__name__}.Lamp"}, "b": {"class": f"{__name__}.Lamp"}})
    listener = LocalComm("listener", fleet.network)
    await listener.register_event(LogEvent, on_log)
    await listener.open()
    await fleet.open()
    try:
        a, b = fleet["a"], fleet["b"]
        await b.comm.register_event(NewImageEvent)
        await b.comm.send_event(NewImageEvent("/x.fits"))  # a's handler logs
        await (await b.proxy("a", IStartStop)).start()  # a's method, run in b's task
        expected = {
            ("a", "a: opening"), ("a", "a: ticking"), ("a", "a: got /x.fits"), ("a", "a: start() called"),
            ("b", "b: opening"), ("b", "b: ticking"),
        }  # fmt: skip
        for _ in range(200):
            if set(received) >= expected:
                break
            await asyncio.sleep(0.01)
        assert sorted(received) == sorted(expected)  # each once, from its own module
        assert a.comm.outbox.sent["LogEvent"] >= 4
    finally:
        await fleet.close()
        await listener.close()


async def test_a_log_flood_is_bounded_and_reported(caplog: Any) -> None:
    from pyobs.modules.logpublisher import QUEUE_SIZE

    async with talker_and_listener() as received:
        for i in range(QUEUE_SIZE + 500):  # without yielding: the publisher cannot keep up
            logging.getLogger("my.device").warning("flood %d", i)
        flood = lambda: [e.message for e in received if e.message.startswith("flood")]  # noqa: E731
        await eventually(lambda: len(flood()) >= QUEUE_SIZE, what="the flood's newest records")
        assert flood() == [f"flood {i}" for i in range(500, QUEUE_SIZE + 500)]  # the newest
        assert f"talker: 500 log records not sent as LogEvent: more than {QUEUE_SIZE} at once" in caplog.text


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


async def test_timeout_expressions_of_the_arguments_move_the_callers_deadline() -> None:
    """pyobs-core's @timeout("expression") form: evaluated over the call's arguments."""
    import pytest

    from pyobs.interfaces import Interface
    from pyobs.modules import timeout
    from pyobs.utils.exceptions import RemoteTimeoutError
    from pyobs.utils.expression import evaluate_expression

    class ISlowish(Interface):
        @abstractmethod
        async def wait(self, seconds: float, **kwargs: Any) -> float: ...

        @abstractmethod
        async def wait_unannounced(self, seconds: float, **kwargs: Any) -> float: ...

    class Slowish(Module, ISlowish):
        @timeout("seconds * 2 + 0.5")
        async def wait(self, seconds: float, **kwargs: Any) -> float:
            await asyncio.sleep(seconds)
            return seconds

        async def wait_unannounced(self, seconds: float, **kwargs: Any) -> float:
            await asyncio.sleep(seconds)
            return seconds

    net = LocalNetwork()
    module = Slowish(comm=LocalComm("slowish", net))
    caller = LocalComm("caller", net, timeout=0.2)
    await module.open()
    await caller.open()
    try:
        proxy = await caller.proxy("slowish", ISlowish)
        assert await proxy.wait(0.4) == 0.4  # the announced 1.3 s replace the caller's 0.2 s
        with pytest.raises(RemoteTimeoutError):
            await proxy.wait_unannounced(0.4)
    finally:
        await caller.close()
        await module.close()
    assert evaluate_expression("exposure_time + 10", {"exposure_time": 2}) == 12.0
    for bad, problem in [("__import__('os')", "unsupported"), ("x + 1", "unknown name"), ("2 ** 99", "too large")]:
        with pytest.raises(ValueError, match=problem):
            evaluate_expression(bad, {})
