"""What the shared behaviour suite needs from each transport's test backend."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from pyobs.comm import Comm


class Backend(Protocol):
    #: "local", "xmpp" or "dbus"
    kind: str
    #: True when modules can live in separate processes on this backend
    multiprocess: bool

    def comm(self, name: str, timeout: float = 10.0, **limits: Any) -> Comm:
        """A new, unopened Comm for a module called ``name`` on this test's network (``limits``:
        the bounds of the Comm core, e.g. ``max_calls``)."""

    def comm_config(self, name: str) -> dict[str, Any]:
        """The YAML-able ``comm:`` config for a module called ``name`` in another process."""


class OutageBackend(Backend, Protocol):
    """A backend on a network of its own whose links can all go down and come back."""

    async def cut(self) -> None:
        """Every module's link goes down (the server or bus daemon stops)."""

    async def restore(self) -> None:
        """The server or bus daemon is back; modules reconnect by themselves."""


async def eventually(predicate: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> Any:
    """Wait until ``predicate()`` is true and return what it returned; fail the test after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not (value := predicate()):
        if loop.time() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.005)
    return value
