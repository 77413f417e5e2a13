"""max_stanza_size: what the server would refuse (ejabberd closes the sender's stream) is refused
by the comm instead, with an error naming the sizes; the connection stays up."""

from __future__ import annotations

from typing import Any

import pytest
from xmpp_helpers import IProbe, Probe, ProbeEvent

from pyobs.comm.xmpp import XmppComm
from pyobs.modules import Module
from pyobs.testing.ejabberd_server import MAX_STANZA_SIZE
from pyobs.utils.exceptions import ConfigError


def _comm(backend: Any, name: str, limit: int) -> XmppComm:
    server = backend.server
    return XmppComm(
        user=name, domain=server.domain, resource=backend.resource, password=server.password,
        server=server.address, timeout=5.0, max_stanza_size=limit,
    )  # fmt: skip


async def test_too_large_calls_answers_and_events_are_refused_here(xmpp_backend: Any) -> None:
    callee = Probe(comm=_comm(xmpp_backend, "callee", 4096))
    caller = Module(comm=_comm(xmpp_backend, "caller", MAX_STANZA_SIZE))
    await callee.open()
    await caller.open()
    try:
        proxy = await caller.proxy("callee", IProbe)
        with pytest.raises(ValueError, match=r"call callee.text\(\) is \d+ bytes, more than max_stanza_size \(16384\)"):
            await proxy.text("x" * 20000)
        # the callee's answer would exceed its limit: the caller gets a fault instead
        answer_too_large = r"the answer of text\(\) is \d+ bytes, more than max_stanza_size \(4096\)"
        with pytest.raises(ValueError, match=answer_too_large):
            await proxy.text("y" * 8000)
        await callee.comm.register_event(ProbeEvent)
        with pytest.raises(ValueError, match=r"ProbeEvent is \d+ bytes, more than max_stanza_size \(4096\)"):
            await callee.comm.send_event(ProbeEvent(message="z" * 5000))
        # nobody lost the connection
        assert caller.comm.connected and callee.comm.connected
        assert await proxy.text("small") == "small"
    finally:
        await caller.close()
        await callee.close()


def test_a_negative_limit_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="max_stanza_size"):
        XmppComm(jid="a@example.org", max_stanza_size=-1)
