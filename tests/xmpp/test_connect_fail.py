"""A refused connection fails at once; a server that accepts and never answers gets connect_timeout."""

from __future__ import annotations

import asyncio
import time

import pytest

from pyobs.comm.xmpp import XmppComm, XmppConnectionError
from pyobs.testing.xmpp_server import free_port


async def test_a_refused_connection_fails_at_once() -> None:
    comm = XmppComm(jid="nobody@pyobs.test", password="x", server=f"127.0.0.1:{free_port()}", connect_timeout=10.0)
    start = time.monotonic()
    with pytest.raises(XmppConnectionError, match=r"cannot connect to the XMPP server 127\.0\.0\.1"):
        await comm.open()
    assert time.monotonic() - start < 3.0  # not the whole connect_timeout


async def test_a_silent_server_gets_connect_timeout() -> None:
    silent: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        silent.append(writer)  # accepts, reads nothing, says nothing

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        comm = XmppComm(jid="nobody@pyobs.test", password="x", server=f"127.0.0.1:{port}", connect_timeout=1.0)
        start = time.monotonic()
        with pytest.raises(XmppConnectionError, match="no session within"):
            await comm.open()
        elapsed = time.monotonic() - start
        assert 0.9 <= elapsed < 5.0
    finally:
        for w in silent:
            w.close()
        server.close()
        await server.wait_closed()
