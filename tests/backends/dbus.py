"""D-Bus test backend: a private dbus-daemon per test session, a fresh name prefix per test."""

from __future__ import annotations

import gc
import itertools
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from dbus_fast import Message

from pyobs.comm import Comm
from pyobs.comm.dbus import DbusComm
from pyobs.comm.dbus.codec import escape_name
from pyobs.testing.process import start_process, stop_process

_counter = itertools.count()

#: a session-like bus without the host's activatable services (nothing gets auto-started)
_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>{address}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
  <limit name="max_incoming_bytes">1000000000</limit>
  <limit name="max_outgoing_bytes">1000000000</limit>
  <limit name="max_message_size">1000000000</limit>
  <limit name="max_replies_per_connection">50000</limit>
  <limit name="max_match_rules_per_connection">50000</limit>
</busconfig>
"""


class DbusDaemon:
    """A private ``dbus-daemon`` listening on a unix socket in ``directory`` (never the host's bus).

    A restarted daemon listens on the same address, as a system's bus does after a restart.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.socket = directory / "bus"
        self.address = f"unix:path={self.socket}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> str:
        if shutil.which("dbus-daemon") is None:
            pytest.skip("dbus-daemon is not installed (Debian package 'dbus')")
        if self.socket.exists():  # left behind by a daemon that was killed
            self.socket.unlink()
        config = self.directory / "bus.conf"
        config.write_text(_CONFIG.format(address=self.address))
        self.proc = start_process(
            ["dbus-daemon", f"--config-file={config}", "--nofork", "--nopidfile", "--nosyslog", "--print-address=1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={k: v for k, v in os.environ.items() if not k.startswith("DBUS_")},
        )
        assert self.proc.stdout is not None
        # the daemon prints its address once it listens
        import selectors

        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            self.stop()
            raise RuntimeError(f"dbus-daemon did not start within {timeout} s")
        line = self.proc.stdout.readline().decode().strip()
        sel.close()
        if not line:
            err = self.proc.stderr.read().decode() if self.proc.stderr else ""
            self.stop()
            raise RuntimeError(f"dbus-daemon failed to start: {err}")
        return line

    def stop(self, sig: int = signal.SIGTERM) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        stop_process(proc, 5.0, sig)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


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
