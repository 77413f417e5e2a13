"""A TCP relay on loopback that cuts connections at chosen moments (for reconnection tests).

Each new connection gets the next entry of ``plan``: ``b""`` cuts it as soon as it is accepted,
other bytes cut it when the client sends them (e.g. ``b"<auth"`` during login), ``None`` relays it
untouched. :meth:`cut_all` cuts every live connection at once.
"""

from __future__ import annotations

import asyncio
import contextlib


class CuttingRelay:
    def __init__(self, target_host: str, target_port: int, plan: list[bytes | None]) -> None:
        self.target = (target_host, target_port)
        self.plan = list(plan)
        self.connections = 0
        #: (connection number, marker) of every cut made by the plan
        self.cuts: list[tuple[int, bytes]] = []
        self._live: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> CuttingRelay:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def cut_all(self) -> None:
        for writer in list(self._live):
            writer.transport.abort()
        self._live.clear()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.cut_all()
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        number = self.connections
        self.connections += 1
        marker = self.plan[number] if number < len(self.plan) else None
        if marker == b"":
            self.cuts.append((number, marker))
            client_w.transport.abort()
            return
        try:
            server_r, server_w = await asyncio.wait_for(asyncio.open_connection(*self.target), 5)
        except (OSError, TimeoutError):
            client_w.transport.abort()
            return
        pair = (client_w, server_w)
        self._live.update(pair)

        def cut() -> None:
            for w in pair:
                w.transport.abort()
                self._live.discard(w)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, watch: bytes | None) -> None:
            tail = b""
            try:
                while True:
                    data = await src.read(65536)
                    if not data:
                        break
                    if watch:
                        seen = tail + data
                        if watch in seen:
                            self.cuts.append((number, watch))
                            break
                        tail = seen[-len(watch) :]
                    dst.write(data)
                    await dst.drain()
            except (OSError, ConnectionError):
                pass
            finally:
                cut()

        for coro in (pump(client_r, server_w, marker), pump(server_r, client_w, None)):
            task = asyncio.ensure_future(coro)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
