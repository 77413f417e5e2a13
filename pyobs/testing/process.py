"""Child processes of the test helpers (prosody, ejabberd, epmd, dbus-daemon, pyobs-core peers):
started in a session of their own that gets SIGTERM when we die, stopped with SIGTERM and then
SIGKILL, waited for on their port with a deadline; and :class:`ServerBase`, what the throw-away
XMPP servers share (addresses, accounts, start/stop/restart, context managers, cleanup)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

StrPath = str | os.PathLike[str]


class TestServerError(RuntimeError):
    """The test server could not be set up or started; the message says why."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the process that started us dies (Linux), so a
    killed test run leaves nothing behind."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: stop_process() is the only way
        pass


def start_process(cmd: list[str], **popen: Any) -> subprocess.Popen[Any]:
    """``Popen(cmd)`` in a session of its own (signals to our group do not reach it) that dies
    with us; stdin from /dev/null unless ``popen`` says otherwise."""
    popen.setdefault("stdin", subprocess.DEVNULL)
    preexec = die_with_parent if sys.platform == "linux" else None
    return subprocess.Popen(cmd, start_new_session=True, preexec_fn=preexec, **popen)


def stop_process(proc: subprocess.Popen[Any] | None, timeout: float = 5.0, sig: int = signal.SIGTERM) -> None:
    """Send ``sig`` and wait; SIGKILL if it has not ended after ``timeout`` s."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(timeout)


def wait_for_port(
    host: str, port: int, timeout: float, what: str, exited: Callable[[], bool], ready: Callable[[], object] = bool
) -> None:
    """Until ``host:port`` accepts a connection (and ``ready()`` does not raise OSError or
    TestServerError); TestServerError naming ``what`` if ``exited()`` or after ``timeout`` s."""
    end = time.monotonic() + timeout
    delay = 0.002
    while True:
        if exited():
            raise TestServerError(f"{what} exited at start-up")
        try:
            ready()
            with socket.create_connection((host, port), timeout=1.0):
                return
        except (OSError, TestServerError):
            if time.monotonic() > end:
                text = f"{what} did not accept connections on {host}:{port} within {timeout} s"
                raise TestServerError(text) from None
            time.sleep(delay)  # a growing polling interval, bounded by the deadline above
            delay = min(delay * 2, 0.05)


def server_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The command-line options every test server takes (``--users`` gives a list)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--dir", help="directory for config, data and log (default: a temporary one)")
    parser.add_argument(
        "--users", default="", type=lambda text: [u.strip() for u in text.split(",") if u.strip()],
        help="comma-separated account names",
    )  # fmt: skip
    parser.add_argument("--domain", default="pyobs.test")
    parser.add_argument("--password", default="pyobs")
    parser.add_argument("--port", type=int, default=None, help="c2s port (default: a free one)")
    return parser


def check_user(user: str) -> str:
    if not user or any(c in user for c in "@/:\" \n\t'\\"):
        raise ValueError(f"invalid account name {user!r}")
    return user


class ServerBase:
    """What the throw-away XMPP servers share; a subclass starts and stops its own process."""

    __test__ = False  # not a pytest test class
    kind: str
    port: int
    #: file names in :attr:`directory`
    config_name: str
    log_name: str

    def __init__(
        self, users: Iterable[str], outsiders: Iterable[str], domain: str, password: str, directory: StrPath | None
    ) -> None:
        self.domain = domain
        self.password = password
        self.host = "127.0.0.1"
        #: config, data and logs (a new temporary one, removed by :meth:`cleanup`, if None)
        self.directory = Path(directory or tempfile.mkdtemp(prefix=f"pyobs-{self.kind}-"))
        self._temporary = directory is None
        self._process: subprocess.Popen[bytes] | None = None
        self.users: list[str] = []
        self._new_users(users)
        #: (name, host) of the accounts outside the fleet (``name`` or ``name@host``)
        self.outsiders: list[tuple[str, str]] = []
        for jid in outsiders:
            name, _, host = jid.partition("@")
            self.outsiders.append((check_user(name), host or domain))

    def _new_users(self, users: Iterable[str]) -> list[str]:
        """Add accounts (checked) not known yet; returns them."""
        new = [check_user(u) for u in dict.fromkeys(users) if u not in self.users]
        self.users += new
        return new

    @property
    def address(self) -> str:
        """``host:port`` for the ``server`` option of XmppComm."""
        return f"{self.host}:{self.port}"

    @property
    def pubsub(self) -> str:
        return f"pubsub.{self.domain}"

    def jid(self, user: str, resource: str | None = None) -> str:
        bare = f"{user}@{self.domain}"
        return f"{bare}/{resource}" if resource else bare

    @property
    def config_file(self) -> Path:
        return self.directory / self.config_name

    @property
    def log_file(self) -> Path:
        return self.directory / self.log_name

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start_blocking(self) -> None:
        raise NotImplementedError

    def stop_blocking(self, timeout: float = 10.0) -> None:
        raise NotImplementedError

    def cleanup(self) -> None:
        """Remove a temporary directory (the server must be stopped)."""
        if self._temporary:
            shutil.rmtree(self.directory, ignore_errors=True)

    async def start(self) -> None:
        """:meth:`start_blocking` without blocking the event loop."""
        await asyncio.to_thread(self.start_blocking)

    async def stop(self, timeout: float = 10.0) -> None:
        await asyncio.to_thread(self.stop_blocking, timeout)

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    def __enter__(self) -> Self:
        try:
            self.start_blocking()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop_blocking()
        self.cleanup()

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop_blocking)
        self.cleanup()
