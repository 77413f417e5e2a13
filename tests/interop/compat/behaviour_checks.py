"""Behaviour checks written against pyobs-core 2.19's user-facing API, run unchanged in either package.

``python behaviour_checks.py`` runs every check in whichever ``pyobs`` the interpreter imports (ours
with PYTHONPATH set, pyobs-core in its venv) and prints ``{check name: "ok" | "FAIL ..."}`` as JSON;
tests/interop/test_compat_behaviour.py runs it in both and wants "ok" everywhere. Every wait has a
deadline; modules talk through LocalComm (both packages have it), names are unique per check.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import tempfile
import traceback
from abc import abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHECKS: dict[str, Callable[[], Awaitable[None]]] = {}


def check(func: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    CHECKS[func.__name__] = func
    return func


async def eventually(predicate: Callable[[], Any], what: str, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


# ---------------------------------------------------------------- a user interface, pyobs-core style

from pyobs.interfaces import Interface  # noqa: E402
from pyobs.utils.time import Time  # noqa: E402


@dataclass
class CompatThingState:
    level: float = 0.0
    time: Time = field(default_factory=Time.now)


@dataclass
class CompatThingCaps:
    max_level: float = 10.0


class ICompatThing(Interface):
    state = CompatThingState
    capabilities = CompatThingCaps

    @abstractmethod
    async def set_level(self, level: float, **kwargs: Any) -> None: ...


def thing_module_class() -> type:
    from pyobs.modules import Module

    class CompatThing(Module, ICompatThing):
        async def open(self) -> None:
            await Module.open(self)
            await self.comm.set_capabilities(ICompatThing, CompatThingCaps(max_level=5.0))
            await self.comm.set_state(ICompatThing, CompatThingState(level=1.0))

        async def set_level(self, level: float, **kwargs: Any) -> None:
            await self.comm.set_state(ICompatThing, CompatThingState(level=level))

    return CompatThing


async def started(module: Any) -> Any:
    await asyncio.wait_for(module.startup(), 10.0)
    return module


# ---------------------------------------------------------------- exceptions


@check
async def exceptions_take_context_and_print_their_class() -> None:
    from pyobs.utils import exceptions as exc

    e = exc.MoveError("x", module="t")
    assert e.module == "t" and e.message == "x"  # type: ignore[attr-defined]
    assert isinstance(e, exc.MotionError) and isinstance(e, exc.PyobsError)
    assert str(exc.FocusError("could not focus")) == "<FocusError> could not focus"
    assert str(exc.GeneralError()) == "<GeneralError>"
    assert exc.PyobsError.resolve("pyobs.utils.exceptions.MoveError") is exc.MoveError

    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("compat-check")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(Collect())
    e.log(logger, "WARNING", "first")
    e.log(logger, "WARNING", "second")
    assert [r.getMessage() for r in records] == ["first"]


# ---------------------------------------------------------------- events


@check
async def events_have_pyobs_core_accessors_and_json() -> None:
    from pyobs.events import (
        Event,
        EventFactory,
        FilterChangedEvent,
        ModeChangedEvent,
        NewImageEvent,
        get_registered_event,
        registered_events,
    )
    from pyobs.utils.enums import ImageType

    e = FilterChangedEvent("Red")
    assert e.filter == "Red"
    assert ModeChangedEvent("binning", "2x2").mode == "2x2"
    assert NewImageEvent("/a.fits", ImageType.OBJECT, raw="/raw.fits").is_reduced
    assert not NewImageEvent("/a.fits").is_reduced
    wire = e.to_json()
    assert set(wire) == {"type", "timestamp", "uuid", "data"} and wire["type"] == "FilterChangedEvent"
    assert json.loads(str(e)) == wire
    back = EventFactory.from_dict(json.loads(str(e)))
    assert isinstance(back, FilterChangedEvent) and back.filter == "Red" and back.uuid == e.uuid
    assert EventFactory.from_dict({"type": "NoSuchCompatEvent", "uuid": "u", "data": {}}) is None
    assert get_registered_event("FilterChangedEvent") is FilterChangedEvent
    assert registered_events()["NewImageEvent"] is NewImageEvent
    assert issubclass(FilterChangedEvent, Event)


@check
async def events_reach_handlers_of_other_modules() -> None:
    from pyobs.comm.local import LocalComm
    from pyobs.events import FilterChangedEvent
    from pyobs.modules import Module

    got: list[tuple[str, str]] = []

    async def on_filter(event: Any, sender: str) -> bool:
        got.append((event.filter, sender))
        return True

    sender = await started(Module(comm=LocalComm("compat-ev-sender")))
    receiver = Module(comm=LocalComm("compat-ev-receiver"))
    await started(receiver)
    try:
        await sender.comm.register_event(FilterChangedEvent)
        await receiver.comm.register_event(FilterChangedEvent, on_filter)
        await sender.comm.send_event(FilterChangedEvent("Blue"))
        await eventually(lambda: got, "the event")
        assert got == [("Blue", "compat-ev-sender")]
    finally:
        await receiver.close()
        await sender.close()


# ---------------------------------------------------------------- interfaces


@check
async def interfaces_declare_state_and_capabilities_like_pyobs_core() -> None:
    from pyobs.interfaces import IFocuser
    from pyobs.interfaces.interface import get_registered_interface, registered_interfaces

    assert ICompatThing.has_own_state()
    assert ICompatThing.state is CompatThingState and ICompatThing.capabilities is CompatThingCaps
    assert get_registered_interface("ICompatThing") is ICompatThing
    assert registered_interfaces()["IFocuser"] is IFocuser
    assert IFocuser.has_own_state()


# ---------------------------------------------------------------- modules, proxies, state


@check
async def proxy_reads_state_synchronously_and_follows_changes() -> None:
    from pyobs.comm.local import LocalComm
    from pyobs.modules import Module

    thing = await started(thing_module_class()(comm=LocalComm("compat-thing1")))
    client = await started(Module(comm=LocalComm("compat-client1")))
    try:
        async with client.proxy("compat-thing1", ICompatThing) as proxy:
            state = proxy.get_state(ICompatThing)  # no await: the cache was filled with the proxy
            assert isinstance(state, CompatThingState) and state.level == 1.0
            assert proxy.get_state(ICompatThing, max_age=3600) is not None
            await proxy.set_level(4.0)
            await eventually(lambda: proxy.get_state(ICompatThing).level == 4.0, "the new state")
            waited = await proxy.wait_for_state(ICompatThing, timeout=2)
            assert waited is not None and waited.level == 4.0
            caps = await proxy.wait_for_capabilities(ICompatThing, timeout=5)
            assert caps == CompatThingCaps(max_level=5.0)
            assert proxy.get_capabilities(ICompatThing) == caps
            assert "set_level" in proxy.method_names
        assert await client.has_proxy("compat-thing1", ICompatThing)
        assert not await client.has_proxy("compat-nobody", ICompatThing)
        async with client.safe_proxy("compat-nobody", ICompatThing) as none:
            assert none is None
    finally:
        await client.close()
        await thing.close()


@check
async def comm_state_subscriptions_take_sync_callbacks() -> None:
    from pyobs.comm.local import LocalComm
    from pyobs.modules import Module

    thing = await started(thing_module_class()(comm=LocalComm("compat-thing2")))
    client = await started(Module(comm=LocalComm("compat-client2")))
    seen: list[float] = []

    def on_state(state: Any) -> None:
        seen.append(state.level)

    try:
        await client.comm.subscribe_state("compat-thing2", ICompatThing, on_state)
        await eventually(lambda: 1.0 in seen, "the current state on subscribe")
        await thing.set_level(2.5)
        await eventually(lambda: 2.5 in seen, "the changed state")
        # (pyobs-core's LocalComm ignores unsubscribe_state, so whether it stops is not compared here)
        await client.comm.unsubscribe_state("compat-thing2", ICompatThing, on_state)
        await thing.set_level(3.5)
        async with client.proxy("compat-thing2", ICompatThing) as proxy:
            await eventually(lambda: proxy.get_state(ICompatThing).level == 3.5, "the state after unsubscribing")
        assert thing.comm.get_own_capabilities(ICompatThing) == CompatThingCaps(max_level=5.0)
        assert thing.comm.get_own_state(ICompatThing).level == 3.5
    finally:
        await client.close()
        await thing.close()


@check
async def module_lifecycle_state_and_presence() -> None:
    from pyobs.comm.local import LocalComm
    from pyobs.modules import Module
    from pyobs.utils.enums import ModuleState

    module = Module(comm=LocalComm("compat-life"), label="Life")
    watcher = await started(Module(comm=LocalComm("compat-watcher")))
    try:
        await started(module)
        assert await module.get_state() == ModuleState.READY
        assert await module.get_label() == "Life"
        assert isinstance(await module.get_version(), str)
        await eventually(lambda: watcher.comm.get_client_state("compat-life") is not None, "the module online")
        assert watcher.comm.get_client_state("compat-life") == (ModuleState.READY, "")
        states: list[tuple[Any, str]] = []
        await watcher.comm.subscribe_presence("compat-life", lambda s, e: states.append((s, e)))
        await module.set_state(ModuleState.ERROR, "broken")
        assert await module.get_error_string() == "broken"
        await eventually(
            lambda: watcher.comm.get_client_state("compat-life") == (ModuleState.ERROR, "broken"), "the error"
        )
        await eventually(lambda: (ModuleState.ERROR, "broken") in states, "the presence callback")
        assert await module.reset_error()
        assert await module.get_state() == ModuleState.READY
        main = asyncio.ensure_future(module.main())  # runs until quit() (which stops pyobs-core's loop)
        await asyncio.sleep(0.05)
        assert not main.done()
        main.cancel()
    finally:
        await module.close()
        await watcher.close()


@check
async def mixins_after_object_take_their_own_arguments() -> None:
    from pyobs.comm.local import LocalComm
    from pyobs.modules import Module

    class CompatMixin:
        def __init__(self, mixin_option: int = 1, **kwargs: Any) -> None:
            self.mixin_option = mixin_option
            super().__init__(**kwargs)

    class WithMixin(Module, CompatMixin):
        pass

    module = WithMixin(comm=LocalComm("compat-mixin"), mixin_option=7, label="m")
    assert module.mixin_option == 7
    try:
        WithMixin(comm=LocalComm("compat-mixin2"), bogus_option=1)
    except Exception as exc:  # pyobs-core: TypeError, ours: ConfigError; both name it
        assert "bogus_option" in str(exc), str(exc)
    else:
        raise AssertionError("an unknown argument was accepted")


@check
async def child_objects_open_and_close_with_their_parent() -> None:
    from pyobs.comm.local import LocalComm
    from pyobs.modules import Module
    from pyobs.object import Object

    class Part(Object):
        opened_count = 0

        async def open(self) -> None:
            await Object.open(self)
            Part.opened_count += 1

    parent = Module(comm=LocalComm("compat-parent"))
    child = parent.add_child_object(Part, Part)
    assert isinstance(child, Part) and child.comm is parent.comm
    built = parent.get_object({"class": "pyobs.object.Object"}, Object)
    assert isinstance(built, Object)
    assert parent.get_safe_object({"class": "pyobs.no.Such"}, Object) is None
    await started(parent)
    try:
        assert Part.opened_count == 1 and child.opened
    finally:
        await parent.close()


# ---------------------------------------------------------------- utilities


@check
async def parallel_helpers_wait_with_deadlines() -> None:
    from pyobs.utils.parallel import acquire_lock, event_wait

    evt = asyncio.Event()
    assert await event_wait(evt, 0.05) is False
    evt.set()
    assert await event_wait(evt, 0.05) is True
    lock = asyncio.Lock()
    assert await acquire_lock(lock, 0.05) is True
    assert await acquire_lock(lock, 0.05) is False
    lock.release()


@check
async def time_takes_astropy_style_calls() -> None:
    import astropy.units as u

    t = Time("2025-11-03T23:00:00", scale="utc")
    assert t.isot == "2025-11-03T23:00:00.000"
    assert abs(((t + 1 * u.second) - t).sec - 1.0) < 1e-6
    assert abs(t.mjd - 60982.958333333) < 1e-6
    later = t + 90 * u.minute
    assert later.isot == "2025-11-04T00:30:00.000"
    assert isinstance(Time.now(), Time)


@check
async def xmpp_jids_are_validated_up_front() -> None:
    from pyobs.comm.xmpp import is_valid_jid

    assert is_valid_jid("camera@example.org") and is_valid_jid("camera@example.org/pyobs")
    assert not is_valid_jid("camera") and not is_valid_jid("@example.org")


@check
async def config_includes_are_resolved() -> None:
    import yaml

    from pyobs.utils.config import pre_process_yaml

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "_env.yaml").write_text("timezone: utc\nlocation:\n  longitude: 20.8\n  latitude: -32.4\n")
        (d / "_comm.yaml").write_text("jid: cam@localhost\npassword: pyobs\nignore_cert_errors: true\n")
        (d / "cam.yaml").write_text(
            "{include _env.yaml}\nclass: pyobs.modules.Module\ncomm:\n  class: pyobs.comm.xmpp.XmppComm\n"
            "  {include _comm.yaml}\nsite:\n  {include _env.yaml location}\n"
        )
        config = yaml.safe_load(pre_process_yaml(str(d / "cam.yaml")))
    assert config == {
        "timezone": "utc",
        "location": {"longitude": 20.8, "latitude": -32.4},
        "class": "pyobs.modules.Module",
        "comm": {
            "class": "pyobs.comm.xmpp.XmppComm",
            "jid": "cam@localhost",
            "password": "pyobs",
            "ignore_cert_errors": True,
        },
        "site": {"longitude": 20.8, "latitude": -32.4},
    }, config


@check
async def timeout_decorator_and_options() -> None:
    from pyobs.comm.local import LocalComm
    from pyobs.modules import Module, timeout

    class Slow(Module):
        @timeout(20)
        async def slow(self, **kwargs: Any) -> None: ...

    assert Slow.slow is not None
    vfs = {"class": "pyobs.vfs.VirtualFileSystem"}
    module = Module(comm=LocalComm("compat-options"), own_comm=True, additional_config_variables=["x"], vfs=vfs)
    assert module.vfs is not None


@check
async def config_values_by_getter_and_setter_methods() -> None:
    from pyobs.comm.local import LocalComm
    from pyobs.modules import Module

    class Configurable(Module):
        def __init__(self, gain: int = 1, **kwargs: Any) -> None:
            Module.__init__(self, **kwargs)
            self._gain = gain
            self._mode = "fast"

        async def _get_config_gain(self) -> int:
            return self._gain

        async def _set_config_gain(self, value: int) -> None:
            self._gain = value

        async def _get_config_mode(self) -> str:
            return self._mode

        async def _get_config_options_mode(self) -> list[str]:
            return ["fast", "slow"]

    module = Configurable(comm=LocalComm("compat-config"), gain=3, additional_config_variables=["mode"])
    caps = await module.get_config_caps()
    assert caps["gain"] == (True, True, False) and caps["mode"] == (True, False, True), caps
    assert await module.get_config_value("gain") == 3
    await module.set_config_value("gain", 5)
    assert await module.get_config_value("gain") == 5
    assert await module.get_config_value_options("mode") == ["fast", "slow"]
    try:
        await module.set_config_value("mode", "slow")
    except Exception as exc:
        assert type(exc).__name__ == "InvalidArgumentError", repr(exc)
    else:
        raise AssertionError("a read-only config value was set")


@check
async def multimodule_starts_its_modules() -> None:
    from pyobs.modules import Module, MultiModule

    def local(name: str) -> dict[str, Any]:
        return {"class": "pyobs.modules.Module", "comm": {"class": "pyobs.comm.local.LocalComm", "name": name}}

    multi = MultiModule(modules={"one": local("compat-m1"), "two": local("compat-m2")})
    assert "one" in multi and isinstance(multi["two"], Module) and set(multi.modules) == {"one", "two"}
    await started(multi)
    try:
        from pyobs.utils.enums import ModuleState

        async def both_ready() -> bool:
            return all([await m.get_state() == ModuleState.READY for m in multi.modules.values()])

        for _ in range(500):  # bounded: 5 s
            if await both_ready():
                break
            await asyncio.sleep(0.01)
        assert await both_ready()
        assert await multi["one"].has_proxy("compat-m2")
    finally:
        await multi.close()


async def run_all(names: list[str]) -> dict[str, str]:
    results = {}
    for name in names or list(CHECKS):
        try:
            await asyncio.wait_for(CHECKS[name](), 60.0)
            results[name] = "ok"
        except Exception as exc:
            tb = traceback.format_exception(exc)
            results[name] = f"FAIL {type(exc).__name__}: {exc}\n{''.join(tb[-3:])}"
    return results


if __name__ == "__main__":
    logging.basicConfig(level=logging.CRITICAL)
    results = asyncio.run(run_all(sys.argv[1:]))
    print("\n" + json.dumps(results))  # the last line (the packages may print before)
