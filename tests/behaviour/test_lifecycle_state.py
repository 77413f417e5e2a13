"""A module's lifecycle state (ready / error with its message) as its peers see it (Comm.peer)."""

from __future__ import annotations

from typing import Any

import pytest
from backends.base import eventually
from support import Telescope, opened, seen


async def test_peers_see_a_module_in_error_and_back(backend: Any) -> None:
    if backend.kind == "dbus":
        pytest.skip("D-Bus does not carry the lifecycle state yet: peers see 'ready' while online")
    watcher = backend.comm("watcher")
    await watcher.open()
    scope = await opened(Telescope(comm=backend.comm("telescope")))
    late = backend.comm("late")
    try:
        await seen(watcher, "telescope")
        peer = watcher.peer("telescope")
        assert peer is not None and (peer.module_state, peer.state_message) == ("ready", "")
        scope.set_error("mount jammed")
        await eventually(lambda: watcher.peer("telescope").module_state == "error", what="the error state")
        assert watcher.peer("telescope").state_message == "mount jammed"
        # a late joiner sees the error at once
        await late.open()
        await seen(late, "telescope")
        await eventually(lambda: late.peer("telescope").module_state == "error", what="the late joiner's view")
        await scope.reset_error()
        await eventually(lambda: watcher.peer("telescope").module_state == "ready", what="ready again")
        assert watcher.peer("telescope").state_message == ""
        assert watcher.peer("nobody") is None
    finally:
        await late.close()
        await scope.close()
        await watcher.close()
