"""XMPP test backend: one throw-away prosody per test session, a fresh resource per test.

Modules of one test share a resource (``t<n>``), so they address each other by name and ignore
the presence of sessions of other tests (a comm ignores presence from other resources).
Accounts are registered when the server starts: ``m0`` … ``m39`` plus :data:`NAMES`.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from pyobs.comm import Comm
from pyobs.comm.xmpp import XmppComm
from pyobs.testing.xmpp_server import TestServer, TestServerError

log = logging.getLogger(__name__)

#: module names the test suites use (every account is in the shared roster of the others)
NAMES = [
    *(f"m{i}" for i in range(40)),
    "a", "b", "c", "d", "x", "y", "z",
    "caller", "camera", "client", "focuser", "late", "reader", "receiver", "sender", "sink",
    "telescope", "watcher", "mastermind", "roof", "weather", "dome", "scheduler", "logger", "tool",
    "peer", "other", "module", "raw", "callee", "worker", "publisher", "subscriber", "observer",
    "filters", "guider", "acquisition", "autofocus", "flatfield", "pointing", "cooler", "spectrograph",
    "dashboard",
]  # fmt: skip

#: accounts outside the fleet (not in the shared roster), for the attacks of tests/fuzz and the trust tests
OUTSIDERS = ["mallory", "peer@evil.pyobs.test"]

_counter = itertools.count()


@pytest.fixture(scope="session")
def prosody() -> Iterator[TestServer]:
    """A prosody on a free loopback port with every account of :data:`NAMES`; stopped at the end."""
    server = TestServer(NAMES, outsiders=OUTSIDERS)
    try:
        server.start_blocking()
    except TestServerError as exc:
        server.cleanup()
        if os.environ.get("PYOBS_REQUIRE_XMPP"):
            raise
        pytest.skip(f"no prosody for the XMPP tests: {exc}")
    try:
        yield server
    finally:
        server.stop_blocking()
        server.cleanup()


class XmppBackend:
    kind = "xmpp"
    multiprocess = True

    def __init__(self, server: TestServer) -> None:
        self.server = server
        self.resource = f"t{os.getpid()}x{next(_counter)}"
        self.comms: list[Comm] = []

    def _check(self, name: str) -> None:
        if name not in self.server.users:
            raise ValueError(
                f"no XMPP test account '{name}': add it to NAMES in tests/backends/xmpp.py "
                f"(the shared roster is fixed when prosody starts)"
            )

    def comm(self, name: str, timeout: float = 10.0, **limits: Any) -> Comm:
        self._check(name)
        comm = XmppComm(
            **limits,
            user=name,
            domain=self.server.domain,
            resource=self.resource,
            password=self.server.password,
            server=self.server.address,
            timeout=timeout,
        )
        self.comms.append(comm)
        return comm

    def comm_config(self, name: str) -> dict[str, Any]:
        self._check(name)
        return {
            "class": "pyobs.comm.xmpp.XmppComm",
            "jid": f"{self.server.jid(name)}/{self.resource}",
            "password": self.server.password,
            "server": self.server.address,
        }

    async def close(self) -> None:
        for comm in self.comms:
            if comm.opened:
                try:
                    await comm.close()
                except Exception:
                    log.exception("closing %s failed", comm.name)


@pytest.fixture
async def xmpp_backend(prosody: TestServer) -> AsyncIterator[XmppBackend]:
    backend = XmppBackend(prosody)
    try:
        yield backend
    finally:
        await backend.close()


#: accounts of the per-test server of the connection-loss tests
OUTAGE_NAMES = ["caller", "sink", "telescope", "other", "camera"]


class XmppOutageBackend(XmppBackend):
    """Modules on a prosody of their own, which the test stops and starts again."""

    async def cut(self) -> None:
        await self.server.stop()

    async def restore(self) -> None:
        await self.server.start()


@pytest.fixture
async def xmpp_outage_backend() -> AsyncIterator[XmppOutageBackend]:
    server = TestServer(OUTAGE_NAMES)
    try:
        await server.start()
    except TestServerError as exc:
        server.cleanup()
        if os.environ.get("PYOBS_REQUIRE_XMPP"):
            raise
        pytest.skip(f"no prosody for the XMPP tests: {exc}")
    backend = XmppOutageBackend(server)
    try:
        yield backend
    finally:
        await backend.close()
        await server.stop()
        server.cleanup()
