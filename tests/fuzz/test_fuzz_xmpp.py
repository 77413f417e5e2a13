"""Attacks on a module over XMPP: garbled, deep, huge, flooding and spoofing input from an account
outside the fleet (``mallory``) and from a fleet member (``raw``), written from the wire spec.

After each attack the module (in its own process) answers a normal call within its deadline, its
memory stays within MEMORY_BOUND_MB of its start, and the attacker got the documented answer.
"""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any

from backends.base import eventually
from fuzz_support import LIMITS, Health, log_lines, rss_mb, start_target, stop_target
from garble import call_payload
from xmpp_helpers import RawClient, rpc_call, rpc_param

from pyobs.testing.ejabberd_server import MAX_STANZA_SIZE, EjabberdTestServer

RPC = "{jabber:iq:rpc}"
PYRPC = "{urn:pyobs:rpc:1}"
STANZAS = "{urn:ietf:params:xml:ns:xmpp-stanzas}"
NAME = "worker"
COUNTS: dict[str, int] = {}


def _deep(levels: int) -> str:
    return "<items><item>" * levels + "<int>1</int>" + "</item></items>" * levels


def _fault(reply: Any) -> tuple[str | None, str]:
    f = reply.find(f"{RPC}query/{RPC}methodResponse/{RPC}fault/{RPC}value/{PYRPC}fault")
    if f is None:
        return None, ""
    return f.findtext("exception"), f.findtext("message") or ""


def _condition(reply: Any) -> str | None:
    err = reply.find("{jabber:client}error")
    if err is None:
        return None
    for child in err:
        if child.tag.startswith(STANZAS) and not child.tag.endswith("text"):
            return child.tag[len(STANZAS) :]
    return "undefined-condition"


def _count(kind: str, n: int = 1) -> None:
    COUNTS[kind] = COUNTS.get(kind, 0) + n


