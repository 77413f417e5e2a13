"""D-Bus test backend: a private dbus-daemon per test session, a fresh name prefix per test."""

from __future__ import annotations

import gc
import itertools
import os
import signal
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from dbus_fast import Message

from pyobs.comm import Comm
from pyobs.comm.dbus import DbusComm
from pyobs.comm.dbus.codec import escape_name
from pyobs.testing import dbus_daemon as testing_dbus

_counter = itertools.count()


class DbusDaemon(testing_dbus.DbusDaemon):
    """pyobs.testing's private dbus-daemon; a test that needs one is skipped where it is not installed."""

    def start(self, timeout: float = 10.0) -> str:
        if not testing_dbus.available():
            pytest.skip("dbus-daemon is not installed (Debian package 'dbus')")
        return super().start(timeout)


@pytest.fixture(scope="session")
def dbus_bus() -> Iterator[str]:
    """The address of a private dbus-daemon, killed at the end of the session."""
    with tempfile.TemporaryDirectory(prefix="pyobs-dbus-") as tmp:
        daemon = DbusDaemon(Path(tmp))
        daemon.start()
        try:
            yield daemon.address
        finally:
            daemon.stop()


class DbusBackend:
    kind = "dbus"
    multiprocess = True

    def __init__(self, address: str) -> None:
        self.address = address
        # a fresh prefix per test: modules of different tests never see each other
        self.prefix = f"org.pyobs.test{os.getpid()}_{next(_counter)}"

    def comm(self, name: str, timeout: float = 10.0, **limits: Any) -> Comm:
        return DbusComm(name, bus=self.address, prefix=self.prefix, timeout=timeout, **limits)

    def comm_config(self, name: str) -> dict[str, Any]:
        return {"class": "pyobs.comm.dbus.DbusComm", "name": name, "bus": self.address, "prefix": self.prefix}

    def target(self, name: str) -> tuple[str, str]:
        """Well-known name and object path of module ``name``."""
        return f"{self.prefix}.{escape_name(name)}", "/" + self.prefix.replace(".", "/")

    def message(self, name: str, iface: str, member: str, sig: str = "", body: list[Any] | None = None) -> Message:
        """A method call to module ``name``, as a foreign client sends it."""
        dest, path = self.target(name)
        return Message(destination=dest, path=path, interface=iface, member=member, signature=sig, body=body or [])


@pytest.fixture
async def dbus_backend(dbus_bus: str) -> AsyncIterator[DbusBackend]:
    yield DbusBackend(dbus_bus)


class DbusOutageBackend(DbusBackend):
    """Modules on a dbus-daemon of their own, which the test kills and starts again."""

    def __init__(self, daemon: DbusDaemon) -> None:
        super().__init__(daemon.address)
        self.daemon = daemon
        self.comms: list[Comm] = []

    def comm(self, name: str, timeout: float = 10.0) -> Comm:
        comm = super().comm(name, timeout)
        self.comms.append(comm)
        return comm

    async def cut(self) -> None:
        self.daemon.stop(signal.SIGKILL)

    async def restore(self) -> None:
        self.daemon.start()


@pytest.fixture
async def dbus_outage_backend() -> AsyncIterator[DbusOutageBackend]:
    # a short directory: the socket path must fit a sockaddr_un
    with tempfile.TemporaryDirectory(prefix="pyobs-dbus-") as tmp:
        daemon = DbusDaemon(Path(tmp))
        daemon.start()
        backend = DbusOutageBackend(daemon)
        try:
            yield backend
        finally:
            for comm in backend.comms:
                if comm.opened:
                    await comm.close()
            daemon.stop()
            # dbus-fast drops the future of a write that failed at once on a socket the daemon closed
            # ("Future exception was never retrieved"): collect it here, not in some later test
            gc.collect()
