"""pyobs-core 2.19's ways of reading state, capabilities and presence, on every transport (docs/compat.md)."""

from __future__ import annotations

from typing import Any

from backends.base import eventually
from support import Focuser, module_and_caller, opened, seen

from pyobs.interfaces import IBinning, IFocuser
from pyobs.interfaces.types import Binning, BinningCapabilities, BinningState, FocuserState
from pyobs.modules import Module
from pyobs.utils.enums import ModuleState


async def test_proxy_state_is_cached_when_the_proxy_is_made(backend: Any) -> None:
    async with module_and_caller(backend, Focuser, "focuser", IFocuser, "reader") as (foc, _reader, proxy):
        state = proxy.get_state(IFocuser)  # synchronous: no call, no subscription on first read
        assert isinstance(state, FocuserState) and state.focus == 10.0
        await foc.set_focus(12.0)
        await eventually(lambda: proxy.get_state(IFocuser).focus == 12.0, what="the new state in the cache")
        # pyobs-core's form: no predicate, a state already known counts
        waited = await proxy.wait_for_state(IFocuser, timeout=2)
        assert waited is not None and waited.focus == 12.0
        assert (await proxy.fetch_state(IFocuser)).focus == 12.0


async def test_sync_state_callbacks_get_the_current_state_and_changes(backend: Any) -> None:
    foc = await opened(Focuser(comm=backend.comm("focuser")))
    reader = backend.comm("reader")
    await reader.open()
    seen_focus: list[float] = []

    def on_state(state: FocuserState) -> None:  # pyobs-core's callback: sync, state only
        seen_focus.append(state.focus)

    try:
        await seen(reader, "focuser")
        await reader.subscribe_state("focuser", IFocuser, on_state)
        await eventually(lambda: seen_focus == [10.0], what="the current state on subscribe")
        await foc.set_focus(11.0)
        await eventually(lambda: seen_focus == [10.0, 11.0], what="the change")
        await reader.unsubscribe_state("focuser", IFocuser, on_state)
        await foc.set_focus(13.0)
        proxy = await reader.proxy("focuser", IFocuser)
        await eventually(lambda: proxy.get_state(IFocuser).focus == 13.0, what="the state after unsubscribing")
        assert seen_focus == [10.0, 11.0]
    finally:
        await reader.close()
        await foc.close()


class Binner(Module, IBinning):
    async def open(self) -> None:
        await super().open()
        caps = BinningCapabilities([Binning(1, 1), Binning(2, 2)])
        assert await self.comm.set_capabilities(IBinning, caps) is None  # awaitable, as in pyobs-core
        await self.comm.set_state(IBinning, BinningState(1, 1))

    async def set_binning(self, x: int, y: int, **kwargs: Any) -> None:
        await self.comm.set_state(IBinning, BinningState(x, y))


async def test_capabilities_are_fetched_with_the_proxy(backend: Any) -> None:
    async with module_and_caller(backend, Binner, "camera", IBinning, caller="reader") as (cam, _reader, proxy):
        caps = await proxy.wait_for_capabilities(IBinning, timeout=5)
        assert caps == BinningCapabilities([Binning(1, 1), Binning(2, 2)])
        assert proxy.get_capabilities(IBinning) == caps  # synchronous from now on
        assert cam.comm.get_own_capabilities(IBinning) == caps


async def test_peers_see_a_modules_lifecycle_state(backend: Any) -> None:
    module = await opened(Module(comm=backend.comm("module")))
    watcher = backend.comm("watcher")
    await watcher.open()
    changes: list[tuple[ModuleState, str]] = []
    try:
        await seen(watcher, "module")
        assert watcher.get_client_state("module") == (ModuleState.READY, "")
        await watcher.subscribe_presence("module", lambda state, error: changes.append((state, error)))
        await eventually(lambda: changes == [(ModuleState.READY, "")], what="the current state on subscribe")
        await module.set_state(ModuleState.ERROR, "camera not connected")
        await eventually(
            lambda: watcher.get_client_state("module") == (ModuleState.ERROR, "camera not connected"), what="the error"
        )
        await module.reset_error()
        await eventually(lambda: watcher.get_client_state("module") == (ModuleState.READY, ""), what="ready again")
        assert (ModuleState.ERROR, "camera not connected") in changes
    finally:
        await module.close()
        await eventually(lambda: watcher.get_client_state("module") is None, what="offline")
        await eventually(lambda: changes[-1][0] == ModuleState.CLOSED, what="the presence callback on leaving")
        await watcher.close()


async def test_a_late_joiner_sees_a_module_already_in_error(backend: Any) -> None:
    module = await opened(Module(comm=backend.comm("module")))
    try:
        await module.set_state(ModuleState.ERROR, "camera not connected")
        late = backend.comm("late")
        await late.open()
        try:
            await seen(late, "module")
            await eventually(
                lambda: late.get_client_state("module") == (ModuleState.ERROR, "camera not connected"),
                what="the error state of a module that was in error before we came",
            )
        finally:
            await late.close()
    finally:
        await module.close()