async def test_attacks_over_xmpp(xmpp_backend: Any, tmp_path: Path) -> None:
    server = xmpp_backend.server
    # ejabberd's max_stanza_size (docs/xmpp.md) ends the stream of whoever sends a larger stanza: the
    # server's answer, not the module's, so garbled calls there stay under it (the module's own bounds
    # are attacked with the deep and huge stanzas on prosody, and the size limit in test_stanza_size)
    limit = MAX_STANZA_SIZE if isinstance(server, EjabberdTestServer) else None

    def garbled_call() -> str:
        for _ in range(100):
            payload = call_payload(rng)
            if limit is None or len(payload) < limit - 500:
                return payload
        raise AssertionError("no garbled call under the server's stanza limit")

    resource = xmpp_backend.resource
    jid = server.jid(NAME, resource)
    proc = start_target(xmpp_backend.comm_config(NAME), tmp_path, NAME)
    caller = xmpp_backend.comm("caller", timeout=5.0)
    await caller.open()
    mallory = await RawClient(server, "mallory", resource).login()
    raw = await RawClient(server, "raw", resource).login()
    health = Health(proc, caller, NAME)
    rng = random.Random(13)
    try:
        loop = asyncio.get_running_loop()
        await health.wait_online()

        # ------------------------------------------------------------------ garbled
        for _ in range(300):
            reply = await raw.request(f'<iq type="set" id="{{id}}" to="{jid}">{garbled_call()}</iq>', timeout=10)
            exc, _ = _fault(reply)
            answered = reply.get("type") == "error" or exc is not None or reply.find(f"{RPC}query") is not None
            answered = answered or reply.find("{urn:pyobs:comm:call:1}result") is not None
            assert answered, reply
            _count("garbled calls (fleet member): answered")
        for _ in range(100):
            reply = await mallory.request(f'<iq type="set" id="{{id}}" to="{jid}">{garbled_call()}</iq>')
            assert _condition(reply) == "forbidden"
            _count("garbled calls (outsider): forbidden")
        await health.check("garbled")

        # ------------------------------------------------------------------ deep
        # (prosody 0.12 itself overflows its stack near 40,000; under ejabberd's 16 KB stanza limit: 300)
        for levels in (65, 1000, 10000) if limit is None else (65, 300):
            for attacker in (raw, mallory):
                reply = await attacker.request(rpc_call(jid, "add", rpc_param(_deep(levels))), timeout=20)
                exc, message = _fault(reply)
                assert exc == "builtins.ValueError" and "nested too deeply" in message, reply
                reply = await attacker.request(
                    f'<iq type="get" id="{{id}}" to="{jid}"><q xmlns="urn:x">{_deep(levels)}</q></iq>', timeout=20
                )
                assert _condition(reply) == "policy-violation"
                attacker.send_text(f'<message to="{jid}"><x xmlns="urn:x">{_deep(levels)}</x></message>')
                attacker.send_text(f'<presence to="{jid}"><x xmlns="urn:x">{_deep(levels)}</x></presence>')
                _count("deep stanzas (calls, IQs, messages, presences)", 4)
        await health.check("deep")

        # ------------------------------------------------------------------ huge
        # (beyond ejabberd's max_stanza_size the server itself ends the sender's stream: tests/xmpp/test_stanza_size)
        if limit is None:
            many = "".join("<item><int>1</int></item>" for _ in range(110_000))  # 220,001 elements
            reply = await raw.request(rpc_call(jid, "count", rpc_param(f"<items>{many}</items>")), timeout=30)
            exc, message = _fault(reply)
            assert exc == "builtins.ValueError" and "more than 200000 elements" in message, message
            _count("huge stanzas (over the element bound)")
            big = "x" * 2_000_000  # within the bounds: a big value is fine
            reply = await raw.request(rpc_call(jid, "echo", rpc_param(f"<string>{big}</string>")), timeout=30)
            value = reply.find(f"{RPC}query/{RPC}methodResponse/{RPC}params/{RPC}param/{RPC}value/{PYRPC}value/string")
            assert value is not None and value.text == big
            _count("huge stanzas (2 MB value, within bounds): answered")
            await health.check("huge")

        # ------------------------------------------------------------------ flood
        before = rss_mb(proc)
        cap = int(LIMITS["max_calls"])
        waits = [
            asyncio.ensure_future(raw.request(rpc_call(jid, "sleep", rpc_param("<double>3.0</double>")), timeout=30))
            for _ in range(cap + 800)
        ]
        # while max_calls are pending (the refused ones are answered at once): the memory they hold
        await eventually(lambda: sum(1 for w in waits if w.done()) >= 800, timeout=20, what="busy answers")
        pending_growth = rss_mb(proc) - before
        replies = await asyncio.gather(*waits)
        busy = sum(1 for r in replies if "ModuleBusyError" in str(_fault(r)[0]))
        served = sum(1 for r in replies if _fault(r)[0] is None and r.get("type") == "result")
        assert busy >= 800 and served <= cap and busy + served == len(replies), (busy, served)
        _count("flood: slow calls sent", len(replies))
        _count("flood: busy faults", busy)
        health.report[f"rss growth with {cap} calls pending (MB)"] = round(pending_growth, 1)
        for i in range(3000):
            raw.send_text(
                f'<message to="{jid}" type="headline"><event xmlns="http://jabber.org/protocol/pubsub#event">'
                '<items node="pyobs:event:raw:FuzzEvent:1"><item><event xmlns="pyobs:event">'
                + json.dumps({"type": "FuzzEvent", "timestamp": 1, "uuid": f"f{i}", "data": {"message": str(i)}})
                + "</event></item></items></event></message>"
            )
        _count("flood: events to a slow handler", 3000)
        await asyncio.sleep(0)
        stats = await health.check("flood")
        deadline = loop.time() + 20
        while stats["dropped_events"] + stats["handled"] + LIMITS["handler_queue_size"] + 4 < 3000:
            assert loop.time() < deadline, stats
            await asyncio.sleep(0.2)
            stats = await health.check("flood")
        assert stats["busy_refusals"] >= 800
        assert log_lines(tmp_path, NAME, "is behind") <= 3  # rate-limited, with counts

        # ------------------------------------------------------------------ spoofing
        handled_before = stats["handled"]
        for i in range(100):
            args = rpc_param("<int>1</int>") + rpc_param("<double>1</double>")
            reply = await mallory.request(rpc_call(jid, "add", args))
            assert _condition(reply) == "forbidden"
            for node_owner in ("mallory", "caller"):
                mallory.send_text(
                    f'<message to="{jid}" type="headline"><event xmlns="http://jabber.org/protocol/pubsub#event">'
                    f'<items node="pyobs:event:{node_owner}:FuzzEvent:1"><item><event xmlns="pyobs:event">'
                    + json.dumps({"type": "FuzzEvent", "timestamp": 1, "uuid": f"s{i}{node_owner}", "data": {}})
                    + "</event></item></items></event></message>"
                )
            # a fleet member sending in another member's name
            raw.send_text(
                f'<message to="{jid}" type="headline"><event xmlns="http://jabber.org/protocol/pubsub#event">'
                '<items node="pyobs:event:caller:FuzzEvent:1"><item><event xmlns="pyobs:event">'
                + json.dumps({"type": "FuzzEvent", "timestamp": 1, "uuid": f"r{i}", "data": {}})
                + "</event></item></items></event></message>"
            )
            # answers to IQs it never saw, a roster push adding itself, posing as a module
            mallory.send_text(f'<iq type="result" to="{jid}" id="p{i}"/>')
            mallory.send_text(
                f'<iq type="set" to="{jid}" id="r{i}"><query xmlns="jabber:iq:roster">'
                f'<item jid="{server.jid("mallory")}" subscription="both"/></query></iq>'
            )
            mallory.send_text(
                f'<presence to="{jid}"><c xmlns="http://jabber.org/protocol/caps" hash="sha-1" node="urn:pyobs" '
                f'ver="v{i}"/></presence>'
            )
        _count("spoofing stanzas", 600)
        reply = await mallory.request(rpc_call(jid, "stats", ""))
        assert _condition(reply) == "forbidden"  # the roster push did not let it in
        stats = await health.check("spoofing")
        # no spoofed event was handled (the queue may still finish the flood's: only raw's own)
        assert set(stats["senders"]) <= {"raw"}
        assert "mallory" not in stats["clients"]
        assert stats["handled"] >= handled_before
        health.report["rss peak over baseline (MB)"] = round(health.peak - health.baseline, 1)
        print("\nXMPP attack counts:", json.dumps(COUNTS, indent=1), "\nmemory:", health.report)
    finally:
        await raw.close()
        await mallory.close()
        await caller.close()
        stop_target(proc)
