"""Hostile or broken stanzas get an error answer and a log line; the module keeps working."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from backends.base import eventually
from xmpp_helpers import Probe, ProbeEvent, RawClient, answers_add, compact_call, logged_in, rpc_call, rpc_param

from pyobs.testing.ejabberd_server import MAX_STANZA_SIZE

RPC = "{jabber:iq:rpc}"
PYRPC = "{urn:pyobs:rpc:1}"
STANZAS = "{urn:ietf:params:xml:ns:xmpp-stanzas}"
PUBSUB = "http://jabber.org/protocol/pubsub"


def _fault(reply: Any) -> tuple[str | None, str | None]:
    f = reply.find(f"{RPC}query/{RPC}methodResponse/{RPC}fault/{RPC}value/{PYRPC}fault")
    assert f is not None, "expected a fault"
    return f.findtext("exception"), f.findtext("message")


async def test_unknown_method_is_item_not_found(
    xmpp_backend: Any, raw: RawClient, probe: Probe, caplog: pytest.LogCaptureFixture
) -> None:
    jid = xmpp_backend.server.jid("callee", xmpp_backend.resource)
    with caplog.at_level(logging.WARNING, logger="pyobs.comm.xmpp"):
        reply = await raw.request(rpc_call(jid, "self_destruct", ""))
    assert reply.get("type") == "error"
    error = reply.find("{jabber:client}error")
    assert error is not None and error.get("type") == "cancel" and error.get("code") == "404"
    assert error.find(f"{STANZAS}item-not-found") is not None
    assert reply.find(f"{RPC}query") is not None  # the request payload is echoed
    assert "self_destruct" in caplog.text
    await answers_add(raw, jid)


@pytest.mark.parametrize(
    ("envelope", "params", "expect_type", "expect_text"),
    [
        # garbled: the inner value lacks the urn:pyobs:rpc:1 wrapper
        (
            "rpc",
            "<param><value><int>1</int></value></param>",
            "builtins.ValueError",
            "no <value xmlns='urn:pyobs:rpc:1'>",
        ),
        # an <int> holding no number
        ("rpc", rpc_param('<int xmlns="">one</int>'), "builtins.ValueError", "holds no integer"),
        # too few arguments
        ("rpc", "", "builtins.TypeError", "missing required argument 'a'"),
        # too many arguments
        ("rpc", rpc_param("<int>1</int>") * 3, "builtins.TypeError", "takes 2 arguments but 3 were given"),
        # wrong type
        ("rpc", rpc_param('<string xmlns="">seven</string>'), "builtins.TypeError", "argument 'a'"),
        # a boolean that is none
        ("rpc", rpc_param('<boolean xmlns="">maybe</boolean>'), "builtins.ValueError", "true or false"),
        # the compact envelope of pyobs-comm peers is checked exactly the same way
        ("compact", "<int>one</int>", "builtins.ValueError", "holds no integer"),
        ("compact", "", "builtins.TypeError", "missing required argument 'a'"),
        ("compact", "<int>1</int>" * 3, "builtins.TypeError", "takes 2 arguments but 3 were given"),
        ("compact", "<string>seven</string>", "builtins.TypeError", "argument 'a'"),
        ("compact", "<dict><entry><val><int>1</int></val></entry></dict>", "builtins.ValueError", "without a <key>"),
    ],
)
async def test_bad_calls_get_a_fault_and_a_log_line(
    xmpp_backend: Any,
    raw: RawClient,
    probe: Probe,
    caplog: pytest.LogCaptureFixture,
    envelope: str,
    params: str,
    expect_type: str,
    expect_text: str,
) -> None:
    jid = xmpp_backend.server.jid("callee", xmpp_backend.resource)
    build = rpc_call if envelope == "rpc" else compact_call
    with caplog.at_level(logging.WARNING, logger="pyobs.comm.xmpp"):
        reply = await raw.request(build(jid, "add", params))
    exc_type, message = _fault(reply)
    assert exc_type == expect_type
    assert message is not None and expect_text in message
    assert "add" in caplog.text and expect_text in caplog.text
    assert probe.calls == 0
    await answers_add(raw, jid)


async def test_compact_call_of_unknown_or_no_method(xmpp_backend: Any, raw: RawClient, probe: Probe) -> None:
    jid = xmpp_backend.server.jid("callee", xmpp_backend.resource)
    reply = await raw.request(compact_call(jid, "self_destruct", ""))
    assert reply.get("type") == "error"
    assert reply.find(f"{{jabber:client}}error/{STANZAS}item-not-found") is not None
    reply = await raw.request(
        f'<iq type="set" id="{{id}}" to="{jid}"><call xmlns="urn:pyobs:comm:call:1"><int>1</int></call></iq>'
    )
    assert _fault(reply)[0] == "builtins.ValueError"
    await answers_add(raw, jid)


async def test_call_without_method_name_or_params(xmpp_backend: Any, raw: RawClient, probe: Probe) -> None:
    jid = xmpp_backend.server.jid("callee", xmpp_backend.resource)
    reply = await raw.request(
        f'<iq type="set" id="{{id}}" to="{jid}"><query xmlns="jabber:iq:rpc"><methodCall/></query></iq>'
    )
    assert _fault(reply)[0] == "builtins.ValueError"
    reply = await raw.request(
        f'<iq type="set" id="{{id}}" to="{jid}"><query xmlns="jabber:iq:rpc"><methodCall>'
        "<methodName>nothing</methodName></methodCall></query></iq>"
    )
    exc_type, message = _fault(reply)
    assert exc_type == "builtins.ValueError" and message is not None and "<params>" in message
    await answers_add(raw, jid)


async def test_deeply_nested_value_is_refused(xmpp_backend: Any, raw: RawClient, probe: Probe) -> None:
    """6,000 levels (168 KB): prosody delivers it and the module refuses it; the test ejabberd's
    max_stanza_size (23.01 segfaults on ~3,000 levels) makes ejabberd close the sender's stream
    instead. Either way the server and the module keep working."""
    server = xmpp_backend.server
    jid = server.jid("callee", xmpp_backend.resource)
    nested = "<items><item>" * 3000 + "<int>1</int>" + "</item></items>" * 3000
    if server.kind == "ejabberd":
        assert len(rpc_call(jid, "add", rpc_param(nested))) > MAX_STANZA_SIZE
        with pytest.raises((TimeoutError, AssertionError)):
            await raw.request(rpc_call(jid, "add", rpc_param(nested)), timeout=3)
        assert server.running, "ejabberd died of a deeply nested stanza"
        async with logged_in(server, "raw", xmpp_backend.resource + "b") as fresh:
            await answers_add(fresh, jid)
        return
    reply = await raw.request(rpc_call(jid, "add", rpc_param(nested)), timeout=10)
    exc_type, message = _fault(reply)
    assert exc_type == "builtins.ValueError" and message is not None and "nested too deeply" in message
    await answers_add(raw, jid)


_GARBAGE = [
    "this is not json",
    '{"type": "ProbeEvent", "timestamp": 1, "data": {"message": "no uuid"}}',
    '{"type": "ProbeEvent", "timestamp": 1, "uuid": "u1", "data": {"number": 1}}',
    '{"type": "NoSuchEvent", "timestamp": 1, "uuid": "u2", "data": {}}',
    '["a list"]',
]


def _notification(node: str, payload: str) -> str:
    return (
        f'<event xmlns="http://jabber.org/protocol/pubsub#event"><items node="{node}"><item>'
        f'<event xmlns="pyobs:event">{payload}</event></item></items></event>'
    )


async def test_garbage_events_are_dropped_with_a_log_line(
    xmpp_backend: Any, raw: RawClient, caplog: pytest.LogCaptureFixture
) -> None:
    server = xmpp_backend.server
    got: list[Any] = []

    async def handler(event: Any, sender: str) -> bool:
        got.append((event, sender))
        return True

    receiver = xmpp_backend.comm("receiver")
    sender = xmpp_backend.comm("sender")
    await receiver.open()
    await receiver.register_event(ProbeEvent, handler)
    await sender.open()
    await sender.register_event(ProbeEvent)
    receiver_jid = server.jid("receiver", xmpp_backend.resource)
    try:
        with caplog.at_level(logging.WARNING, logger="pyobs.comm.xmpp"):
            # through pubsub: the raw client (a pubsub admin on the test server) subscribes the
            # receiver to a node of its own and publishes garbage there
            node = "pyobs:event:raw:ProbeEvent:1"
            sub = await raw.request(
                f'<iq type="set" id="{{id}}" to="{server.pubsub}"><pubsub xmlns="{PUBSUB}#owner">'
                f'<subscriptions node="{node}"><subscription jid="{server.jid("receiver")}" '
                'subscription="subscribed"/></subscriptions></pubsub></iq>'
            )
            if sub.get("type") == "error":  # the node does not exist yet: create it, then subscribe
                await raw.request(
                    f'<iq type="set" id="{{id}}" to="{server.pubsub}"><pubsub xmlns="{PUBSUB}">'
                    f'<create node="{node}"/></pubsub></iq>'
                )
                sub = await raw.request(
                    f'<iq type="set" id="{{id}}" to="{server.pubsub}"><pubsub xmlns="{PUBSUB}#owner">'
                    f'<subscriptions node="{node}"><subscription jid="{server.jid("receiver")}" '
                    'subscription="subscribed"/></subscriptions></pubsub></iq>'
                )
            assert sub.get("type") == "result"
            for payload in _GARBAGE:
                reply = await raw.request(
                    f'<iq type="set" id="{{id}}" to="{server.pubsub}"><pubsub xmlns="{PUBSUB}">'
                    f'<publish node="{node}"><item><event xmlns="pyobs:event">{payload}</event></item></publish>'
                    "</pubsub></iq>"
                )
                assert reply.get("type") == "result"
            # one line at once, the rest counted (lines a peer triggers per stanza are rate-limited)
            limited = receiver.transport.link.limited
            await eventually(
                lambda: caplog.text.count("dropped") + limited.suppressed >= len(_GARBAGE), what="log lines (pubsub)"
            )
            assert "undecodable" in caplog.text
            caplog.clear()
            limited.suppressed = 0
            limited._last.clear()

            # as direct messages, the way pyobs-comm peers send events
            for payload in _GARBAGE:
                raw.send_text(f'<message to="{receiver_jid}" type="headline">{_notification(node, payload)}</message>')
            await eventually(
                lambda: caplog.text.count("dropped") + limited.suppressed >= len(_GARBAGE), what="log lines (direct)"
            )
            # and nobody sends events in another module's name
            good = '{"type": "ProbeEvent", "timestamp": 1, "uuid": "u3", "data": {"message": "fake"}}'
            spoof = _notification("pyobs:event:sender:ProbeEvent:1", good)
            raw.send_text(f'<message to="{receiver_jid}" type="headline">{spoof}</message>')
            await eventually(lambda: "sent by" in caplog.text, what="spoofing log line")
        assert got == []
        # the receiver still works
        await sender.send_event(ProbeEvent(message="real"))
        await eventually(lambda: len(got) == 1, what="the real event")
        assert got[0][0].message == "real" and got[0][1] == "sender"
    finally:
        await sender.close()
        await receiver.close()
