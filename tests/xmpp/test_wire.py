"""What a module looks like on the wire, checked with a raw XMPP client against the spec."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from xmpp_helpers import (
    COMPACT_NS,
    IProbe,
    Probe,
    ProbeEvent,
    RawClient,
    compact_call,
    rpc_call,
    rpc_param,
    transport_of,
)

from pyobs.interfaces.interface import methods_of
from pyobs.testing.xmpp_server import TestServer

DISCO = "{http://jabber.org/protocol/disco#info}"
RPC = "{jabber:iq:rpc}"
PYRPC = "{urn:pyobs:rpc:1}"
PUBSUB = "http://jabber.org/protocol/pubsub"


async def _probe(backend: Any, raw: RawClient) -> tuple[Probe, str]:
    probe = Probe(comm=backend.comm("callee"))
    await probe.open()
    await probe.comm.register_event(ProbeEvent)
    return probe, backend.server.jid("callee", backend.resource)


async def test_presence_comes_after_a_complete_disco_info(xmpp_backend: Any, raw: RawClient) -> None:
    probe = Probe(comm=xmpp_backend.comm("callee"))
    jid = xmpp_backend.server.jid("callee", xmpp_backend.resource)
    try:
        await probe.open()
        presence = await raw.wait_for(lambda el: el.tag.endswith("presence") and el.get("from") == jid)
        assert presence.get("type") is None
        reply = await raw.request(f'<iq type="get" id="{{id}}" to="{jid}"><query xmlns="{DISCO[1:-1]}"/></iq>')
        assert reply.get("type") == "result" and reply.get("from") == jid
        query = reply.find(f"{DISCO}query")
        assert query is not None
        features = {f.get("var") for f in query.findall(f"{DISCO}feature")}
        for iface in ("IModule", "IConfig", "IProbe", "IMotion", "IReady"):
            assert f"urn:pyobs:interface:{iface}:1" in features
        assert "urn:pyobs:state:IMotion:1" in features and "urn:pyobs:state:IReady:1" in features
        assert "urn:pyobs:state:IProbe:1" not in features
        assert "jabber:iq:rpc" in features
        identity = query.find(f"{DISCO}identity")
        assert identity is not None and identity.get("category") == "automation" and identity.get("type") == "rpc"
        caps = query.find("{urn:pyobs:capabilities:IModule:1}capabilities")
        assert caps is not None
        label = caps.find("label/string")
        assert label is not None and label.text == "callee"
        assert caps.find("version/string") is not None
        assert "urn:pyobs:capabilities:IModule:1" in features
    finally:
        await probe.close()
    # closing sends unavailable presence
    await raw.wait_for(lambda el: el.tag.endswith("presence") and el.get("type") == "unavailable")


async def test_event_roles_in_disco_info(xmpp_backend: Any, raw: RawClient) -> None:
    probe, jid = await _probe(xmpp_backend, raw)
    try:

        async def handler(event: Any, sender: str) -> bool:
            return True

        from pyobs.events import BadWeatherEvent

        await probe.comm.register_event(BadWeatherEvent, handler)
        reply = await raw.request(f'<iq type="get" id="{{id}}" to="{jid}"><query xmlns="{DISCO[1:-1]}"/></iq>')
        query = reply.find(f"{DISCO}query")
        assert query is not None
        ev = query.find("{urn:pyobs:event:ProbeEvent:1}event")
        assert ev is not None and ev.get("name") == "ProbeEvent" and ev.get("role") == "send"
        bad = query.find("{urn:pyobs:event:BadWeatherEvent:1}event")
        # handling an event does not advertise sending it (pyobs-core's semantics)
        assert bad is not None and bad.get("role") == "subscribe"
        features = {f.get("var") for f in query.findall(f"{DISCO}feature")}
        assert {"urn:pyobs:event:ProbeEvent:1", "urn:pyobs:event:BadWeatherEvent:1"} <= features
    finally:
        await probe.close()


async def test_call_and_answer_stanzas(xmpp_backend: Any, raw: RawClient) -> None:
    probe, jid = await _probe(xmpp_backend, raw)
    try:
        params = rpc_param('<int xmlns="">2</int>') + rpc_param('<double xmlns="">0.25</double>')
        reply = await raw.request(rpc_call(jid, "add", params))
        assert reply.get("type") == "result"
        inner = reply.find(f"{RPC}query/{RPC}methodResponse/{RPC}params/{RPC}param/{RPC}value/{PYRPC}value")
        assert inner is not None
        (value,) = list(inner)
        assert value.tag == "double" and value.text == "2.25"  # no namespace, Python float syntax

        void = await raw.request(rpc_call(jid, "nothing", ""))
        empty = void.find(f"{RPC}query/{RPC}methodResponse/{RPC}params")
        assert empty is not None and len(empty) == 0

        fault = await raw.request(rpc_call(jid, "fail", ""))
        f = fault.find(f"{RPC}query/{RPC}methodResponse/{RPC}fault/{RPC}value/{PYRPC}fault")
        assert f is not None
        assert f.findtext("exception") == "pyobs.utils.exceptions.MoveError"
        assert f.findtext("message") == "cannot move there"
        assert [b.text for b in f.findall("bases/base")] == ["pyobs.utils.exceptions.MotionError"]
    finally:
        await probe.close()


async def test_compact_calls_between_pyobs_comm_modules(xmpp_backend: Any, raw: RawClient) -> None:
    """Peers that advertise the compact envelope are called with it; its answers carry the same values."""
    probe, jid = await _probe(xmpp_backend, raw)
    C = f"{{{COMPACT_NS}}}"
    try:
        reply = await raw.request(f'<iq type="get" id="{{id}}" to="{jid}"><query xmlns="{DISCO[1:-1]}"/></iq>')
        assert COMPACT_NS in {f.get("var") for f in reply.iter(f"{DISCO}feature")}

        answer = await raw.request(compact_call(jid, "add", "<int>2</int><double>0.25</double>"))
        value = answer.find(f"{C}result/{C}double")
        assert answer.get("type") == "result" and value is not None and value.text == "2.25"
        void = await raw.request(compact_call(jid, "nothing", ""))
        assert void.find(f"{C}result/{C}nil") is not None
        # faults stay in the jabber:iq:rpc form
        fault = await raw.request(compact_call(jid, "fail", ""))
        f = fault.find(f"{RPC}query/{RPC}methodResponse/{RPC}fault/{RPC}value/{PYRPC}fault")
        assert f is not None and f.findtext("exception") == "pyobs.utils.exceptions.MoveError"

        # our caller picks the envelope by what the peer advertises
        caller = xmpp_backend.comm("caller", timeout=5.0)
        await caller.open()
        sent: list[str] = []
        transport = caller.transport
        write = transport.link.write

        def spy(data: str) -> None:
            sent.append(data)
            write(data)

        transport.link.write = spy  # type: ignore[method-assign]
        try:
            remote = await caller.proxy("callee", IProbe)
            assert await remote.add(3, 0.5) == 3.5
            assert await remote.nothing() is None
            # (making the proxy subscribes to the callee's states: pubsub, not calls)
            calls = [s for s in sent if 'type="set"' in s and "protocol/pubsub" not in s]
            assert len(calls) == 2 and all(f'<call xmlns="{COMPACT_NS}"' in c for c in calls)
            assert not any("jabber:iq:rpc" in c for c in calls)
            with pytest.raises(Exception, match="cannot move there"):
                await remote.fail()
        finally:
            del transport.link.write
            await caller.close()
    finally:
        await probe.close()


async def test_long_call_announces_method_timeout_first(xmpp_backend: Any, raw: RawClient) -> None:
    probe, jid = await _probe(xmpp_backend, raw)
    try:
        raw.send_text(rpc_call(jid, "slow", rpc_param('<double xmlns="">0.2</double>')).replace("{id}", "slow1"))
        first = await raw.wait_for(lambda el: el.get("id") == "slow1")
        t = first.find(f"{RPC}query/{RPC}methodTimeout/{RPC}timeout")
        assert t is not None and t.text == "66"  # 0.2 + 65 s, rounded up: never less than promised
        final = await raw.wait_for(lambda el: el.get("id") == "slow1" and el is not first)
        inner = final.find(f"{RPC}query/{RPC}methodResponse/{RPC}params/{RPC}param/{RPC}value/{PYRPC}value/string")
        assert inner is not None and inner.text == "done"
    finally:
        await probe.close()


async def test_we_call_with_all_parameters_positionally(xmpp_backend: Any, raw: RawClient) -> None:
    """Our caller sends every parameter (defaults included) and doubles for floats."""
    jid = xmpp_backend.server.jid("raw", xmpp_backend.resource)
    caller = xmpp_backend.comm("caller", timeout=5.0)
    await caller.open()
    try:
        spec = methods_of([IProbe])["add"]
        task = asyncio.ensure_future(caller.transport.call("raw", spec, [3, 2.0], lambda s: None))
        call = await raw.wait_for(lambda el: el.tag.endswith("iq") and el.get("type") == "set")
        assert call.get("to") == jid
        name = call.find(f"{RPC}query/{RPC}methodCall/{RPC}methodName")
        assert name is not None and name.text == "add"
        values = call.findall(f"{RPC}query/{RPC}methodCall/{RPC}params/{RPC}param/{RPC}value/{PYRPC}value")
        assert [(v[0].tag, v[0].text) for v in values] == [("int", "3"), ("double", "2.0")]
        answer = rpc_param('<double xmlns="">5.0</double>')
        raw.send_text(
            f'<iq type="result" to="{call.get("from")}" id="{call.get("id")}"><query xmlns="jabber:iq:rpc">'
            f"<methodResponse><params>{answer}</params></methodResponse></query></iq>"
        )
        assert await asyncio.wait_for(task, 5) == 5.0
    finally:
        await caller.close()


async def test_event_payload_on_the_event_node(xmpp_backend: Any, raw: RawClient) -> None:
    probe, _ = await _probe(xmpp_backend, raw)
    server: TestServer = xmpp_backend.server
    node = "pyobs:event:callee:ProbeEvent:1"
    try:
        sub = await raw.request(
            f'<iq type="set" id="{{id}}" to="{server.pubsub}"><pubsub xmlns="{PUBSUB}">'
            f'<subscribe node="{node}" jid="{server.jid("raw")}"/></pubsub></iq>'
        )
        assert sub.get("type") == "result"
        event = ProbeEvent(message='a<b & "c">d', number=7)
        await probe.comm.send_event(event)
        msg = await raw.wait_for(lambda el: el.tag.endswith("message") and el.get("from") == server.pubsub)
        items = msg.find(
            "{http://jabber.org/protocol/pubsub#event}event/{http://jabber.org/protocol/pubsub#event}items"
        )
        assert items is not None and items.get("node") == node
        payload = items.find("{http://jabber.org/protocol/pubsub#event}item/{pyobs:event}event")
        assert payload is not None and payload.text is not None
        assert "&" not in payload.text and "<" not in payload.text and ">" not in payload.text
        assert "\\u0026" in payload.text and "\\u003c" in payload.text
        data = json.loads(payload.text)
        assert data["type"] == "ProbeEvent" and data["uuid"] == event.uuid
        assert data["data"] == {"message": 'a<b & "c">d', "number": 7}
        assert abs(data["timestamp"] - event.timestamp) < 1e-6
    finally:
        await probe.close()


async def test_state_node_holds_the_current_state(xmpp_backend: Any, raw: RawClient) -> None:
    probe, _ = await _probe(xmpp_backend, raw)
    server: TestServer = xmpp_backend.server
    try:
        reply = await raw.request(
            f'<iq type="get" id="{{id}}" to="{server.pubsub}"><pubsub xmlns="{PUBSUB}">'
            f'<items node="pyobs:state:callee:IMotion:1" max_items="1"/></pubsub></iq>'
        )
        state = reply.find(f"{{{PUBSUB}}}pubsub/{{{PUBSUB}}}items/{{{PUBSUB}}}item/{{urn:pyobs:state:IMotion:1}}state")
        assert state is not None
        assert state.findtext("status/string") == "idle"
        assert state.find("devices/items") is not None
        assert state.findtext("time/string") is not None
    finally:
        await probe.close()


async def test_event_nodes_keep_no_items_state_nodes_do(xmpp_backend: Any, raw: RawClient) -> None:
    probe, _ = await _probe(xmpp_backend, raw)
    server: TestServer = xmpp_backend.server
    owner = "http://jabber.org/protocol/pubsub#owner"
    # the node's configuration is for its owner (on prosody every account is admin, on ejabberd
    # only the owner reads it): ask as the module's own account, from another resource
    as_owner = await RawClient(server, "callee", f"{xmpp_backend.resource}cfg").login()
    try:
        reply = await as_owner.request(
            f'<iq type="get" id="{{id}}" to="{server.pubsub}"><pubsub xmlns="{owner}">'
            f'<configure node="pyobs:event:callee:ProbeEvent:1"/></pubsub></iq>'
        )
        await as_owner.close()
        assert reply.get("type") == "result"
        fields = {f.get("var"): f.findtext("{jabber:x:data}value") for f in reply.iter("{jabber:x:data}field")}
        assert fields["pubsub#persist_items"] in ("0", "false")
        assert fields["pubsub#access_model"] == "open"
        await raw.request(
            f'<iq type="set" id="{{id}}" to="{server.pubsub}"><pubsub xmlns="{PUBSUB}">'
            f'<subscribe node="pyobs:event:callee:ProbeEvent:1" jid="{server.jid("raw")}"/></pubsub></iq>'
        )
        await probe.comm.send_event(ProbeEvent(message="gone", number=1))
        # the notification has been delivered, so the publish is done
        await raw.wait_for(lambda el: el.tag.endswith("message") and el.get("from") == server.pubsub)
        items = await raw.request(
            f'<iq type="get" id="{{id}}" to="{server.pubsub}"><pubsub xmlns="{PUBSUB}">'
            f'<items node="pyobs:event:callee:ProbeEvent:1" max_items="1"/></pubsub></iq>'
        )
        assert items.find(f"{{{PUBSUB}}}pubsub/{{{PUBSUB}}}items/{{{PUBSUB}}}item") is None
    finally:
        await probe.close()


async def test_events_between_our_modules_skip_pubsub(xmpp_backend: Any, raw: RawClient) -> None:
    """pyobs-comm peers ask each other for events as messages; their pubsub nodes still work."""
    from backends.base import eventually

    server: TestServer = xmpp_backend.server
    got: list[Any] = []

    async def handler(event: Any, sender: str) -> bool:
        got.append((event, sender))
        return True

    receiver = xmpp_backend.comm("receiver")
    await receiver.register_event(ProbeEvent, handler)
    await receiver.open()
    probe, jid = await _probe(xmpp_backend, raw)
    try:
        reply = await raw.request(f'<iq type="get" id="{{id}}" to="{jid}"><query xmlns="{DISCO[1:-1]}"/></iq>')
        features = {f.get("var") for f in reply.iter(f"{DISCO}feature")}
        assert "urn:pyobs:comm:direct-events:1" in features
        targets = transport_of(probe).publisher.targets()  # the targets are rebuilt lazily
        assert targets.get("ProbeEvent") == [f'<message to="{server.jid("receiver", xmpp_backend.resource)}']
        # the receiver did not subscribe to the node (no pubsub copy to de-duplicate)
        subs = await raw.request(
            f'<iq type="get" id="{{id}}" to="{server.pubsub}"><pubsub xmlns="{PUBSUB}#owner">'
            f'<subscriptions node="pyobs:event:callee:ProbeEvent:1"/></pubsub></iq>'
        )
        assert server.jid("receiver") not in {s.get("jid") for s in subs.iter(f"{{{PUBSUB}#owner}}subscription")}
        await probe.comm.send_event(ProbeEvent(message="direct", number=1))
        await eventually(lambda: len(got) == 1, what="the direct event")
        assert got[0][1] == "callee" and got[0][0].message == "direct"
        # a receiver that leaves is no target any more
        await receiver.close()
        await eventually(lambda: "ProbeEvent" not in transport_of(probe).publisher.targets(), what="target removed")
    finally:
        await probe.close()
        await receiver.close()


async def test_module_state_in_presence(xmpp_backend: Any, raw: RawClient) -> None:
    """Spec §3.2: Module.set_error()/reset_error() reach the presence through the core."""
    probe, jid = await _probe(xmpp_backend, raw)

    def presence_with(show: str | None) -> Any:
        return lambda el: (
            el.tag.endswith("presence") and el.get("from") == jid and el.findtext("{jabber:client}show") == show
        )

    try:
        probe.set_error("Camera <not> connected")
        p = await raw.wait_for(presence_with("dnd"))
        assert p.findtext("{jabber:client}status") == "Camera <not> connected"
        await transport_of(probe).set_module_state("local")
        p = await raw.wait_for(presence_with("away"))
        assert p.find("{jabber:client}status") is None
        start = len(raw.received)
        await probe.reset_error()
        p = await raw.wait_for(lambda el: presence_with(None)(el) and raw.received.index(el) >= start)
        assert p.get("type") is None and p.find("{jabber:client}status") is None
    finally:
        await probe.close()
