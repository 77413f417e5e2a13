"""Cancel and progress on the XMPP wire (urn:pyobs:comm:call-control:1), from a raw client."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from xmpp_helpers import Probe, RawClient, compact_call

CONTROL = "urn:pyobs:comm:call-control:1"
RPC = "{jabber:iq:rpc}"
PYRPC = "{urn:pyobs:rpc:1}"
STANZAS = "{urn:ietf:params:xml:ns:xmpp-stanzas}"


def _cancel(to: str, call: str, wait: str = "2") -> str:
    return f'<iq type="set" id="{{id}}" to="{to}"><cancel xmlns="{CONTROL}" call="{call}" wait="{wait}"/></iq>'


async def test_the_feature_is_advertised(xmpp_backend: Any, raw: RawClient, probe: Probe) -> None:
    jid = xmpp_backend.server.jid("callee", xmpp_backend.resource)
    reply = await raw.request(
        f'<iq type="get" id="{{id}}" to="{jid}"><query xmlns="http://jabber.org/protocol/disco#info"/></iq>'
    )
    features = {f.get("var") for f in reply.iter("{http://jabber.org/protocol/disco#info}feature")}
    assert CONTROL in features


async def test_a_cancel_ends_the_call_and_is_answered_when_it_ended(
    xmpp_backend: Any, raw: RawClient, probe: Probe
) -> None:
    jid = xmpp_backend.server.jid("callee", xmpp_backend.resource)
    raw.send_text(compact_call(jid, "slow", "<double>30.0</double>").replace("{id}", "long1"))
    # the methodTimeout notice says the call runs
    await raw.wait_for(lambda el: el.get("id") == "long1" and el.find(f"{RPC}query/{RPC}methodTimeout") is not None)
    answer = await raw.request(_cancel(jid, "long1"))
    result = answer.find(f"{{{CONTROL}}}cancel-result")
    assert answer.get("type") == "result" and result is not None and result.get("outcome") == "cancelled"
    # the call's own IQ is answered too, with a fault naming the cancel
    fault = await raw.wait_for(
        lambda el: el.get("id") == "long1" and el.find(f"{RPC}query/{RPC}methodResponse/{RPC}fault") is not None
    )
    exc = fault.find(f"{RPC}query/{RPC}methodResponse/{RPC}fault/{RPC}value/{PYRPC}fault")
    assert exc is not None and exc.findtext("exception") == "pyobs.comm.calls.CallCancelledError"
    # a cancel of a call that is over, or that is not the sender's, names nothing
    again = await raw.request(_cancel(jid, "long1"))
    assert again.find(f"{{{CONTROL}}}cancel-result").get("outcome") == "unknown"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("attrs", "problem"),
    [('wait="1"', "without a call id"), ('call="x" wait="soon"', "no number"), ('call="x" wait="-1"', "out of range")],
)
async def test_a_malformed_cancel_is_a_bad_request(
    xmpp_backend: Any, raw: RawClient, probe: Probe, caplog: pytest.LogCaptureFixture, attrs: str, problem: str
) -> None:
    jid = xmpp_backend.server.jid("callee", xmpp_backend.resource)
    with caplog.at_level(logging.WARNING, logger="pyobs.comm.xmpp"):
        reply = await raw.request(f'<iq type="set" id="{{id}}" to="{jid}"><cancel xmlns="{CONTROL}" {attrs}/></iq>')
    assert reply.get("type") == "error"
    assert reply.find(f"{{jabber:client}}error/{STANZAS}bad-request") is not None
    assert problem in caplog.text
    answer = await raw.request(compact_call(jid, "add", "<int>1</int><double>2.0</double>"))
    assert answer.get("type") == "result"  # still serving
