"""Helpers of the XMPP transport tests: a raw slixmpp client that sends and inspects stanzas as
strings, and a small module with a method of each kind."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from abc import abstractmethod
from collections.abc import AsyncIterator, Callable
from typing import Any
from xml.etree.ElementTree import Element, tostring

import pytest
import slixmpp

from pyobs.comm.xmpp import XmppTransport
from pyobs.events import Event
from pyobs.interfaces import IMotion
from pyobs.interfaces.interface import Interface
from pyobs.interfaces.types import MotionState
from pyobs.modules import Module, timeout
from pyobs.testing.xmpp_server import TestServer
from pyobs.utils.enums import MotionStatus
from pyobs.utils.exceptions import MoveError

_ids = itertools.count()


class RawClient(slixmpp.ClientXMPP):  # type: ignore[misc]
    """Logs in as a plain XMPP client and records every stanza it receives (raw elements)."""

    def __init__(self, server: TestServer, user: str, resource: str) -> None:
        # ``user`` may be a whole bare JID (an account of another virtual host)
        super().__init__(f"{user}/{resource}" if "@" in user else server.jid(user, resource), server.password)
        self.test_server = server
        self.enable_direct_tls = False
        self.enable_starttls = False
        self.enable_plaintext = True
        self.plugin["feature_mechanisms"].unencrypted_scram = True
        self.received: list[Element] = []
        self._replies: dict[str, asyncio.Future[Element]] = {}
        self._arrived = asyncio.Event()
        #: the disco#info <query> body to answer with (default: a plain client without pyobs features)
        self.disco_body = '<query xmlns="http://jabber.org/protocol/disco#info"/>'

    def _spawn_event(self, xml: Element) -> None:
        if self._session_started:
            self.received.append(xml)
            self._arrived.set()
            fut = self._replies.get(xml.get("id", ""))
            if xml.tag == "{jabber:client}iq":
                kind = xml.get("type")
                if fut is not None and kind in ("result", "error"):
                    if not fut.done():
                        fut.set_result(xml)
                    return
                if kind == "get" and xml.find("{http://jabber.org/protocol/disco#info}query") is not None:
                    # a plain client: no pyobs features
                    self.send_raw(
                        f'<iq type="result" to="{xml.get("from")}" id="{xml.get("id")}">{self.disco_body}</iq>'
                    )
                    return
                if kind == "set":
                    return  # the tests answer calls themselves
        super()._spawn_event(xml)

    async def login(self) -> RawClient:
        started: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

        def on_start(_: Any) -> None:
            if not started.done():
                started.set_result(True)

        self.add_event_handler("session_start", on_start)
        host, port = self.test_server.address.split(":")
        self.connect(host, int(port))
        await asyncio.wait_for(started, 10)
        self.send_raw("<presence/>")  # be an available resource: receive presence and notifications
        return self

    def send_text(self, text: str) -> None:
        self.send_raw(text)

    async def request(self, template: str, timeout: float = 5.0) -> Element:
        """Send a stanza whose ``{id}`` is filled in; return the IQ answering it."""
        iq_id = f"raw{next(_ids)}"
        fut: asyncio.Future[Element] = asyncio.get_running_loop().create_future()
        self._replies[iq_id] = fut
        self.send_raw(template.replace("{id}", iq_id))
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            self._replies.pop(iq_id, None)

    async def wait_for(self, predicate: Callable[[Element], bool], timeout: float = 5.0) -> Element:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        seen = 0
        while True:
            for el in self.received[seen:]:
                if predicate(el):
                    return el
            seen = len(self.received)
            remaining = end - loop.time()
            if remaining <= 0:
                raise AssertionError("timed out waiting for a stanza")
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                continue

    async def close(self) -> None:
        if self.transport is not None:
            await asyncio.wait_for(self.disconnect(wait=1.0), 3)


def rpc_call(to: str, method: str, params: str) -> str:
    """A raw jabber:iq:rpc call (``{id}`` is filled in by RawClient)."""
    return (
        f'<iq type="set" id="{{id}}" to="{to}"><query xmlns="jabber:iq:rpc"><methodCall>'
        f"<methodName>{method}</methodName><params>{params}</params></methodCall></query></iq>"
    )


COMPACT_NS = "urn:pyobs:comm:call:1"


def compact_call(to: str, method: str, values: str) -> str:
    """A raw call in the compact envelope pyobs-comm modules use among themselves."""
    return f'<iq type="set" id="{{id}}" to="{to}"><call xmlns="{COMPACT_NS}" method="{method}">{values}</call></iq>'


def rpc_param(inner: str) -> str:
    """One positional parameter holding a urn:pyobs:rpc:1 value."""
    return f'<param><value><value xmlns="urn:pyobs:rpc:1">{inner}</value></value></param>'


def text(el: Element) -> str:
    return tostring(el, encoding="unicode")


@contextlib.asynccontextmanager
async def logged_in(server: TestServer, user: str, resource: str) -> AsyncIterator[RawClient]:
    """A RawClient logged in as ``user``/``resource``; closed afterwards."""
    client = await RawClient(server, user, resource).login()
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def raw(xmpp_backend: Any) -> AsyncIterator[RawClient]:
    async with logged_in(xmpp_backend.server, "raw", xmpp_backend.resource) as client:
        yield client


async def answers_add(raw: RawClient, jid: str) -> None:
    """The module at ``jid`` still serves: a raw jabber:iq:rpc call of add(1, 1.0) returns 2.0."""
    reply = await raw.request(
        rpc_call(jid, "add", rpc_param('<int xmlns="">1</int>') + rpc_param('<double xmlns="">1.0</double>'))
    )
    rpc, pyrpc = "{jabber:iq:rpc}", "{urn:pyobs:rpc:1}"
    inner = reply.find(f"{rpc}query/{rpc}methodResponse/{rpc}params/{rpc}param/{rpc}value/{pyrpc}value/double")
    assert inner is not None and inner.text == "2.0"


def transport_of(module: Module) -> XmppTransport:
    """The XMPP transport under a module's comm."""
    transport = module.comm.transport
    assert isinstance(transport, XmppTransport)
    return transport


