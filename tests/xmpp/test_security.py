"""TLS with a self-signed certificate, SCRAM preferred, PLAIN only when explicitly allowed."""

from __future__ import annotations

from typing import Any

import pytest
from xmpp_helpers import IProbe, Probe

from pyobs.comm.xmpp import XmppAuthError, XmppComm
from pyobs.testing.xmpp_server import TestServer


def _mechanism(comm: XmppComm) -> str:
    client: Any = comm.xmpp.link.client
    return str(client.plugin["feature_mechanisms"].mech.name)


async def test_starttls_with_a_trusted_self_signed_certificate() -> None:
    async with TestServer(["callee", "caller"], tls=True) as server:
        probe = Probe(
            comm=XmppComm(
                jid=server.jid("callee"),
                password=server.password,
                server=server.address,
                ca_file=str(server.ca_file),
                require_tls=True,
            )
        )
        caller = XmppComm(
            jid=server.jid("caller"), password=server.password, server=server.address, ca_file=str(server.ca_file)
        )
        await probe.open()
        await caller.open()
        try:
            client: Any = caller.xmpp.link.client
            assert client.encrypted
            assert _mechanism(caller).startswith("SCRAM-")
            proxy = await caller.proxy("callee", IProbe)
            assert await proxy.add(20, 0.5) == 20.5
        finally:
            await caller.close()
            await probe.close()


async def test_untrusted_certificate_is_refused_with_a_hint() -> None:
    async with TestServer(["callee"], tls=True) as server:
        comm = XmppComm(jid=server.jid("callee"), password=server.password, server=server.address)
        with pytest.raises(XmppAuthError, match="ca_file"):
            await comm.open()
        assert not comm.opened


async def test_require_tls_refuses_a_server_without_tls() -> None:
    async with TestServer(["callee"]) as server:
        comm = XmppComm(jid=server.jid("callee"), password=server.password, server=server.address, require_tls=True)
        with pytest.raises(XmppAuthError, match="offers no TLS"):
            await comm.open()


async def test_scram_is_preferred_over_plain() -> None:
    async with TestServer(["callee"], allow_plain=True) as server:
        comm = XmppComm(jid=server.jid("callee"), password=server.password, server=server.address, allow_plain=True)
        await comm.open()
        try:
            assert _mechanism(comm).startswith("SCRAM-")
        finally:
            await comm.close()


async def test_plain_without_tls_only_when_allowed() -> None:
    scram = ["SCRAM-SHA-1", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS", "DIGEST-MD5"]
    async with TestServer(["callee"], allow_plain=True, disable_mechanisms=scram) as server:
        refused = XmppComm(jid=server.jid("callee"), password=server.password, server=server.address)
        with pytest.raises(XmppAuthError, match="no usable SASL mechanism"):
            await refused.open()
        allowed = XmppComm(jid=server.jid("callee"), password=server.password, server=server.address, allow_plain=True)
        await allowed.open()
        try:
            assert _mechanism(allowed) == "PLAIN"
        finally:
            await allowed.close()


async def test_direct_tls() -> None:
    async with TestServer(["callee"], tls=True) as server:
        comm = XmppComm(
            jid=server.jid("callee"),
            password=server.password,
            server=server.direct_tls_address,
            direct_tls=True,
            require_tls=True,
            ca_file=str(server.ca_file),
        )
        await comm.open()
        try:
            client: Any = comm.xmpp.link.client
            assert client.encrypted
            assert "starttls" not in client.features  # TLS from the first byte, not negotiated
        finally:
            await comm.close()
