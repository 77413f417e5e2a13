"""XMPP test backend: one throw-away server of each kind per test session, a fresh resource per test.

The kinds are prosody and ejabberd (``PYOBS_XMPP_SERVERS=prosody,ejabberd``, the default: both);
every test using ``xmpp_server``/``xmpp_backend`` runs once per kind (ids ``[prosody]``,
``[ejabberd]``), and the behaviour suite has a backend per kind (``xmpp-prosody``, ``xmpp-ejabberd``).

Modules of one test share a resource (``t<n>``), so they address each other by name and ignore
the presence of sessions of other tests (a comm ignores presence from other resources).
Accounts are registered when the server starts: ``m0`` … ``m39`` plus :data:`NAMES`.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from pyobs.comm import Comm
from pyobs.comm.xmpp import XmppComm
from pyobs.testing.ejabberd_server import EjabberdTestServer
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


ALL_SERVERS = ["prosody", "ejabberd"]

#: either kind of test server
AnyServer = TestServer | EjabberdTestServer


def server_kinds() -> list[str]:
    """The XMPP server kinds to test on (``PYOBS_XMPP_SERVERS``, default: all)."""
    wanted = os.environ.get("PYOBS_XMPP_SERVERS")
    kinds = [k.strip() for k in wanted.split(",") if k.strip()] if wanted else ALL_SERVERS
    unknown = [k for k in kinds if k not in ALL_SERVERS]
    if unknown:
        raise ValueError(f"PYOBS_XMPP_SERVERS: unknown server kind(s) {unknown}; known: {ALL_SERVERS}")
    return kinds


def new_server(kind: str, users: list[str], restrict_nodes: bool = True, **options: Any) -> AnyServer:
    """An unstarted test server of ``kind`` (prosody options such as tls are prosody-only);
    ``restrict_nodes=False``: without the node ownership settings of docs/xmpp.md."""
    if kind == "prosody":
        return TestServer(users, restrict_nodes=restrict_nodes, **options)
    if kind == "ejabberd":
        return EjabberdTestServer(users, tools=("tool",) if restrict_nodes else (), **options)
    raise ValueError(f"unknown XMPP server kind {kind!r}")


def _session_server(kind: str) -> Iterator[AnyServer]:
    server = new_server(kind, NAMES, outsiders=OUTSIDERS)
    started = time.monotonic()
    try:
        server.start_blocking()
    except TestServerError as exc:
        server.cleanup()
        if os.environ.get("PYOBS_REQUIRE_XMPP"):
            raise
        pytest.skip(f"no {kind} for the XMPP tests: {exc}")
    log.info("%s test server started in %.1f s", kind, time.monotonic() - started)
    try:
        yield server
    finally:
        server.stop_blocking()
        server.cleanup()


@pytest.fixture(scope="session")
def prosody() -> Iterator[AnyServer]:
    """A prosody on a free loopback port with every account of :data:`NAMES`; stopped at the end."""
    yield from _session_server("prosody")


@pytest.fixture(scope="session")
def ejabberd() -> Iterator[AnyServer]:
    """An ejabberd on free loopback ports with every account of :data:`NAMES`; stopped at the end."""
    yield from _session_server("ejabberd")


@pytest.fixture(scope="session")
def xmpp_server(request: pytest.FixtureRequest) -> AnyServer:
    """The session's server of the kind this test runs on (parametrised in tests/conftest.py)."""
    server: AnyServer = request.getfixturevalue(request.param)
    return server


@pytest.fixture
def xmpp_kind(request: pytest.FixtureRequest) -> str:
    """The server kind, for tests that start servers of their own (parametrised in tests/conftest.py)."""
    kind: str = request.param
    return kind


class XmppBackend:
    kind = "xmpp"
    multiprocess = True

    def __init__(self, server: AnyServer) -> None:
        self.server = server
        self.resource = f"t{os.getpid()}x{next(_counter)}"
        self.comms: list[Comm] = []

    def _check(self, name: str) -> None:
        if name not in self.server.users:
            raise ValueError(
                f"no XMPP test account '{name}': add it to NAMES in tests/backends/xmpp.py "
                f"(the accounts are registered when the server starts)"
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


async def _backend(server: AnyServer) -> AsyncIterator[XmppBackend]:
    backend = XmppBackend(server)
    try:
        yield backend
    finally:
        await backend.close()


@pytest.fixture
async def xmpp_backend(xmpp_server: AnyServer) -> AsyncIterator[XmppBackend]:
    async for backend in _backend(xmpp_server):
        yield backend


@pytest.fixture
async def xmpp_prosody_backend(prosody: AnyServer) -> AsyncIterator[XmppBackend]:
    async for backend in _backend(prosody):
        yield backend


@pytest.fixture
async def xmpp_ejabberd_backend(ejabberd: AnyServer) -> AsyncIterator[XmppBackend]:
    async for backend in _backend(ejabberd):
        yield backend


#: accounts of the per-test server of the connection-loss tests
OUTAGE_NAMES = ["caller", "sink", "telescope", "other", "camera"]


class XmppOutageBackend(XmppBackend):
    """Modules on a server of their own, which the test stops and starts again."""

    async def cut(self) -> None:
        await self.server.stop()

    async def restore(self) -> None:
        await self.server.start()


async def _outage_backend(kind: str) -> AsyncIterator[XmppOutageBackend]:
    server = new_server(kind, OUTAGE_NAMES)
    try:
        await server.start()
    except TestServerError as exc:
        server.cleanup()
        if os.environ.get("PYOBS_REQUIRE_XMPP"):
            raise
        pytest.skip(f"no {kind} for the XMPP tests: {exc}")
    backend = XmppOutageBackend(server)
    try:
        yield backend
    finally:
        await backend.close()
        await server.stop()
        server.cleanup()


@pytest.fixture
async def xmpp_prosody_outage_backend() -> AsyncIterator[XmppOutageBackend]:
    async for backend in _outage_backend("prosody"):
        yield backend


@pytest.fixture
async def xmpp_ejabberd_outage_backend() -> AsyncIterator[XmppOutageBackend]:
    async for backend in _outage_backend("ejabberd"):
        yield backend
