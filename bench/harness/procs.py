"""Driver side: worker processes that are always cleaned up, and line-based messages from them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TextIO

from .common import now_ns, parse_line

WORKER = Path(__file__).resolve().parent / "worker.py"


class WorkerError(RuntimeError):
    pass


class Worker:
    """One worker process. ``expect(kind)`` returns its next message of that kind."""

    def __init__(self, label: str, argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> None:
        self.label = label
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.log_path = log
        self.proc: asyncio.subprocess.Process | None = None
        self.t_spawn = 0
        self._messages: list[dict[str, Any]] = []
        self._changed = asyncio.Condition()
        self._eof = False
        self._log: TextIO | None = None
        self._reader: asyncio.Task[None] | None = None
        #: called with each ``mark`` message, before the worker gets its ``ack``
        self.on_mark: Callable[[dict[str, Any]], None] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    async def start(self) -> Worker:
        self._log = open(self.log_path, "a", encoding="utf-8")
        self._log.write(f"$ {' '.join(self.argv)}\n")
        self._log.flush()
        self.t_spawn = now_ns()
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=self._log,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,  # its own process group: stop() takes its children too
            limit=1 << 24,  # long result lines (the fleet's receipts) must not end the reader
        )
        self._reader = asyncio.ensure_future(self._read())
        return self

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None and self._log is not None
        while True:
            raw = await self.proc.stdout.readline()
            if not raw:
                break
            line = raw.decode(errors="replace").rstrip("\n")
            msg = parse_line(line)
            if msg is None:
                self._log.write(line + "\n")
                continue
            self._log.write(line[:500] + "\n")
            if msg["kind"] == "mark":
                if self.on_mark is not None:
                    self.on_mark(msg)
                self.send("ack")
                continue
            async with self._changed:
                self._messages.append(msg)
                self._changed.notify_all()
        async with self._changed:
            self._eof = True
            self._changed.notify_all()

    async def expect(self, kind: str, timeout: float) -> dict[str, Any]:
        """The next unconsumed message of ``kind``; WorkerError if the worker fails, exits or is late."""
        try:
            async with asyncio.timeout(timeout), self._changed:
                while True:
                    for i, msg in enumerate(self._messages):
                        if msg["kind"] == kind:
                            return self._messages.pop(i)
                        if msg["kind"] == "error":
                            raise WorkerError(f"{self.label}: {msg.get('message')} (log: {self.log_path})")
                    if self._eof:
                        raise WorkerError(f"{self.label} exited before '{kind}' (log: {self.log_path})")
                    await self._changed.wait()
        except TimeoutError:
            raise WorkerError(f"{self.label}: no '{kind}' within {timeout} s (log: {self.log_path})") from None

    def send(self, cmd: str, **data: Any) -> None:
        if self.proc is None or self.proc.stdin is None or self.proc.stdin.is_closing():
            return
        with contextlib.suppress(OSError, RuntimeError):
            self.proc.stdin.write((json.dumps({"cmd": cmd, **data}) + "\n").encode())

    async def wait_exit(self, timeout: float) -> int | None:
        if self.proc is None:
            return None
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            return None

    async def stop(self, grace: float = 5.0) -> None:
        """Ask to quit, then SIGTERM, then SIGKILL the whole process group. Never raises."""
        proc = self.proc
        if proc is None:
            return
        try:
            if proc.returncode is None:
                self.send("quit")
                if await self.wait_exit(grace) is None:
                    self._signal(signal.SIGTERM)
                    if await self.wait_exit(2.0) is None:
                        self._signal(signal.SIGKILL)
                        await self.wait_exit(2.0)
        finally:
            if self._reader is not None:
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(self._reader, 2.0)
            if proc.stdin is not None:
                with contextlib.suppress(Exception):
                    proc.stdin.close()
            if self._log is not None:
                self._log.close()
                self._log = None

    def _signal(self, sig: int) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)


class Workers:
    """Every worker started through it is stopped when the ``async with`` ends, whatever happens."""

    def __init__(self) -> None:
        self.all: list[Worker] = []

    async def start(self, worker: Worker) -> Worker:
        self.all.append(worker)
        return await worker.start()

    async def stop_all(self) -> None:
        workers, self.all = self.all, []
        await asyncio.gather(*(w.stop() for w in workers), return_exceptions=True)


@contextlib.asynccontextmanager
async def workers() -> AsyncIterator[Workers]:
    ws = Workers()
    try:
        yield ws
    finally:
        await asyncio.shield(ws.stop_all())


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of a process so far (Linux /proc), None if unknown."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def watch_cpu(marker: Worker, others: dict[str, int | None], into: dict[str, float]) -> None:
    """When ``marker`` marks the end of its sequential calls, store the CPU the ``others`` (name →
    pid) spent per call between its two marks into ``into``."""
    start: dict[str, float | None] = {}

    def on_mark(msg: dict[str, Any]) -> None:
        if msg.get("name") != "calls":
            return
        now = {name: cpu_seconds(pid) for name, pid in others.items()}
        if msg.get("edge") == 0:
            start.update(now)
            return
        n = max(int(msg.get("n", 0)), 1)
        for name, value in now.items():
            before = start.get(name)
            if value is not None and before is not None:
                into[name] = (value - before) / n

    marker.on_mark = on_mark
