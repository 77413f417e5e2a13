"""The throw-away prosody: command line, restart on the same port and directory."""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from pyobs.comm.xmpp import XmppComm
from pyobs.testing.xmpp_server import TestServer


def _read_lines(proc: subprocess.Popen[bytes], until: str, timeout: float) -> dict[str, str]:
    """``key=value`` lines the test server prints, up to the one with ``until`` (unbuffered reads)."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    end = time.monotonic() + timeout
    values: dict[str, str] = {}
    buffer = b""
    try:
        while until not in values:
            remaining = end - time.monotonic()
            if remaining <= 0 or not sel.select(remaining):
                raise AssertionError(f"no '{until}=' line within {timeout} s (got {values})")
            chunk = os.read(fd, 4096)
            if not chunk:
                raise AssertionError(f"the test server exited: {proc.wait()}")
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                key, _, value = line.decode().strip().partition("=")
                values[key] = value
    finally:
        sel.close()
    return values


@contextlib.contextmanager
def _command_line(directory: Path, users: str) -> Iterator[subprocess.Popen[bytes]]:
    """The test server's command line with its output piped; stopped (and its prosody with it) afterwards."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "pyobs.testing.xmpp_server", "--dir", str(directory), "--users", users],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()  # stops its prosody too
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()  # its prosody gets SIGTERM then (it dies with its parent)
                proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


async def test_command_line_runs_until_sigterm(tmp_path: Path) -> None:
    with _command_line(tmp_path, "a,b") as proc:
        values = _read_lines(proc, "dir", 30.0)
        assert values["domain"] == "pyobs.test" and values["dir"] == str(tmp_path)
        host, port = values["server"].split(":")
        comm = XmppComm(jid="a@pyobs.test", password=values["password"], server=values["server"])
        await comm.open()
        await comm.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        # prosody is gone with it
        with socket.socket() as s:
            assert s.connect_ex((host, int(port))) != 0
        assert (tmp_path / "prosody.cfg.lua").exists()  # a given directory is kept


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


async def test_prosody_dies_with_a_killed_command_line(tmp_path: Path) -> None:
    with _command_line(tmp_path, "a") as proc:
        values = _read_lines(proc, "dir", 30.0)
        # prosody may accept connections a moment before its pid file is written
        deadline = time.monotonic() + 10.0
        pidfile = tmp_path / "prosody.pid"
        while not (pidfile.exists() and pidfile.read_text().strip()):
            assert time.monotonic() < deadline, "prosody wrote no pid file"
            time.sleep(0.01)
        pid = int((tmp_path / "prosody.pid").read_text().strip())
        proc.kill()  # no chance to clean up
        proc.wait(timeout=10)
        end = time.monotonic() + 10.0
        while _alive(pid):
            assert time.monotonic() < end, "prosody outlived its killed parent"
            time.sleep(0.01)
        host, port = values["server"].split(":")
        with socket.socket() as s:
            assert s.connect_ex((host, int(port))) != 0


async def test_restart_keeps_port_and_accounts() -> None:
    async with TestServer(["a"]) as server:
        port = server.port
        await server.restart()
        assert server.port == port and server.running
        comm = XmppComm(jid=server.jid("a"), password=server.password, server=server.address)
        await comm.open()
        await comm.close()
    assert not server.directory.exists()  # a temporary directory is removed
