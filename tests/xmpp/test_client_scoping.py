"""Our slixmpp Client (pyobs/comm/xmpp/client.py) on a real server: it logs in with its own fast
SCRAM key derivation, while a plain slixmpp client in the same process logs in with slixmpp's own,
untouched; a disposed client leaves no slixmpp task running."""

from __future__ import annotations

import asyncio
from typing import Any
from xml.etree.ElementTree import Element

import slixmpp
from slixmpp.util.sasl.mechanisms import SCRAM

from pyobs.comm.xmpp.client import Client

LOGIN_DEADLINE = 10.0


def _not_taken(_xml: Element) -> bool:
    return False


async def _login(client: Any, server: Any) -> None:
    started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    client.add_event_handler("session_start", lambda _e: started.done() or started.set_result(None))
    host, port = server.address.split(":")
    client.connect(host, int(port))
    await asyncio.wait_for(started, LOGIN_DEADLINE)


async def _dispose(client: Any) -> None:
    client.abort()
    if isinstance(client, Client):
        await client.stop_send_task()
    else:
        await asyncio.wait_for(client.disconnect(wait=0), LOGIN_DEADLINE)


async def test_our_client_logs_in_with_its_own_scram_and_a_plain_client_with_slixmpps(xmpp_server: Any) -> None:
    ours = Client(
        xmpp_server.jid("x", "scoping"), xmpp_server.password,
        on_iq=_not_taken, on_message=_not_taken, on_presence=_not_taken, use_tls=False,
    )  # fmt: skip
    plain = slixmpp.ClientXMPP(xmpp_server.jid("y", "scoping"), xmpp_server.password)
    plain.enable_starttls = False
    plain.enable_plaintext = True
    plain.plugin["feature_mechanisms"].unencrypted_scram = True
    try:
        await _login(ours, xmpp_server)
        mech = ours.plugin["feature_mechanisms"].mech
        assert isinstance(mech, SCRAM)
        assert "Hi" in vars(mech)  # our derivation, on this client's mechanism only
        assert ours.session_up
        await _login(plain, xmpp_server)
        plain_mech = plain.plugin["feature_mechanisms"].mech
        assert isinstance(plain_mech, SCRAM) and "Hi" not in vars(plain_mech)
        assert SCRAM.Hi.__module__ == "slixmpp.util.sasl.mechanisms"
    finally:
        await _dispose(ours)
        await _dispose(plain)
    assert not ours.session_up
    assert ours._run_out_filters is None or ours._run_out_filters.done()


class CountingClient(Client):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.derivations = 0

    def _salted_password(self, hash_name: str, password: bytes, salt: bytes, iterations: int) -> bytes:
        self.derivations += 1
        return super()._salted_password(hash_name, password, salt, iterations)


async def test_a_reconnect_uses_our_derivation_again_and_reuses_its_result(xmpp_server: Any) -> None:
    ours = CountingClient(
        xmpp_server.jid("z", "scoping"), xmpp_server.password,
        on_iq=_not_taken, on_message=_not_taken, on_presence=_not_taken, use_tls=False,
    )  # fmt: skip
    try:
        await _login(ours, xmpp_server)
        assert ours.derivations == 1 and len(ours._salted_passwords) == 1
        salted = next(iter(ours._salted_passwords.values()))
        ours.abort()
        await _login(ours, xmpp_server)
        assert ours.derivations == 2  # the new session's mechanism got our Hi too
        assert next(iter(ours._salted_passwords.values())) is salted  # and it was not derived again
    finally:
        await _dispose(ours)


async def test_the_first_stanza_of_an_iteration_goes_out_at_once_the_rest_together_in_order(
    xmpp_server: Any,
) -> None:
    received: list[str] = []
    arrived = asyncio.Event()

    def on_message(xml: Element) -> bool:
        body = xml.findtext("{jabber:client}body")
        if body is not None and body.startswith("order-"):
            received.append(body)
            if len(received) == 3:
                arrived.set()
            return True
        return False

    jid = xmpp_server.jid("d", "scoping")
    ours = Client(
        jid, xmpp_server.password,
        on_iq=_not_taken, on_message=on_message, on_presence=_not_taken, use_tls=False,
    )  # fmt: skip
    try:
        await _login(ours, xmpp_server)
        bodies = [f"order-{i}" for i in range(3)]
        assert ours.write(f'<message to="{jid}"><body>{bodies[0]}</body></message>')
        assert ours._out == []  # written already
        for body in bodies[1:]:
            assert ours.write(f'<message to="{jid}"><body>{body}</body></message>')
        assert len(ours._out) == 2  # collected for the loop's next turn
        await asyncio.wait_for(arrived.wait(), LOGIN_DEADLINE)
        assert received == bodies and ours._out == []
    finally:
        await _dispose(ours)
    assert not ours.write("<message/>")  # not connected: refused, not queued
