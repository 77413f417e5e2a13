"""The private slixmpp names pyobs/comm/xmpp/client.py (the one adapter to slixmpp's internals)
relies on. When slixmpp changes them, this fails — before the stanza bounds silently stop applying."""

from __future__ import annotations

import inspect
from xml.etree.ElementTree import fromstring

import slixmpp
from slixmpp.xmlstream.xmlstream import XMLStream

from pyobs.comm.xmpp.client import SLIXMPP_PRIVATE, Client


def test_every_stanza_of_the_stream_passes_spawn_event() -> None:
    # data_received hands each complete top-level element to _spawn_event: the one place to check them
    source = inspect.getsource(XMLStream.data_received)
    assert "self._spawn_event(xml)" in source
    assert list(inspect.signature(XMLStream._spawn_event).parameters) == ["self", "xml"]


async def test_the_private_names_exist() -> None:
    client = slixmpp.ClientXMPP("a@b.c/d", "x")
    for name in SLIXMPP_PRIVATE:
        assert hasattr(client, name) or hasattr(XMLStream, name), name


async def test_an_oversized_stanza_reaches_neither_the_transport_nor_slixmpp() -> None:
    seen: list[str] = []
    refused: list[str] = []
    client = Client(
        "a@b.c/d", "x",
        on_iq=lambda xml: seen.append("iq") or True,
        on_message=lambda xml: seen.append("message") or True,
        on_presence=lambda xml: seen.append("presence") or True,
        on_oversized=lambda xml, problem: refused.append(problem),
    )  # fmt: skip
    client._session_started = True
    deep = "<a>" * 100 + "</a>" * 100
    client._spawn_event(fromstring(f'<message xmlns="jabber:client"><x>{deep}</x></message>'))
    assert refused == ["nested too deeply (more than 64 levels)"] and seen == []
    client._spawn_event(fromstring('<message xmlns="jabber:client"><body>hi</body></message>'))
    assert seen == ["message"]