class IProbe(Interface):
    """An interface only these tests use."""

    @abstractmethod
    async def add(self, a: int, b: float = 1.5, **kwargs: Any) -> float: ...
    @abstractmethod
    async def nothing(self, **kwargs: Any) -> None: ...
    @abstractmethod
    async def slow(self, seconds: float, **kwargs: Any) -> str: ...
    @abstractmethod
    async def fail(self, **kwargs: Any) -> None: ...
    @abstractmethod
    async def text(self, value: str, **kwargs: Any) -> str: ...
    @abstractmethod
    async def whoami(self, **kwargs: Any) -> str: ...


class ProbeEvent(Event):
    """An event only these tests use."""

    message: str
    number: int = 0


class Probe(Module, IProbe, IMotion):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls = 0

    async def open(self) -> None:
        await super().open()
        await self.comm.set_state(IMotion, MotionState(status=MotionStatus.IDLE))

    async def add(self, a: int, b: float = 1.5, **kwargs: Any) -> float:
        self.calls += 1
        return a + b

    async def nothing(self, **kwargs: Any) -> None:
        return None

    @timeout(lambda self, seconds: seconds + 65)
    async def slow(self, seconds: float, **kwargs: Any) -> str:
        await asyncio.sleep(seconds)
        return "done"

    async def fail(self, **kwargs: Any) -> None:
        raise MoveError("cannot move there")

    async def text(self, value: str, **kwargs: Any) -> str:
        return value

    async def whoami(self, **kwargs: Any) -> str:
        return str(kwargs.get("sender", ""))

    async def init(self, **kwargs: Any) -> None:
        return None

    async def park(self, **kwargs: Any) -> None:
        return None

    async def stop_motion(self, device: str | None = None, **kwargs: Any) -> None:
        return None


@pytest.fixture
async def probe(xmpp_backend: Any) -> AsyncIterator[Probe]:
    """An open Probe module named "callee" on the test's server."""
    module = Probe(comm=xmpp_backend.comm("callee"))
    await module.open()
    try:
        yield module
    finally:
        await module.close()
